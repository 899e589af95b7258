"""Locust as Kubernetes Jobs behind ``gpuchaos run`` (``load.workers_on: kubernetes``), and
the timeline control naming the node a cluster fault picked, against kmock over real HTTP
(see test_k8s_platform.py). kmock runs no Job controller: the tests put the worker pods and
their logs in place themselves."""

from __future__ import annotations

import csv
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from harness.chaos import controls
from harness.chaos import k8s as k8s_actions
from harness.chaos.context import activate
from harness.config import LoadSpec, SpikeShape
from harness.errors import LoadError
from harness.load.factory import make_load_runner
from harness.load.k8s_runner import KubernetesJobsRunner
from harness.load.local import LocustRunner
from harness.load.local_workers import DistributedLocustRunner
from harness.load.merge import HEADER
from harness.platforms.kubernetes import KubernetesPlatform
from harness.rundir import REQUESTS_FILE
from harness.scoring.spans import fault_window
from harness.timeline import Timeline
from tests.integration import test_k8s_platform as base
from tests.integration.test_k8s_platform import NS, _ctx, _objects
from tests.k8s.kmock_cluster import EmulatedCluster, ready_pod

cluster = base.cluster
deployed = base.deployed

IMAGE = "registry.example/gpuchaos-load:test"
SERVICE_URL = "http://gpuchaos-llm.gpuchaos.svc.cluster.local:8000"
LOAD_NAME = "gpuchaos-load"


@pytest.fixture(autouse=True)
def _state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GPUCHAOS_STATE_DIR", str(tmp_path / "state"))


def _spec(workers: int = 2, **kw: Any) -> LoadSpec:
    shape = SpikeShape(duration_s=10, baseline_users=4, spike_start_s=0, spike_duration_s=0)
    return LoadSpec(shape=shape, workers=workers, **kw)


def _jobs_spec(**kw: Any) -> LoadSpec:
    return _spec(workers_on="kubernetes", workers_image=IMAGE, workers_start_s=0.2, **kw)


def _port_forwarded(platform: KubernetesPlatform) -> None:
    """Make the platform's endpoint a port-forward on 127.0.0.1, as access: port-forward is."""
    platform._forwarder = SimpleNamespace(port=4321, stop=lambda: None)  # type: ignore[assignment]
    assert platform.endpoint == "http://127.0.0.1:4321"


def _row(start: float) -> list[str]:
    values = {"start": f"{start:.3f}", "end": f"{start + 0.5:.3f}", "latency_ms": "500.0"}
    return [values.get(c, "") for c in HEADER]


def _log(rows: list[list[str]], partial: bool = False) -> str:
    lines = ["[2024] WARNING locust: a warning", ",".join(HEADER)]
    lines += [",".join(r) for r in rows]
    text = "\n".join(lines) + "\n"
    return text + ("9.9,10" if partial else "")  # a row still being written


def _worker_pod(cluster: EmulatedCluster, index: int) -> str:
    name = f"{LOAD_NAME}-workers-{index}-x{index}"
    labels = {"app.kubernetes.io/instance": LOAD_NAME, "gpuchaos/locust-role": "worker"}
    pod = ready_pod(name, NS, "cpu-a", labels, owner="Job")
    pod["metadata"]["annotations"] = {"batch.kubernetes.io/job-completion-index": str(index)}
    cluster.put("v1/pods", NS, pod)
    return name


def _finish_master(cluster: EmulatedCluster, platform: KubernetesPlatform) -> None:
    from kubernetes import client

    job = client.BatchV1Api(platform.api).read_namespaced_job(f"{LOAD_NAME}-master", NS)
    raw = client.ApiClient().sanitize_for_serialization(job)
    raw["status"] = {"succeeded": 1}
    cluster.put("batch/v1/jobs", NS, raw)


