"""The kubernetes platform and its faults against kmock, a Kubernetes API emulator on
127.0.0.1, with the official client and chaostoolkit-kubernetes over real HTTP."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from harness.chaos import k8s as k8s_actions
from harness.chaos.context import RunContext, activate
from harness.config import HarnessSpec, KubernetesPlatformSpec, WorkloadSpec
from harness.errors import FaultNoEffect, PlatformError
from harness.platforms.kubernetes import KubernetesPlatform
from harness.platforms.kubernetes.client import DryRunRefused, no_mutations
from harness.timeline import Timeline
from tests.k8s.kmock_cluster import (
    CONTEXT,
    OTHER_CONTEXT,
    EmulatedCluster,
    MiniController,
    gpu_node,
    ready_pod,
)

NS = "gpuchaos"
MUTATING = {"POST", "PUT", "PATCH", "DELETE"}


@pytest.fixture
def cluster(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[EmulatedCluster]:
    with EmulatedCluster(tmp_path) as c:
        from kubernetes.config import kube_config

        monkeypatch.setenv("KUBECONFIG", str(c.kubeconfig))
        monkeypatch.setattr(kube_config, "KUBE_CONFIG_DEFAULT_LOCATION", str(c.kubeconfig))
        for node in (gpu_node("gpu-a"), gpu_node("gpu-b"), gpu_node("cpu-a", gpu=False)):
            c.put("v1/nodes", None, node)
        yield c


def _spec(**kw: Any) -> KubernetesPlatformSpec:
    base = {"kind": "kubernetes", "context": CONTEXT, "access": "url", "poll_interval_s": 0.2}
    return KubernetesPlatformSpec.model_validate({**base, **kw})


def _harness(platform: KubernetesPlatformSpec) -> HarnessSpec:
    return HarnessSpec.model_validate(
        {
            "name": "gpuchaos",
            "platform": platform.model_dump(),
            "load": {
                "shape": {
                    "duration_s": 10,
                    "baseline_users": 1,
                    "spike_start_s": 1,
                    "spike_duration_s": 1,
                }
            },
        }
    )


def _wait(predicate: Any, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.05)


def _objects(c: EmulatedCluster, resource: str) -> list[str]:
    return sorted(
        name
        for (res, _, name), obj in c.h.objects.items()
        if str(res.plural) == resource and not obj.deleted
    )


@pytest.fixture
def deployed(cluster: EmulatedCluster, tmp_path: Path) -> Iterator[tuple[KubernetesPlatform, Any]]:
    """The workload deployed by the platform, with the mini controller acting for k8s."""
    timeline = Timeline(tmp_path / "timeline.jsonl")
    platform = KubernetesPlatform(_spec(), WorkloadSpec(), timeline, tmp_path)
    api = platform.connect()
    with MiniController(api, NS):
        platform.start()
        try:
            yield platform, timeline
        finally:
            platform.stop()


def _ctx(platform: KubernetesPlatform, timeline: Timeline, tmp_path: Path) -> RunContext:
    return RunContext(platform, timeline, tmp_path, _harness(platform.spec), time.time())


def test_deploys_waits_for_rollout_and_deletes_only_its_objects(
    cluster: EmulatedCluster, tmp_path: Path
) -> None:
    other = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "keep", "namespace": NS}}
    cluster.put("v1/services", NS, other)
    timeline = Timeline(tmp_path / "timeline.jsonl")
    platform = KubernetesPlatform(_spec(), WorkloadSpec(), timeline, tmp_path)
    with MiniController(platform.connect(), NS):
        platform.start()
        ready = [r for r in platform.replicas() if r.state == "ready"]
        assert len(ready) == 2 and {r.node for r in ready} == {"gpu-a", "gpu-b"}
        assert platform.nodes() == ["gpu-a", "gpu-b"]  # GPU nodes only
        assert platform.endpoint == "http://gpuchaos-llm.gpuchaos.svc.cluster.local:8000"
        kinds = [c.kind for c in platform.created]
        assert kinds == ["Namespace", "Secret", "Deployment", "Service", "PodDisruptionBudget"]
        assert _objects(cluster, "secrets") == ["gpuchaos-llm-fault-token"]  # the hook's token
        assert _objects(cluster, "deployments") == ["gpuchaos-llm"]
        assert _objects(cluster, "poddisruptionbudgets") == ["gpuchaos-llm"]
        platform.stop()
    assert _objects(cluster, "deployments") == []
    assert _objects(cluster, "secrets") == []
    assert _objects(cluster, "poddisruptionbudgets") == []
    assert _objects(cluster, "services") == ["keep"]  # not ours: untouched
    assert cluster.h.namespaces == {}
    deleted = [p for m, p in cluster.requests() if m == "DELETE"]
    assert all("gpuchaos-llm" in p or p.endswith(f"/namespaces/{NS}") for p in deleted)


def test_an_existing_object_of_the_same_name_is_refused(
    cluster: EmulatedCluster, tmp_path: Path
) -> None:
    dep = {"apiVersion": "apps/v1", "kind": "Deployment",
           "metadata": {"name": "gpuchaos-llm", "namespace": NS}}  # fmt: skip
    cluster.put("apps/v1/deployments", NS, dep)
    cluster.h.namespaces[NS] = {"metadata": {"name": NS, "uid": "u"}}
    platform = KubernetesPlatform(_spec(), WorkloadSpec(), Timeline(None), tmp_path)
    with pytest.raises(PlatformError, match="exists already and is not this run's"):
        platform.start()
    assert _objects(cluster, "deployments") == ["gpuchaos-llm"]  # left alone


def test_targets_existing_pods_by_selector_without_any_mutating_call(
    cluster: EmulatedCluster, tmp_path: Path
) -> None:
    for i, node in enumerate(("gpu-a", "gpu-b")):
        cluster.put("v1/pods", NS, ready_pod(f"vllm-{i}", NS, node, {"app": "vllm"}))
    cluster.put("v1/pods", NS, ready_pod("other", NS, "gpu-a", {"app": "other"}))
    platform = KubernetesPlatform(
        _spec(deploy=False, selector={"app": "vllm"}), WorkloadSpec(), Timeline(None), tmp_path
    )
    platform.start()
    try:
        assert sorted(r.id for r in platform.replicas()) == ["vllm-0", "vllm-1"]
    finally:
        platform.stop()
    assert not [r for r in cluster.requests() if r[0] in MUTATING]


def test_the_kube_context_must_match(cluster: EmulatedCluster, tmp_path: Path) -> None:
    wrong = KubernetesPlatform(_spec(context=OTHER_CONTEXT), WorkloadSpec(), Timeline(None))
    with pytest.raises(PlatformError, match="current kube context is 'kmock'"):
        wrong.start()
    unnamed = KubernetesPlatform(_spec(context=None), WorkloadSpec(), Timeline(None))
    with pytest.raises(PlatformError, match=r"set platform\.context"):
        unnamed.start()
    flagged = KubernetesPlatform(
        _spec(context=OTHER_CONTEXT), WorkloadSpec(), Timeline(None), context=CONTEXT
    )
    flagged.connect()  # --kube-context overrides the experiment's
    assert cluster.requests() == []  # refused before any request


def test_drain_gpu_node_evicts_proves_and_uncordons(
    deployed: tuple[KubernetesPlatform, Timeline], cluster: EmulatedCluster, tmp_path: Path
) -> None:
    platform, timeline = deployed
    with activate(_ctx(platform, timeline, tmp_path)):
        result = k8s_actions.drain_gpu_node(node="gpu-a", down_for_s=0.5, timeout_s=20)
    assert result["evicted"] and [n for _, n in cluster.h.evictions] == result["evicted"]
    node = platform.core().read_node("gpu-a")
    assert not node.spec.unschedulable  # uncordoned when the fault ended
    # fault_start and fault_end are the timeline control's (harness.chaos.controls)
    assert not [e for e in timeline.events if e["kind"] in ("fault_start", "fault_end")]
    assert platform.cordoned == set()

    def rescheduled() -> bool:
        platform.refresh()
        return any(
            e["kind"] == "replica_ready" and "rescheduled_after_s" in e["details"]
            for e in timeline.events
        )

    _wait(rescheduled)  # the controller put the evicted replica back on a GPU node
    exits = [e for e in timeline.events if e["kind"] == "replica_exit"]
    assert {e["target"] for e in exits} >= set(result["evicted"])


def test_node_faults_refuse_nodes_without_the_gpu_labels(
    deployed: tuple[KubernetesPlatform, Timeline], cluster: EmulatedCluster, tmp_path: Path
) -> None:
    platform, timeline = deployed
    before = len(cluster.requests())
    with activate(_ctx(platform, timeline, tmp_path)), pytest.raises(PlatformError, match="cpu-a"):
        k8s_actions.drain_gpu_node(node="cpu-a", down_for_s=0.1)
    assert not [r for r in cluster.requests()[before:] if r[0] == "PATCH" and "nodes" in r[1]]


def test_drain_of_a_node_without_replicas_has_no_effect(
    cluster: EmulatedCluster, deployed: tuple[KubernetesPlatform, Timeline], tmp_path: Path
) -> None:
    platform, timeline = deployed
    cluster.put("v1/nodes", None, gpu_node("gpu-idle"))
    with activate(_ctx(platform, timeline, tmp_path)), pytest.raises(FaultNoEffect):
        k8s_actions.drain_gpu_node(node="gpu-idle", down_for_s=0.1)
    assert not platform.core().read_node("gpu-idle").spec.unschedulable


def test_stop_uncordons_what_the_run_cordoned(cluster: EmulatedCluster, tmp_path: Path) -> None:
    timeline = Timeline(None)
    platform = KubernetesPlatform(_spec(), WorkloadSpec(), timeline, tmp_path)
    with MiniController(platform.connect(), NS):
        platform.start()
        try:
            platform.node_down("gpu-b")  # as if the method was cut short in the middle
            assert platform.core().read_node("gpu-b").spec.unschedulable
        finally:
            platform.stop()
    assert not platform.core().read_node("gpu-b").spec.unschedulable


def test_terminate_replica_kills_the_pod_and_it_is_replaced(
    deployed: tuple[KubernetesPlatform, Timeline], tmp_path: Path
) -> None:
    platform, timeline = deployed
    before = {p.metadata.name for p in platform.pods()}
    with activate(_ctx(platform, timeline, tmp_path)):
        result = k8s_actions.terminate_replica()
    assert result["pod"] in before
    _wait(lambda: len({p.metadata.name for p in platform.pods()} - before) == 1)
    assert result["pod"] not in {p.metadata.name for p in platform.pods()}


def test_device_plugin_disruption_needs_an_allowlisted_namespace(
    cluster: EmulatedCluster, tmp_path: Path
) -> None:
    dp = ready_pod("nvidia-device-plugin-x", "gpu-operator", "gpu-a",
                   {"app": "nvidia-device-plugin-daemonset"}, owner="DaemonSet")  # fmt: skip
    cluster.put("v1/pods", "gpu-operator", dp)
    for allowed, expect_gone in ((["gpuchaos"], False), (["gpuchaos", "gpu-operator"], True)):
        timeline = Timeline(None)
        spec = _spec(allowed_namespaces=allowed)
        platform = KubernetesPlatform(spec, WorkloadSpec(), timeline, tmp_path)
        with MiniController(platform.connect(), NS):
            platform.start()
            try:
                with activate(_ctx(platform, timeline, tmp_path)):
                    if not expect_gone:
                        with pytest.raises(PlatformError, match="gpu-operator"):
                            k8s_actions.disrupt_device_plugin(node="gpu-a")
                    else:
                        result = k8s_actions.disrupt_device_plugin(
                            node="gpu-a", wait_recreated_s=0.2
                        )
                        assert result["pod"] == "nvidia-device-plugin-x"
            finally:
                platform.stop()
        assert (_objects(cluster, "pods").count("nvidia-device-plugin-x") == 0) == expect_gone


def test_a_chaoslib_run_with_cluster_faults_and_rollbacks(
    deployed: tuple[KubernetesPlatform, Timeline], cluster: EmulatedCluster, tmp_path: Path
) -> None:
    from chaoslib.experiment import run_experiment

    platform, timeline = deployed
    doc = {
        "title": "replica crash and node loss in a cluster",
        "description": "contract test",
        "method": [
            {"type": "action", "name": "crash",
             "provider": {"type": "python", "module": "harness.chaos.k8s",
                          "func": "terminate_replica"}},
            {"type": "action", "name": "lose",
             "provider": {"type": "python", "module": "harness.chaos.k8s",
                          "func": "drain_gpu_node", "arguments": {"down_for_s": 0.2}}},
            {"type": "probe", "name": "ready",
             "provider": {"type": "python", "module": "harness.chaos.k8s", "func": "ready_pods"}},
        ],
        "rollbacks": [
            {"type": "action", "name": "uncordon",
             "provider": {"type": "python", "module": "harness.chaos.k8s",
                          "func": "uncordon_gpu_node"}},
        ],
    }  # fmt: skip
    with activate(_ctx(platform, timeline, tmp_path)):
        journal = run_experiment(doc, settings={"runtime": {"rollbacks": {"strategy": "always"}}})
    assert journal["status"] == "completed", journal
    assert [r["status"] for r in journal["run"]] == ["succeeded"] * 3
    assert cluster.h.evictions
    assert platform.cordoned == set()


def _experiment_file(tmp_path: Path) -> Path:
    doc = {
        "title": "cluster dry run",
        "description": "x",
        "configuration": {"down": 30},
        "controls": [{"name": "gpuchaos-timeline",
                      "provider": {"type": "python", "module": "harness.chaos.controls"}}],
        "extensions": [{
            "name": "gpuchaos",
            "platform": {"kind": "kubernetes", "context": CONTEXT},
            "load": {"shape": {"duration_s": 60, "baseline_users": 2, "spike_start_s": 10,
                               "spike_duration_s": 10}},
        }],
        "method": [
            {"type": "action", "name": "lose a GPU node",
             "provider": {"type": "python", "module": "harness.chaos.k8s",
                          "func": "drain_gpu_node",
                          "arguments": {"node": "gpu-a", "down_for_s": "${down}"}}},
            {"type": "action", "name": "crash",
             "provider": {"type": "python", "module": "harness.chaos.k8s",
                          "func": "terminate_replica"}},
            {"type": "action", "name": "oom",
             "provider": {"type": "python", "module": "harness.chaos.k8s",
                          "func": "exhaust_gpu_memory", "arguments": {"leave_free_mib": 512}}},
        ],
        "rollbacks": [
            {"type": "action", "name": "uncordon",
             "provider": {"type": "python", "module": "harness.chaos.k8s",
                          "func": "uncordon_gpu_node", "arguments": {"node": "gpu-a"}}},
        ],
    }  # fmt: skip
    path = tmp_path / "cluster.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def test_dry_run_makes_no_mutating_call(
    cluster: EmulatedCluster, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from harness.cli import main

    for i, node in enumerate(("gpu-a", "gpu-b")):
        labels = {
            "app.kubernetes.io/name": "gpuchaos",
            "app.kubernetes.io/instance": "gpuchaos-llm",
        }
        cluster.put("v1/pods", NS, ready_pod(f"gpuchaos-llm-{i}", NS, node, labels))
    code = main(["run", str(_experiment_file(tmp_path)), "--dry-run"])
    out = capsys.readouterr().out
    assert code == 0, out
    for expected in (
        "would create namespace gpuchaos",
        "would create Secret gpuchaos/gpuchaos-llm-fault-token",
        "would create Deployment gpuchaos/gpuchaos-llm",
        "would cordon and drain node gpu-a (pods: gpuchaos-llm-0)",
        "would terminate pod gpuchaos/gpuchaos-llm-0 on gpu-a",
        "would exec python -m harness.faults.worker",
        "would uncordon node gpu-a",
    ):
        assert expected in out
    methods = {m for m, _ in cluster.requests()}
    assert cluster.requests() and methods == {"GET"}
    assert not (tmp_path / "results").exists()


def test_the_dry_run_guard_refuses_mutations_from_any_client(cluster: EmulatedCluster) -> None:
    from chaosk8s.node.actions import cordon_node
    from kubernetes import client, config

    api = config.new_client_from_config(str(cluster.kubeconfig), context=CONTEXT)
    with no_mutations():
        assert client.CoreV1Api(api).list_node().items  # reads pass
        with pytest.raises(DryRunRefused):
            client.CoreV1Api(api).delete_node("gpu-a")
        with pytest.raises(DryRunRefused):
            cordon_node(name="gpu-a", secrets={"KUBERNETES_CONTEXT": CONTEXT})
    assert {m for m, _ in cluster.requests()} == {"GET"}
    client.CoreV1Api(api).patch_node("gpu-a", {"metadata": {"labels": {"x": "y"}}})
    assert ("PATCH", "/api/v1/nodes/gpu-a") in cluster.requests()  # the guard is gone
