"""GPU faults on Kubernetes (poisoned context, lost GPU, throttle, contention, hang) and pod
metrics, against kmock over real HTTP: the fault hook and /metrics are reached through the
emulator's pod proxy, which passes each request over real HTTP to a stand-in pod server on
loopback (tests/support/fakepod.py) that checks the token of the platform's Secret."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.chaos import k8s as k8s_actions
from harness.chaos.context import activate
from harness.config import WorkloadSpec
from harness.errors import FaultNoEffect
from harness.faults import registry
from harness.faults.kubehook import read_token
from harness.faults.state import state_dir
from harness.platforms.kubernetes import KubernetesPlatform
from harness.telemetry.sampler import TelemetrySampler
from harness.timeline import Timeline
from tests.integration import test_k8s_platform as base
from tests.integration.test_k8s_platform import NS, _ctx, _wait
from tests.k8s.kmock_cluster import EmulatedCluster, MiniController, gpu_node
from tests.support.fakepod import FakePods, fake_pods

TAINT = "nvidia.com/gpu-unhealthy"
SECRET = "gpuchaos-llm-fault-token"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatedCluster]:
    """One emulated cluster and deployment for the module (faults change pods; the mini
    controller replaces them, and each test undoes what it did)."""
    from kubernetes.config import kube_config

    with EmulatedCluster(tmp_path_factory.mktemp("kmock")) as c, pytest.MonkeyPatch.context() as mp:
        mp.setenv("KUBECONFIG", str(c.kubeconfig))
        mp.setattr(kube_config, "KUBE_CONFIG_DEFAULT_LOCATION", str(c.kubeconfig))
        for node in (gpu_node("gpu-a"), gpu_node("gpu-b"), gpu_node("cpu-a", gpu=False)):
            c.put("v1/nodes", None, node)
        yield c


@pytest.fixture(scope="module")
def deployed(
    cluster: EmulatedCluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[KubernetesPlatform, Timeline]]:
    run_dir = tmp_path_factory.mktemp("run")
    timeline = Timeline(run_dir / "timeline.jsonl")
    platform = KubernetesPlatform(base._spec(), WorkloadSpec(), timeline, run_dir)
    with MiniController(platform.connect(), NS):
        platform.start()
        try:
            yield platform, timeline
        finally:
            platform.stop()


@pytest.fixture(autouse=True)
def _state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GPUCHAOS_STATE_DIR", str(tmp_path / "state"))


@pytest.fixture
def pods(
    deployed: tuple[KubernetesPlatform, Timeline], cluster: EmulatedCluster
) -> Iterator[FakePods]:
    """Fresh stand-in pod servers for the test; every pod Ready on both nodes first."""
    platform, _ = deployed
    _wait(lambda: sorted({p.spec.node_name for p in platform.pods()}) == ["gpu-a", "gpu-b"])
    core = platform.core()
    # what the pods see: the token in the Secret (the harness's copy may be made stale)
    with fake_pods(lambda: read_token(core, NS, SECRET)) as fake:
        cluster.h.pod_backends.clear()
        cluster.h.backend_factory = fake
        try:
            yield fake
        finally:
            cluster.h.backend_factory = None
            cluster.h.pod_backends.clear()


def _on(platform: KubernetesPlatform, node: str) -> list[str]:
    return sorted(p.metadata.name for p in platform.pods() if p.spec.node_name == node)


def _taints(platform: KubernetesPlatform, node: str) -> list[str]:
    taints = platform.core().read_node(node).spec.taints or []
    return [f"{t.key}={t.value}:{t.effect}" for t in taints]


def _records() -> list[Path]:
    return sorted(state_dir().glob("*.json"))


def test_the_pods_read_the_token_from_the_platforms_secret(
    deployed: tuple[KubernetesPlatform, Timeline], cluster: EmulatedCluster
) -> None:
    platform, _ = deployed
    token = platform.fault_token("any")
    assert token and len(token) >= 40  # 256 random bits, URL-safe
    assert read_token(platform.core(), NS, SECRET) == token
    template = cluster.h.objects["apps/v1/deployments", NS, "gpuchaos-llm"]["spec"]["template"]
    container = template["spec"]["containers"][0]
    env = {e["name"]: e for e in container["env"]}
    ref = env["GPUCHAOS_FAULT_TOKEN"]["valueFrom"]["secretKeyRef"]
    assert ref["name"] == SECRET and ref["key"] == "token"
    assert "--fault-hook-remote" in container["args"]


def test_poison_replica_calls_the_hook_of_one_pod_with_the_token(
    deployed: tuple[KubernetesPlatform, Timeline], pods: FakePods, tmp_path: Path
) -> None:
    platform, timeline = deployed
    token = platform.fault_token("x")
    with activate(_ctx(platform, timeline, tmp_path)):
        result = k8s_actions.poison_replica(xid=48, duration_s=0)
        victim = result["pod"]
        uid = platform.core().read_namespaced_pod(victim, NS).metadata.uid
        assert result["xid"] == 48 and result["probe_status"] == 500
        assert "CUDA error" in result["probe_error"] and result["live_status"] == 200
        assert result["failures_after"] > result["failures_before"]
        assert len(_records()) == 1  # the reverter restarts it if the harness dies
        calls = {name: p.hook_calls for name, p in pods.pods.items() if p.hook_calls}
        assert list(calls) == [victim]  # the other pods' hooks were never called
        assert ("POST", {"kind": "poison", "xid": 48}, token) in calls[victim]
        assert all(given == token for _, _, given in calls[victim])
        k8s_actions.restart_poisoned_replica(replica=victim)
    # restarted: that pod (its uid) deleted, its Deployment replaces it
    _wait(lambda: victim not in [p.metadata.name for p in platform.pods()])
    assert _records() == []
    assert uid not in {p.metadata.uid for p in platform.pods()}


def test_a_wrong_token_is_no_effect(
    deployed: tuple[KubernetesPlatform, Timeline], pods: FakePods, tmp_path: Path
) -> None:
    platform, timeline = deployed
    platform._token = "not-the-secret"  # a stale token: the pod's hook refuses it (403)
    try:
        with (
            activate(_ctx(platform, timeline, tmp_path)),
            pytest.raises(FaultNoEffect, match="403"),
        ):
            k8s_actions.poison_replica(duration_s=0)
    finally:
        platform._token = None  # read from the Secret again
    assert not any(p.poisoned for p in pods.pods.values())
    assert _records() == []  # the failed injection left no state file behind


def test_lose_gpu_taints_the_node_poisons_its_pods_and_reverts(
    deployed: tuple[KubernetesPlatform, Timeline],
    pods: FakePods,
    cluster: EmulatedCluster,
    tmp_path: Path,
) -> None:
    platform, timeline = deployed
    on_a, on_b = _on(platform, "gpu-a"), _on(platform, "gpu-b")
    with activate(_ctx(platform, timeline, tmp_path)):
        result = k8s_actions.lose_gpu(node="gpu-a", unhealthy_s=0.5, xid=79)
    assert result["taint"] == f"{TAINT}=xid-79:NoSchedule" and result["pods"] == on_a
    assert set(result["pods"]) == set(on_a)
    poisoned = sorted(n for n, p in pods.pods.items() if p.poisoned)
    assert poisoned == on_a and not set(poisoned) & set(on_b)
    # the taint was put on and taken off again: two merge patches of the node
    patches = [r for r in cluster.requests() if r == ("PATCH", "/api/v1/nodes/gpu-a")]
    assert len(patches) == 2
    assert TAINT not in " ".join(_taints(platform, "gpu-a"))
    # the poisoned pods were restarted (deleted, replaced by the controller)
    _wait(lambda: not set(on_a) & {p.metadata.name for p in platform.pods()})
    assert _records() == []


def test_lose_gpu_is_undone_by_the_reverter_when_its_ttl_ends(
    deployed: tuple[KubernetesPlatform, Timeline], pods: FakePods, tmp_path: Path
) -> None:
    platform, timeline = deployed
    fault = registry.get("kubernetes", "lose_gpu")
    assert fault is not None
    args = fault.args.model_validate({"node": "gpu-b", "duration_s": 300, "ttl_s": 1})
    on_b = _on(platform, "gpu-b")
    injection = fault.inject(_ctx(platform, timeline, tmp_path), args, "gpu-b")
    try:
        assert f"{TAINT}=xid-79:NoSchedule" in _taints(platform, "gpu-b")
        assert len(_records()) == 1
        # nobody reverts it here: the detached reverter does, once the time-to-live ends
        _wait(lambda: f"{TAINT}=xid-79:NoSchedule" not in _taints(platform, "gpu-b"), 30.0)
        _wait(lambda: not set(on_b) & {p.metadata.name for p in platform.pods()}, 10.0)
        _wait(lambda: _records() == [], 10.0)
    finally:
        assert injection.active is not None
        injection.active.revert()


def test_lose_gpu_refuses_a_node_marked_already(
    deployed: tuple[KubernetesPlatform, Timeline], pods: FakePods, tmp_path: Path
) -> None:
    platform, timeline = deployed
    from harness.faults.kube import taint_node, untaint

    taint_node(platform.core(), "gpu-a", TAINT, "by-someone-else")
    try:
        with (
            activate(_ctx(platform, timeline, tmp_path)),
            pytest.raises(FaultNoEffect, match=TAINT),
        ):
            k8s_actions.lose_gpu(node="gpu-a", duration_s=0.5)
        assert f"{TAINT}=by-someone-else:NoSchedule" in _taints(platform, "gpu-a")  # left alone
        assert not any(p.poisoned for p in pods.pods.values()) and _records() == []
    finally:
        untaint(platform.core(), "gpu-a", TAINT)


def test_throttle_gpu_then_unthrottle(
    deployed: tuple[KubernetesPlatform, Timeline], pods: FakePods, tmp_path: Path
) -> None:
    platform, timeline = deployed
    on_b = _on(platform, "gpu-b")
    with activate(_ctx(platform, timeline, tmp_path)):
        result = k8s_actions.throttle_gpu(node="gpu-b", factor=2.5, duration_s=0)
        assert result["via"] == "hook" and set(result["pods"]) == set(on_b)
        assert {n for n, p in pods.pods.items() if p.throttle == 2.5} == set(on_b)
        assert len(_records()) == 1
        k8s_actions.unthrottle_gpu(node="gpu-b")
    assert all(pods.pods[n].throttle == 1.0 for n in on_b)
    assert _records() == []


def test_contention_falls_back_to_the_hook_when_exec_is_refused(
    deployed: tuple[KubernetesPlatform, Timeline],
    pods: FakePods,
    cluster: EmulatedCluster,
    tmp_path: Path,
) -> None:
    platform, timeline = deployed
    with activate(_ctx(platform, timeline, tmp_path)):
        result = k8s_actions.contend_compute(duration_s=0.3)  # via: auto
    victim = result["pod"]
    assert result["via"] == "hook"
    # exec was tried first (the emulator has no exec: refused), then the hook
    assert any(m == "GET" and p.endswith(f"/pods/{victim}/exec") for m, p in cluster.requests())
    kinds = [b["kind"] for m, b, _ in pods.pods[victim].hook_calls if m == "POST" and b]
    assert kinds == ["contend", "clear"] and not pods.pods[victim].contend


def test_hang_replica_by_hook_then_resume(
    deployed: tuple[KubernetesPlatform, Timeline], pods: FakePods, tmp_path: Path
) -> None:
    platform, timeline = deployed
    with activate(_ctx(platform, timeline, tmp_path)):
        result = k8s_actions.hang_replica(via="hook", duration_s=0)
        victim = result["pod"]
        assert result["via"] == "hook" and result["live_waited_s"] >= 1.0
        assert not pods.pods[victim].unhung.is_set()
        k8s_actions.resume_replica(replica=victim)
    assert pods.pods[victim].unhung.is_set()
    assert _records() == []


def test_pod_metrics_are_scraped_through_the_pod_proxy(
    deployed: tuple[KubernetesPlatform, Timeline],
    pods: FakePods,
    cluster: EmulatedCluster,
    tmp_path: Path,
) -> None:
    platform, _ = deployed
    path = tmp_path / "telemetry.csv"
    names = sorted(p.metadata.name for p in platform.pods())
    sampler = TelemetrySampler(platform, path, interval_s=1.0)
    seen: set[tuple[str, str]] = set()
    before = len(cluster.h.proxied)

    def every_pod_scraped() -> bool:  # a busy machine may time a scrape out: wait for one each
        seen.update(sampler.latest)
        return all((pod, "queue_waiting") in seen for pod in names)

    sampler.start()
    try:
        _wait(every_pod_scraped, timeout=60.0)
    finally:
        sampler.stop()
    with path.open() as fh:
        rows = list(csv.DictReader(fh))
    for pod in names:
        got = {r["metric"]: float(r["value"]) for r in rows if r["source"] == pod}
        assert got["queue_waiting"] == 3.0 and got["running"] == 2.0
        assert got["kv_cache_usage"] == 0.25 and got["oom_total"] == 1.0
    proxied = [(m, p, port) for m, _, p, port, path_, _ in cluster.h.proxied[before:]
               if path_ == "/metrics"]  # fmt: skip
    assert {p for _, p, _ in proxied} == set(names)  # every pod, through the pod proxy
    assert {(m, port) for m, _, port in proxied} == {("GET", "8000")}
