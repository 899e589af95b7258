"""Two tenants on one pool of the local platform, for real (issue #20): the tiny model's
servers as processes, each tenant's own router and Locust, one timeline.

One time-slicing pool is started and loaded for a few seconds (module-scoped); meanwhile
tenant ``a``'s autoscaler (p99 above 1 ms: always wants more) hits its quota of 1, and an
admission rule denies a new replica of tenant ``b`` (no memory cap in its contract). A
second, unloaded mps pool shows the memory cap as the replicas' soft RLIMIT_AS."""

from __future__ import annotations

import csv
import os
import resource
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from harness.config import HarnessSpec
from harness.faults.procfs import address_space_limit
from harness.load.factory import make_load_runner
from harness.load.tenants import TenantLoads
from harness.platforms import make_platform
from harness.platforms.local.tenancy import TenantPool
from harness.scoring.rundir import score_run_dir
from harness.tenancy_run import write_tenant_documents
from harness.timeline import Timeline
from tests.support.procs import wait_for

LOAD_S = 8
WORKLOAD = {"kind": "llm", "model": "tiny", "max_batch_size": 4, "ready_timeout_s": 90}
PLATFORM = {
    "kind": "local",
    "restart_backoff_s": 0.2,
    "probe_interval_s": 0.2,
    "nodes": [{"name": "gpu0", "cpus": [0]}, {"name": "gpu1", "cpus": [1]}],
}


def _tenant(name: str, contract: dict[str, Any], **more: Any) -> dict[str, Any]:
    shape = {"kind": "step", "duration_s": LOAD_S, "start": 1, "increment": 0, "step_s": LOAD_S}
    return {
        "name": name,
        "workload": WORKLOAD,
        "load": {"max_tokens": 4, "shape": shape},
        "contract": contract,
        **more,
    }


def _block(sharing: str, tenants: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "name": "gpuchaos",
        "platform": PLATFORM,
        "tenancy": {"sharing": sharing, "tenants": tenants},
    }


def _spec(sharing: str, tenants: list[dict[str, Any]]) -> HarnessSpec:
    return HarnessSpec.model_validate(_block(sharing, tenants))


@dataclass
class Run:
    pool: TenantPool
    timeline: Timeline
    run_dir: Path
    pids: dict[str, int]  # replica -> pid while the load ran
    nice: dict[str, int]
    cores: dict[str, set[int]]
    limits: dict[str, tuple[int | None, int | None] | None]
    headers: dict[str, str | None]  # tenant -> x-replica-id of an answer of its endpoint
    denied_state: str
    quota_before: int

    def events(self, kind: str) -> list[dict[str, Any]]:
        return [e for e in self.timeline.events if e["kind"] == kind]


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    run_dir = tmp_path_factory.mktemp("tenancy")
    rule = {"metric": "p99_latency_ms", "threshold": 1, "window_s": 5, "polling_interval_s": 1}
    autoscaler = {"rules": [rule], "max_replicas": 4}
    block = _block(
        "time-slicing",
        [
            _tenant("a", {"priority": "high"}, autoscaler=autoscaler),
            _tenant("b", {"priority": "low", "quota": 2}),
        ],
    )
    spec = HarnessSpec.model_validate(block)
    # the experiment as a run writes it, so the folder can be scored like a run's
    document = {"version": "1.0.0", "title": "tenancy", "description": "d", "method": []}
    document["extensions"] = [block]
    (run_dir / "experiment.yaml").write_text(yaml.safe_dump(document), encoding="utf-8")
    write_tenant_documents(document, spec, run_dir)
    timeline = Timeline(run_dir / "timeline.jsonl")
    pool = make_platform(spec, timeline, run_dir)
    assert isinstance(pool, TenantPool)
    pool.start()
    try:
        load = make_load_runner(spec.load, pool.endpoint, run_dir, timeline, platform=pool)
        assert isinstance(load, TenantLoads)
        load.lead_s = 2.0
        load.start()
        try:
            pids = pool.replica_pids()
            headers = {}
            for name in pool.tenant_names():
                answer = httpx.post(
                    f"{pool.tenant_endpoint(name)}/v1/completions",
                    json={"prompt": "hello", "max_tokens": 2},
                    timeout=30,
                )
                headers[name] = answer.headers.get("x-replica-id")
            # admission: tenant b's contract has no memory cap; its new replica is denied
            pool.set_admission("b", "memory-cap")
            denied = pool.add_replica("b-gpu1")
            assert denied is not None
            wait_for(lambda: bool(_of(timeline, "admission_denied")), 20, "admission_denied")
            state = next(r.state for r in pool.replicas() if r.id == denied)
            pool.remove_replica(denied)
            pool.set_admission("b", None)
            quota_before = pool.set_quota("a", 1)  # what the contract said already
            load.wait(LOAD_S + 30)
        finally:
            load.stop()
        yield Run(
            pool,
            timeline,
            run_dir,
            pids,
            {r: os.getpriority(os.PRIO_PROCESS, pid) for r, pid in pids.items()},
            {r: os.sched_getaffinity(pid) for r, pid in pids.items()},
            {r: address_space_limit(pid) for r, pid in pids.items()},
            headers,
            state,
            quota_before,
        )
    finally:
        pool.stop()


def _of(timeline: Timeline, kind: str) -> list[dict[str, Any]]:
    return [e for e in timeline.events if e["kind"] == kind]


