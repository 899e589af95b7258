"""The multi-tenancy faults on Kubernetes (``k8s_exhaust_quota``, ``k8s_deny_admission``)
against kmock over real HTTP, with the tenants' objects as ``gpuchaos tenant-manifests``
renders them, and an emulator that admits pods against ResourceQuotas and evaluates the
ValidatingAdmissionPolicy's CEL (tests/support/kmock_tenancy.py)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException

from harness.chaos import k8s as k8s_actions
from harness.chaos.context import RunContext, activate
from harness.config import HarnessSpec, KubernetesPlatformSpec, WorkloadSpec
from harness.config.tenancy import TenancySpec
from harness.errors import FaultNoEffect, PlatformError
from harness.faults.kube_tenancy import admission_name
from harness.faults.state import state_dir
from harness.platforms.kubernetes import KubernetesPlatform
from harness.platforms.kubernetes.client import no_mutations
from harness.platforms.kubernetes.tenancy import QUOTA_NAME, render_tenants
from harness.timeline import Timeline
from tests.k8s.kmock_cluster import CONTEXT, gpu_node
from tests.support.kmock_tenancy import TenancyCluster
from tests.support.procs import Processes

MUTATING = {"POST", "PUT", "PATCH", "DELETE"}
#: Where each rendered kind is stored in the emulator.
RESOURCE = {
    "PriorityClass": "scheduling.k8s.io/v1/priorityclasses",
    "ConfigMap": "v1/configmaps",
    "ResourceQuota": "v1/resourcequotas",
    "LimitRange": "v1/limitranges",
    "Deployment": "apps/v1/deployments",
    "Service": "v1/services",
    "PodDisruptionBudget": "policy/v1/poddisruptionbudgets",
}
_SHAPE = {"duration_s": 10, "baseline_users": 1, "spike_start_s": 1, "spike_duration_s": 1}
TENANCY = TenancySpec.model_validate(
    {
        "sharing": "time-slicing",
        "tenants": [
            {"name": "teama", "load": {"shape": _SHAPE},
             "contract": {"replicas": 2, "quota": 3, "memory_mib": 2048, "priority": "high"}},
            {"name": "teamb", "load": {"shape": _SHAPE}, "contract": {"priority": "low"}},
        ],
    }
)  # fmt: skip


@pytest.fixture(autouse=True)
def _state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GPUCHAOS_STATE_DIR", str(tmp_path / "state"))


def _pod(name: str, ns: str, gpus: int = 1, memory: str | None = "2048Mi") -> dict[str, Any]:
    limits = {"nvidia.com/gpu": str(gpus)}
    if memory:
        limits["memory"] = memory
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": ns, "labels": {"app": name}},
        "spec": {"containers": [{"name": "server", "image": "x", "resources": {"limits": limits}}]},
        "status": {"phase": "Running"},
    }


@pytest.fixture
def cluster(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[TenancyCluster]:
    """The tenants' rendered objects stored, teama running two one-GPU replicas."""
    with TenancyCluster(tmp_path) as c:
        from kubernetes.config import kube_config

        monkeypatch.setenv("KUBECONFIG", str(c.kubeconfig))
        monkeypatch.setattr(kube_config, "KUBE_CONFIG_DEFAULT_LOCATION", str(c.kubeconfig))
        c.put("v1/nodes", None, gpu_node("gpu-a"))
        for obj in render_tenants(TENANCY):
            meta = obj["metadata"]
            if obj["kind"] == "Namespace":
                c.h.namespaces[meta["name"]] = obj
            else:
                c.put(RESOURCE[obj["kind"]], meta.get("namespace"), obj)
        for i in range(2):
            c.put("v1/pods", "teama", _pod(f"teama-{i}", "teama"))
        yield c


@pytest.fixture
def platform(cluster: TenancyCluster, tmp_path: Path) -> KubernetesPlatform:
    spec = KubernetesPlatformSpec.model_validate(
        {"kind": "kubernetes", "context": CONTEXT, "access": "url",
         "allowed_namespaces": ["gpuchaos", "teama", "teamb"]}
    )  # fmt: skip
    p = KubernetesPlatform(spec, WorkloadSpec(), Timeline(tmp_path / "timeline.jsonl"), tmp_path)
    p.connect()
    return p


def _ctx(platform: KubernetesPlatform, tmp_path: Path) -> RunContext:
    harness = HarnessSpec.model_validate(
        {"name": "gpuchaos", "platform": platform.spec.model_dump(), "load": {"shape": _SHAPE}}
    )
    return RunContext(platform, platform.timeline, tmp_path, harness, time.time())


