"""Node delete, the time-to-live of cordons, the timeline control on cluster faults, and
Locust as Kubernetes Jobs, against kmock over real HTTP (see test_k8s_platform.py)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from harness.chaos import controls
from harness.chaos import k8s as k8s_actions
from harness.chaos.context import activate
from harness.cleanup import cleanup
from harness.config import LoadSpec, SpikeShape, WorkloadSpec
from harness.faults.injectors import revert_all
from harness.faults.state import new_record, state_dir
from harness.load.k8s_jobs import KubernetesLoadJobs
from harness.load.merge import parse_log_records
from harness.platforms.kubernetes import KubernetesPlatform
from harness.platforms.kubernetes.client import no_mutations
from harness.records import COLUMNS, OPTIONAL_COLUMNS
from harness.timeline import Timeline
from tests.integration import test_k8s_platform as base
from tests.integration.test_k8s_platform import MUTATING, NS, _ctx, _objects, _spec, _wait
from tests.k8s.kmock_cluster import EmulatedCluster
from tests.support.procs import Processes

# the fixtures of the platform tests (kmock with GPU nodes; the workload deployed)
cluster = base.cluster
deployed = base.deployed


@pytest.fixture(autouse=True)
def _state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GPUCHAOS_STATE_DIR", str(tmp_path / "state"))


def _unschedulable(platform: KubernetesPlatform, node: str) -> bool:
    return bool(platform.core().read_node(node).spec.unschedulable)


def _records() -> list[Path]:
    return sorted(state_dir().glob("*.json"))


def test_delete_gpu_node_then_recreate(
    deployed: tuple[KubernetesPlatform, Timeline], cluster: EmulatedCluster, tmp_path: Path
) -> None:
    platform, timeline = deployed
    with activate(_ctx(platform, timeline, tmp_path)):
        result = k8s_actions.delete_gpu_node(node="gpu-a", recreate=False)
        assert "gpu-a" not in _objects(cluster, "nodes")  # the node is gone
        assert len(_records()) == 1  # registered with the reverter
        pods = {p.metadata.name: p.spec.node_name for p in platform.pods()}
        assert not set(result["evicted"]) & set(pods)
        _wait(lambda: sorted(p.spec.node_name for p in platform.pods()) == ["gpu-b", "gpu-b"])
        back = k8s_actions.recreate_gpu_node("gpu-a")
    assert back["recreated"]
    node = platform.core().read_node("gpu-a")
    assert node.metadata.labels["nvidia.com/gpu.present"] == "true"
    assert not node.spec.unschedulable
    assert (tmp_path / "node-gpu-a.json").exists()
    assert revert_all() == 1 and _records() == []  # node exists: nothing more to do


def test_delete_gpu_node_recreates_after_down_time(
    deployed: tuple[KubernetesPlatform, Timeline], cluster: EmulatedCluster, tmp_path: Path
) -> None:
    platform, timeline = deployed
    with activate(_ctx(platform, timeline, tmp_path)):
        result = k8s_actions.delete_gpu_node(node="gpu-b", down_for_s=0.2)
    assert result["recreated"] and result["evicted"]
    assert "gpu-b" in _objects(cluster, "nodes")
    assert _records() == []


def test_node_delete_dry_run_makes_no_mutating_call(
    deployed: tuple[KubernetesPlatform, Timeline], cluster: EmulatedCluster, tmp_path: Path
) -> None:
    platform, timeline = deployed
    platform.dry_run = True
    before = len(cluster.requests())
    with activate(_ctx(platform, timeline, tmp_path)), no_mutations():
        result = k8s_actions.delete_gpu_node(node="gpu-a")
    assert result["dry_run"]
    assert not [m for m, _ in cluster.requests()[before:] if m in MUTATING]
    assert "gpu-a" in _objects(cluster, "nodes")


_HOLDER = textwrap.dedent(
    """
    import sys, time
    from harness.config import KubernetesPlatformSpec, WorkloadSpec
    from harness.platforms.kubernetes import KubernetesPlatform
    from harness.timeline import Timeline

    spec = KubernetesPlatformSpec.model_validate(
        {"kind": "kubernetes", "context": "kmock", "kubeconfig": sys.argv[1], "access": "url"}
    )
    platform = KubernetesPlatform(spec, WorkloadSpec(), Timeline(None))
    platform.connect()
    platform.drain("gpu-a", timeout_s=10, ttl_s=float(sys.argv[2]))
    print("cordoned", flush=True)
    time.sleep(600)
    """
)


def _hold_cordon(
    processes: Processes, cluster: EmulatedCluster, ttl_s: float
) -> subprocess.Popen[str]:
    proc = processes.start(
        [sys.executable, "-c", _HOLDER, str(cluster.kubeconfig), str(ttl_s)],
        stdout=subprocess.PIPE,
        text=True,
        env=dict(os.environ),
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "cordoned"
    return proc


@pytest.mark.parametrize("how", ["sigkill", "ttl"])
def test_cordon_is_undone_when_the_holder_dies_or_the_ttl_ends(
    cluster: EmulatedCluster, tmp_path: Path, how: str, processes: Processes
) -> None:
    platform = KubernetesPlatform(_spec(), WorkloadSpec(), Timeline(None), tmp_path)
    platform.connect()
    proc = _hold_cordon(processes, cluster, ttl_s=300.0 if how == "sigkill" else 1.0)
    assert len(_records()) == 1
    if how == "sigkill":
        assert _unschedulable(platform, "gpu-a")
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    _wait(lambda: not _unschedulable(platform, "gpu-a"), timeout=20.0)
    _wait(lambda: _records() == [], timeout=5.0)


def test_cleanup_uncordons_what_a_dead_run_left(cluster: EmulatedCluster, tmp_path: Path) -> None:
    platform = KubernetesPlatform(_spec(), WorkloadSpec(), Timeline(None), tmp_path)
    platform.connect()
    platform.core().patch_node("gpu-b", {"spec": {"unschedulable": True}})
    record = new_record("k8s", "cordon", "gpu-b", 300.0)
    record.owner_pid, record.owner_start = 2**22 + 1, None  # no such process: a dead run
    record.k8s = {
        "kubeconfig": str(cluster.kubeconfig),
        "context": "kmock",
        "node": "gpu-b",
        "action": "uncordon",
    }
    record.save()
    done = cleanup()
    assert [r.id for r, _ in done] == [record.id]
    assert not _unschedulable(platform, "gpu-b") and _records() == []


def test_timeline_control_writes_cluster_faults(
    deployed: tuple[KubernetesPlatform, Timeline], tmp_path: Path
) -> None:
    platform, timeline = deployed
    drain = {
        "type": "action",
        "name": "drain",
        "provider": {
            "type": "python",
            "module": "harness.chaos.k8s",
            "func": "drain_gpu_node",
            "arguments": {"node": "gpu-a"},
        },
    }
    uncordon = {
        "type": "action",
        "name": "uncordon",
        "provider": {
            "type": "python",
            "module": "harness.chaos.k8s",
            "func": "uncordon_gpu_node",
            "arguments": {"node": "gpu-a"},
        },
    }
    with activate(_ctx(platform, timeline, tmp_path)):
        controls.before_activity_control(drain)
        controls.after_activity_control(drain, state={"held": True})
        controls.after_activity_control(uncordon)
    events = [(e["kind"], e["target"], e["details"].get("fault")) for e in timeline.events]
    assert ("fault_start", "gpu-a", "drain_gpu_node") in events
    ends = [e for e in timeline.events if e["kind"] == "fault_end"]
    assert [e["details"]["ended_by"] for e in ends] == ["revert_action"]


def _load_spec() -> LoadSpec:
    shape = SpikeShape(duration_s=10, baseline_users=4, spike_start_s=0, spike_duration_s=0)
    return LoadSpec(shape=shape, workers=3)


def test_locust_jobs_created_and_deleted(
    deployed: tuple[KubernetesPlatform, Timeline], cluster: EmulatedCluster, tmp_path: Path
) -> None:
    platform, _ = deployed
    jobs = KubernetesLoadJobs(
        platform, _load_spec(), tmp_path, "ghcr.io/gpuchaos/load:0.1.0", platform.endpoint
    )
    names = jobs.create(time.time() + 30)
    # ConfigMap, Service and Job of the master, Job of the workers
    assert names == [
        "gpuchaos-load-config",
        "gpuchaos-load-master",
        "gpuchaos-load-master",
        "gpuchaos-load-workers",
    ]
    from kubernetes import client

    batch = client.BatchV1Api(platform.api)
    workers = batch.read_namespaced_job("gpuchaos-load-workers", NS)
    assert workers.spec.completion_mode == "Indexed"
    assert workers.spec.completions == 3 and workers.spec.parallelism == 3
    command = workers.spec.template.spec.containers[0].args[0]
    assert "--worker" in command and "gpuchaos-load-master.gpuchaos.svc" in command
    cm = platform.core().read_namespaced_config_map("gpuchaos-load-config", NS)
    assert '"workers": 3' in cm.data["load.json"]
    assert not jobs.finished()
    assert _objects(cluster, "jobs") == ["gpuchaos-load-master", "gpuchaos-load-workers"]
    jobs.delete()
    assert _objects(cluster, "jobs") == [] and _objects(cluster, "configmaps") == []


def test_locust_jobs_dry_run(
    deployed: tuple[KubernetesPlatform, Timeline], cluster: EmulatedCluster, tmp_path: Path
) -> None:
    platform, _ = deployed
    platform.dry_run = True
    before = len(cluster.requests())
    jobs = KubernetesLoadJobs(platform, _load_spec(), tmp_path, "img", platform.endpoint)
    with no_mutations():
        jobs.create(time.time())
        assert jobs.wait(1.0) and jobs.collect() == 0
    assert not [m for m, _ in cluster.requests()[before:] if m in MUTATING]
    assert any("Job" in line for line in platform.plan)


def test_records_read_from_a_worker_log() -> None:
    header = ",".join(COLUMNS + OPTIONAL_COLUMNS)
    width = len(COLUMNS + OPTIONAL_COLUMNS)
    row = ",".join(["5.0", "5.5", "500.0"] + [""] * (width - 3))
    log = f"[warning] something\n{header}\n{row}\n1.0,2.0\nTraceback: x\n"
    rows: list[Any] = parse_log_records(log)
    assert rows == [row.split(",")]