def _records(run_dir: Path) -> list[list[str]]:
    with open(run_dir / REQUESTS_FILE, newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    assert tuple(rows[0]) == tuple(HEADER)
    return rows[1:]


def test_factory_picks_the_jobs_runner_for_workers_on_kubernetes(
    deployed: tuple[KubernetesPlatform, Timeline], tmp_path: Path
) -> None:
    platform, timeline = deployed
    _port_forwarded(platform)
    runner = make_load_runner(
        _jobs_spec(), platform.endpoint, tmp_path, timeline, platform=platform
    )
    assert isinstance(runner, KubernetesJobsRunner)
    assert runner.endpoint == SERVICE_URL == runner.jobs.url  # in-cluster, not 127.0.0.1
    assert runner.jobs.image == IMAGE
    local = make_load_runner(_spec(), platform.endpoint, tmp_path, timeline, platform=platform)
    assert type(local) is DistributedLocustRunner
    single = make_load_runner(_spec(0), platform.endpoint, tmp_path, timeline)
    assert type(single) is LocustRunner
    with pytest.raises(LoadError, match=r"needs platform\.kind: kubernetes"):
        make_load_runner(_jobs_spec(), "http://127.0.0.1:1", tmp_path, timeline)


def test_jobs_runner_creates_reads_merges_and_deletes_exactly_its_objects(
    deployed: tuple[KubernetesPlatform, Timeline], cluster: EmulatedCluster, tmp_path: Path
) -> None:
    from kubernetes import client

    platform, timeline = deployed
    _port_forwarded(platform)
    run_dir = tmp_path / "run"
    pods = [_worker_pod(cluster, i) for i in (0, 1)]
    now = time.time()
    cluster.h.pod_logs[NS, pods[0]] = _log([_row(now + 1), _row(now + 3)], partial=True)
    cluster.h.pod_logs[NS, pods[1]] = _log([_row(now + 2)])
    load = make_load_runner(_jobs_spec(), platform.endpoint, run_dir, timeline, platform=platform)
    load.start()
    try:
        # the objects, as created through the API
        cm = platform.core().read_namespaced_config_map(f"{LOAD_NAME}-config", NS)
        assert '"workers_on": "kubernetes"' in cm.data["load.json"]
        svc = platform.core().read_namespaced_service(f"{LOAD_NAME}-master", NS)
        assert svc.spec.ports[0].port == 5557
        batch = client.BatchV1Api(platform.api)
        master = batch.read_namespaced_job(f"{LOAD_NAME}-master", NS)
        workers = batch.read_namespaced_job(f"{LOAD_NAME}-workers", NS)
        for job in (master, workers):
            assert job.spec.template.spec.containers[0].image == IMAGE
        master_args = master.spec.template.spec.containers[0].args[0]
        assert f"--host {SERVICE_URL}" in master_args and "127.0.0.1" not in master_args
        assert "--expect-workers 2" in master_args
        assert workers.spec.completions == 2 and workers.spec.parallelism == 2
        assert workers.spec.completion_mode == "Indexed"
        worker_args = workers.spec.template.spec.containers[0].args[0]
        assert f"--master-host {LOAD_NAME}-master.{NS}.svc" in worker_args
        # the rows read live (complete lines only) are in requests.csv already
        assert len(_records(run_dir)) == 3 and load.record_count() == 3
        assert load.running
        cluster.h.pod_logs[NS, pods[1]] = _log([_row(now + 2), _row(now + 4)])
        _finish_master(cluster, platform)
        assert load.wait(10.0)
    finally:
        before = len(cluster.requests())
        code = load.stop()
    assert code == 0
    starts = [float(r[0]) for r in _records(run_dir)]
    assert starts == sorted(starts) and len(starts) == 4  # merged, sorted
    assert sorted(p.name for p in run_dir.glob("requests.worker-*.csv")) == [
        "requests.worker-0.csv",
        "requests.worker-1.csv",
    ]
    deleted = sorted(p for m, p in cluster.requests()[before:] if m == "DELETE")
    assert deleted == [
        f"/api/v1/namespaces/{NS}/configmaps/{LOAD_NAME}-config",
        f"/api/v1/namespaces/{NS}/services/{LOAD_NAME}-master",
        f"/apis/batch/v1/namespaces/{NS}/jobs/{LOAD_NAME}-master",
        f"/apis/batch/v1/namespaces/{NS}/jobs/{LOAD_NAME}-workers",
    ]
    assert _objects(cluster, "jobs") == [] and _objects(cluster, "configmaps") == []
    assert _objects(cluster, "services") == ["gpuchaos-llm"]  # the workload's: untouched
    assert _objects(cluster, "deployments") == ["gpuchaos-llm"]
    end = [e for e in timeline.events if e["kind"] == "load_end"]
    assert len(end) == 1 and end[0]["details"]["records"] == 4
    assert end[0]["details"]["scheduled"] is None  # closed loop: no schedule to count
    assert load.stop() == 0  # idempotent


def test_an_aborted_run_keeps_the_records_read_and_deletes_the_jobs(
    deployed: tuple[KubernetesPlatform, Timeline], cluster: EmulatedCluster, tmp_path: Path
) -> None:
    platform, timeline = deployed
    run_dir = tmp_path / "run"
    pod = _worker_pod(cluster, 0)
    now = time.time()
    cluster.h.pod_logs[NS, pod] = _log([_row(now + 1), _row(now + 2)])
    load = make_load_runner(_jobs_spec(), platform.endpoint, run_dir, timeline, platform=platform)
    load.start()
    # the worker pod is gone (evicted, deleted) before the end: its log cannot be read again
    platform.core().delete_namespaced_pod(pod, NS)
    assert load.stop() is None  # cut short: the master never finished
    assert len(_records(run_dir)) == 2
    assert _objects(cluster, "jobs") == [] and _objects(cluster, "configmaps") == []
    end = [e for e in timeline.events if e["kind"] == "load_end"]
    assert end[0]["details"]["exited_by_itself"] is False


def test_a_start_without_records_fails_and_deletes_the_jobs(
    deployed: tuple[KubernetesPlatform, Timeline], cluster: EmulatedCluster, tmp_path: Path
) -> None:
    platform, timeline = deployed
    load = make_load_runner(
        _jobs_spec(),
        platform.endpoint,
        tmp_path / "run",
        timeline,
        platform=platform,
        first_record_timeout_s=0.5,
    )
    with pytest.raises(LoadError, match="no request record in the Locust worker pods' logs"):
        load.start()
    assert _objects(cluster, "jobs") == [] and _objects(cluster, "configmaps") == []
    assert _objects(cluster, "services") == ["gpuchaos-llm"]


def _activity(func: str, arguments: dict[str, Any] | None = None) -> dict[str, Any]:
    provider: dict[str, Any] = {"type": "python", "module": "harness.chaos.k8s", "func": func}
    if arguments is not None:
        provider["arguments"] = arguments
    return {"type": "action", "name": func, "provider": provider}


def test_timeline_names_the_node_a_drain_picked(
    deployed: tuple[KubernetesPlatform, Timeline], tmp_path: Path
) -> None:
    platform, timeline = deployed
    drain = _activity("drain_gpu_node", {"down_for_s": 0.1, "timeout_s": 10})
    with activate(_ctx(platform, timeline, tmp_path)):
        controls.before_activity_control(drain)
        picked = drain["provider"]["arguments"]["node"]
        assert picked == "gpu-a"  # one Ready pod on each GPU node: the first by name
        # chaoslib calls the action with the activity's arguments, now naming the node
        result = k8s_actions.drain_gpu_node(**drain["provider"]["arguments"])
        run = {"activity": dict(drain), "output": result, "status": "succeeded"}
        controls.after_activity_control(drain, state=run)
    assert result["node"] == picked
    faults = [e for e in timeline.events if e["kind"] in ("fault_start", "fault_end")]
    assert [(e["kind"], e["target"]) for e in faults] == [
        ("fault_start", picked),
        ("fault_end", picked),
    ]
    assert all(e["details"]["picked"] for e in faults)
    start, end, target = fault_window(timeline.events)
    assert target == picked and start is not None and end is not None and end >= start


def test_a_revert_without_target_ends_the_picked_fault(
    deployed: tuple[KubernetesPlatform, Timeline], tmp_path: Path
) -> None:
    platform, timeline = deployed
    drain = _activity("drain_gpu_node")
    with activate(_ctx(platform, timeline, tmp_path)):
        controls.before_activity_control(drain)
        run = {"activity": dict(drain), "output": {"held": True}, "status": "succeeded"}
        controls.after_activity_control(drain, state=run)  # left in place
        controls.after_activity_control(_activity("uncordon_gpu_node"))
    ends = [e for e in timeline.events if e["kind"] == "fault_end"]
    assert [(e["target"], e["details"]["ended_by"]) for e in ends] == [("gpu-a", "revert_action")]
    assert fault_window(timeline.events)[2] == "gpu-a"


def test_dry_run_plans_the_jobs_without_mutating(
    cluster: EmulatedCluster, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import yaml

    from harness.cli import main

    path = base._experiment_file(tmp_path)
    doc = yaml.safe_load(path.read_text())
    doc["extensions"][0]["load"].update(workers=3, workers_on="kubernetes", workers_image=IMAGE)
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    for i, node in enumerate(("gpu-a", "gpu-b")):
        labels = {
            "app.kubernetes.io/name": "gpuchaos",
            "app.kubernetes.io/instance": "gpuchaos-llm",
        }
        cluster.put("v1/pods", NS, ready_pod(f"gpuchaos-llm-{i}", NS, node, labels))
    code = main(["run", str(path), "--dry-run"])
    out = capsys.readouterr().out
    assert code == 0, out
    for expected in (
        f"would create ConfigMap {NS}/{LOAD_NAME}-config",
        f"would create Service {NS}/{LOAD_NAME}-master",
        f"would create Job {NS}/{LOAD_NAME}-workers",
        f"Locust as Jobs: 3 worker(s), image {IMAGE}, load to {SERVICE_URL}",
    ):
        assert expected in out
    assert {m for m, _ in cluster.requests()} == {"GET"}