def _hard(cluster: TenancyCluster, ns: str = "teama") -> str:
    quota = cluster.get("resourcequotas", ns, QUOTA_NAME)
    assert quota is not None
    return str(quota["spec"]["hard"]["requests.nvidia.com/gpu"])


def _create(platform: KubernetesPlatform, pod: dict[str, Any]) -> str:
    try:
        platform.core().create_namespaced_pod(pod["metadata"]["namespace"], pod)
    except ApiException as exc:
        return f"refused {exc.status}: {exc.body}"
    return "admitted"


def _records() -> list[Path]:
    return sorted(state_dir().glob("*.json"))


def test_exhaust_quota_refuses_a_scale_up_and_is_restored(
    platform: KubernetesPlatform, cluster: TenancyCluster, tmp_path: Path
) -> None:
    assert _hard(cluster) == "3"  # the contract's quota, as rendered
    with activate(_ctx(platform, tmp_path)):
        out = k8s_actions.k8s_exhaust_quota(tenant="teama", duration_s=0)
        assert _hard(cluster) == "2" and len(_records()) == 1
        # the proof: read back, and the API server's answer to one more GPU
        assert out["was"] == "3" and out["set"] == "2" and out["used"] == 2
        assert out["probe"].startswith("refused (403)") and "exceeded quota" in out["probe"]
        # a scale-up's pod is refused; teamb (no quota cut) is not touched
        refused = _create(platform, _pod("teama-2", "teama"))
        assert "403" in refused and "exceeded quota: gpuchaos-tenant-quota" in refused
        assert _hard(cluster, "teamb") == "1"
        back = k8s_actions.restore_k8s_quota(tenant="teama")
    assert back["reverted"] == 1
    assert _hard(cluster) == "3" and _records() == []
    assert _create(platform, _pod("teama-2", "teama")) == "admitted"  # room again
    effects = [e for e in platform.timeline.events if e["kind"] == "fault_effect"]
    (effect,) = effects  # the tenancy contract: the tenant aimed at, the replicas acted on
    assert effect["target"] == "teama" and effect["details"]["tenant"] == "teama"
    assert effect["details"]["affected"] == [] and effect["details"]["set"] == "2"


def test_exhaust_quota_to_a_number_for_its_duration(
    platform: KubernetesPlatform, cluster: TenancyCluster, tmp_path: Path
) -> None:
    with activate(_ctx(platform, tmp_path)):
        out = k8s_actions.k8s_exhaust_quota(namespace="teama", quota=0, duration_s=0.2)
    assert out["set"] == "0" and "exceeded quota" in out["probe"]
    assert _hard(cluster) == "3" and _records() == []


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"tenant": "kube-system"}, PlatformError, "not in allowed_namespaces"),
        ({"tenant": "teamb"}, FaultNoEffect, "is 1 already"),  # teamb uses nothing: 1 > 0
        ({"tenant": "gpuchaos"}, FaultNoEffect, "has no ResourceQuota on requests.nvidia.com/gpu"),
    ],
)
def test_exhaust_quota_refusals(
    platform: KubernetesPlatform, cluster: TenancyCluster, tmp_path: Path,
    kwargs: dict[str, Any], error: type[Exception], message: str,
) -> None:  # fmt: skip
    if kwargs["tenant"] == "teamb":
        kwargs = {**kwargs, "quota": 1}
    with activate(_ctx(platform, tmp_path)), pytest.raises(error, match=message):
        k8s_actions.k8s_exhaust_quota(**kwargs)
    assert _records() == [] and _hard(cluster) == "3"


def test_deny_admission_denies_pods_without_a_memory_cap_in_the_tenant_only(
    platform: KubernetesPlatform, cluster: TenancyCluster, tmp_path: Path
) -> None:
    name = admission_name("teamb", "memory-cap")
    with activate(_ctx(platform, tmp_path)):
        out = k8s_actions.k8s_deny_admission(tenant="teamb", duration_s=0)
        assert cluster.get("validatingadmissionpolicies", None, name) is not None
        binding = cluster.get("validatingadmissionpolicybindings", None, name)
        assert binding is not None and binding["spec"]["validationActions"] == ["Deny"]
        assert out["policy"] == name and out["probe"].startswith("refused (403)")
        assert f"ValidatingAdmissionPolicy '{name}'" in out["probe"]
        refused = _create(platform, _pod("teamb-1", "teamb", 0, memory=None))
        assert "403" in refused and "resources.limits.memory" in refused
        assert _create(platform, _pod("teamb-2", "teamb", 0)) == "admitted"  # capped: fine
        assert _create(platform, _pod("teama-9", "teama", 0, memory=None)) == "admitted"
        back = k8s_actions.allow_k8s_admission(tenant="teamb")
    assert back["reverted"] == 1 and _records() == []
    assert cluster.get("validatingadmissionpolicies", None, name) is None
    assert cluster.get("validatingadmissionpolicybindings", None, name) is None
    assert _create(platform, _pod("teamb-3", "teamb", 0, memory=None)) == "admitted"