def test_each_tenant_runs_its_replicas_on_the_shared_cores_at_its_priority(run: Run) -> None:
    assert set(run.pids) == {"a-gpu0-0", "b-gpu0-0"}
    assert run.cores["a-gpu0-0"] == run.cores["b-gpu0-0"] == {0}  # time-sliced: one GPU
    own = os.getpriority(os.PRIO_PROCESS, 0)
    assert run.nice["a-gpu0-0"] == max(0, own)  # high
    assert run.nice["b-gpu0-0"] == max(10, own)  # low yields the shared cores first
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)  # inherited: time-slicing sets no cap
    inherited = None if soft == resource.RLIM_INFINITY else soft
    assert all(limit is not None and limit[0] == inherited for limit in run.limits.values())


def test_each_tenant_endpoint_answers_from_its_own_replicas(run: Run) -> None:
    assert run.headers == {"a": "a-gpu0-0", "b": "b-gpu0-0"}
    assert run.pool.endpoint == run.pool.tenant_endpoint("a")


def test_each_tenant_records_in_its_own_folder_on_one_clock(run: Run) -> None:
    assert not (run.run_dir / "requests.csv").exists()
    starts = {}
    for name in ("a", "b"):
        with open(run.run_dir / "tenants" / name / "requests.csv", newline="") as fh:
            rows = list(csv.DictReader(fh))
        assert rows, name
        assert {r["replica"] for r in rows if r["status"] == "200"} == {f"{name}-gpu0-0"}
        starts[name] = min(float(r["start"]) for r in rows)
    load_starts = {e["details"]["tenant"]: e["time"] for e in run.events("load_start")}
    assert set(load_starts) == {"a", "b"}
    assert load_starts["a"] == load_starts["b"]  # one t0
    assert all(starts[n] >= load_starts[n] - 0.5 for n in starts)


def test_every_platform_and_load_event_names_its_tenant(run: Run) -> None:
    for kind in ("replica_start", "replica_ready", "load_start", "load_end", "phase"):
        events = run.events(kind)
        assert events, kind
        assert {e["details"]["tenant"] for e in events} == {"a", "b"}, kind
    ready = {e["target"]: e["details"]["tenant"] for e in run.events("replica_ready")}
    assert ready == {"a-gpu0-0": "a", "b-gpu0-0": "b"}


def test_the_autoscaler_is_held_to_the_quota(run: Run) -> None:
    refused = run.events("quota_refused")
    assert refused, "tenant a's autoscaler wanted more than its quota of 1"
    first = refused[0]
    assert first["target"] == "a"
    assert first["details"] == {
        "tenant": "a",
        "wanted": 2,
        "quota": 1,
        "replicas": 1,
        "reason": "scale-up",
    }
    assert {r.id for r in run.pool.replicas() if r.id.startswith("a-")} == {"a-gpu0-0"}
    assert run.quota_before == 1 and run.pool.quota("a") == 1
    scale = [e for e in run.events("scale") if e["details"].get("tenant") == "a"]
    assert any(e["details"]["outcome"] == "no capacity" for e in scale)


def test_an_admission_rule_denies_a_launch_and_the_replica_waits(run: Run) -> None:
    denied = run.events("admission_denied")
    assert denied
    assert {e["target"] for e in denied} == {"b-gpu1-0"}
    assert denied[0]["details"] == {
        "tenant": "b",
        "rule": "memory-cap",
        "reason": "no memory cap (contract.memory_mib unset)",
    }
    assert run.denied_state == "pending"  # wanted, never started
    starts = {e["target"] for e in run.events("replica_start")}
    assert "b-gpu1-0" not in starts
    assert run.pool.admission_would_deny("b") is None  # the rule was lifted


def test_the_scorecard_shows_the_capacity_denied_and_the_denials(run: Run) -> None:
    """Scored like any run folder: the quota's refusals are capacity tenant a was denied, the
    admission rule's denial is tenant b's; each tenant's own records are scored."""
    before = len(run.events("quota_refused"))
    card = score_run_dir(run.run_dir)
    after = len(run.events("quota_refused"))  # the pool still runs: a and its autoscaler too
    assert card["sharing"] == "time-slicing" and set(card["tenants"]) == {"a", "b"}
    denied = card["denied_capacity"]["a"]
    assert 1 <= before <= denied["refusals"] <= after and denied["quota"] == 1
    assert denied["replica_seconds_denied"] > 0
    admissions = len(run.events("admission_denied"))  # the rule was lifted before the end
    assert card["admission_denials"]["b"]["denials"] == admissions
    assert card["admission_denials"]["b"]["rules"] == {"memory-cap": admissions}
    for name in ("a", "b"):
        assert card["tenants"][name]["run"]["requests"] > 0, name


def test_mps_caps_each_replica_address_space(tmp_path: Path) -> None:
    spec = _spec(
        "mps",
        [_tenant("a", {"memory_mib": 1024}), _tenant("b", {"gpu_share": 0.5})],
    )
    timeline = Timeline(tmp_path / "timeline.jsonl")
    pool = make_platform(spec, timeline, tmp_path)
    assert isinstance(pool, TenantPool)
    pool.start()
    try:
        pids = pool.replica_pids()
        ready = {e["target"]: e["details"] for e in _of(timeline, "replica_ready")}
        for rid, cap in (("a-gpu0-0", 1024.0), ("b-gpu0-0", 2048.0)):
            assert pool.memory_cap_mib(rid) == cap
            soft, _ = address_space_limit(pids[rid]) or (None, None)
            assert soft is not None and soft == ready[rid]["rlimit_as"], rid
            assert ready[rid]["memory_cap_mib"] == cap
            assert soft >= cap * 2**20  # its size when Ready plus the cap
        assert pool.co_resident("a-gpu0-0") == ["a-gpu0-0", "b-gpu0-0"]
    finally:
        pool.stop()