def test_deny_all_for_its_duration(
    platform: KubernetesPlatform, cluster: TenancyCluster, tmp_path: Path
) -> None:
    with activate(_ctx(platform, tmp_path)):
        out = k8s_actions.k8s_deny_admission(tenant="teama", rule="all", duration_s=0.2)
    assert "no new pod is admitted" in out["probe"]
    assert [m for ns, _, m in cluster.t.refusals if ns == "teama"]
    assert cluster.get("validatingadmissionpolicies", None, admission_name("teama", "all")) is None
    assert _records() == []


def test_dry_run_makes_no_mutating_call(
    platform: KubernetesPlatform, cluster: TenancyCluster, tmp_path: Path
) -> None:
    platform.dry_run = True
    before = len(cluster.requests())
    with activate(_ctx(platform, tmp_path)), no_mutations():
        k8s_actions.k8s_exhaust_quota(tenant="teama")
        k8s_actions.k8s_deny_admission(tenant="teamb")
    assert not [m for m, _ in cluster.requests()[before:] if m in MUTATING]
    assert _hard(cluster) == "3"
    plan = " ".join(platform.plan)
    assert "from 3 to 2" in plan and "gpuchaos-deny-memory-cap-teamb" in plan


_HOLDER = textwrap.dedent(
    """
    import sys, time
    from harness.chaos import k8s as k8s_actions
    from harness.chaos.context import RunContext, activate
    from harness.config import HarnessSpec, KubernetesPlatformSpec, WorkloadSpec
    from harness.platforms.kubernetes import KubernetesPlatform
    from harness.timeline import Timeline

    spec = KubernetesPlatformSpec.model_validate(
        {"kind": "kubernetes", "context": "kmock", "kubeconfig": sys.argv[1], "access": "url",
         "allowed_namespaces": ["gpuchaos", "teama", "teamb"]}
    )
    platform = KubernetesPlatform(spec, WorkloadSpec(), Timeline(None))
    platform.connect()
    shape = {"duration_s": 10, "baseline_users": 1, "spike_start_s": 1, "spike_duration_s": 1}
    harness = HarnessSpec.model_validate(
        {"name": "gpuchaos", "platform": spec.model_dump(), "load": {"shape": shape}}
    )
    ttl = float(sys.argv[2])
    with activate(RunContext(platform, Timeline(None), None, harness, time.time())):
        quota = k8s_actions.k8s_exhaust_quota(tenant="teama", duration_s=0, ttl_s=ttl, probe=False)
        deny = k8s_actions.k8s_deny_admission(tenant="teamb", duration_s=0, ttl_s=ttl, probe=False)
        print("held", quota["set"], deny["policy"], flush=True)
        time.sleep(600)
    """
)


def _wait(predicate: Any, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.1)


def test_reverter_undoes_both_when_the_ttl_ends(
    cluster: TenancyCluster, processes: Processes
) -> None:
    """A live holder past the time-to-live (the SIGKILLed holder is the same reverter path,
    tested on cordons in test_k8s_scale_and_ttl.py)."""
    proc = processes.start(
        [sys.executable, "-c", _HOLDER, str(cluster.kubeconfig), "2"],
        stdout=subprocess.PIPE, text=True, env=dict(os.environ),
    )  # fmt: skip
    assert proc.stdout is not None
    name = admission_name("teamb", "memory-cap")
    # both proved in the holder (the quota read back at 2, the policy and binding read back)
    assert proc.stdout.readline().split() == ["held", "2", name]
    _wait(lambda: _hard(cluster) == "3", timeout=20.0)
    _wait(lambda: cluster.get("validatingadmissionpolicies", None, name) is None, timeout=20.0)
    assert cluster.get("validatingadmissionpolicybindings", None, name) is None
    _wait(lambda: _records() == [], timeout=5.0)
