"""The tenancy faults against a small fake tenant pool (no processes, no sockets): their
arguments are checked, each picks the replicas its sharing mode says it reaches, and the
platform-held ones (quota, admission) are undone by their revert."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from harness.config import LoadSpec
from harness.errors import ChaosError, FaultNoEffect
from harness.faults import lifecycle, registry
from harness.faults.builtin.tenancy_context import blast
from harness.faults.builtin.tenancy_load import SpikeLoadArgs, answered, spike_spec
from harness.faults.builtin.tenancy_memory import headrooms, pool_node
from harness.timeline import Timeline

GPU_MIB = 4096.0
#: a pid that is certainly not running (above the kernel's pid_max)
DEAD_PID = 2**22 + 7


@dataclass
class FakePool:
    """Two tenants, two pool nodes (gpu0, gpu1): teama runs one replica on each, teamb one
    on gpu0. Which replicas share a device follows the mode, as the contract says."""

    sharing: str = "time-slicing"
    gpu_memory_mib: float = GPU_MIB
    kind: str = "local"
    caps: dict[str, float | None] = field(default_factory=dict)
    quotas: dict[str, int] = field(default_factory=lambda: {"teama": 3, "teamb": 1})
    rules: dict[str, str] = field(default_factory=dict)
    killed: list[tuple[str, int]] = field(default_factory=list)
    recreated: list[tuple[str, float | None]] = field(default_factory=list)
    replicas: dict[str, dict[str, int]] = field(
        default_factory=lambda: {
            "teama": {"teama-gpu0-0": 101, "teama-gpu1-0": 102},
            "teamb": {"teamb-gpu0-0": 201},
        }
    )

    def tenant_names(self) -> list[str]:
        return ["teama", "teamb"]

    def tenant_replicas(self, tenant: str) -> dict[str, int]:
        return dict(self.replicas[tenant])

    def tenant_of(self, replica_id: str) -> str:
        return replica_id.split("-", 1)[0]

    def tenant_dir(self, tenant: str) -> Path:
        return Path("/nonexistent") / tenant

    def co_resident(self, replica_id: str) -> list[str]:
        if self.sharing in ("exclusive", "mig"):
            return [replica_id]
        node = replica_id.split("-")[1]
        every = [r for t in self.replicas.values() for r in t]
        return sorted(r for r in every if r.split("-")[1] == node)

    def memory_cap_mib(self, replica_id: str) -> float | None:
        return self.caps.get(replica_id)

    def set_quota(self, tenant: str, quota: int | None) -> int:
        before = self.quotas[tenant]
        self.quotas[tenant] = 3 if quota is None else quota
        return before

    def quota(self, tenant: str) -> int:
        return self.quotas[tenant]

    def set_admission(self, tenant: str, rule: str | None) -> None:
        if rule is None:
            self.rules.pop(tenant, None)
        else:
            self.rules[tenant] = rule

    def admission_would_deny(self, tenant: str) -> str | None:
        rule = self.rules.get(tenant)
        if rule == "all" or (rule == "memory-cap" and tenant == "teamb"):
            return f"{rule}: denied"
        return None

    def kill_replica(self, replica_id: str, sig: int = 9) -> int:
        pid = self.replicas[self.tenant_of(replica_id)][replica_id]
        self.killed.append((replica_id, sig))
        return pid

    def recreate_replica(self, replica_id: str, memory_mib: float | None) -> tuple[int, int]:
        self.recreated.append((replica_id, memory_mib))
        if memory_mib is not None:
            self.caps[replica_id] = memory_mib
        return DEAD_PID, os.getpid()


def _ctx(pool: FakePool, tmp_path: Path, declared: dict[str, float] | None = None) -> Any:
    declared = declared or {}
    tenants = {
        name: SimpleNamespace(
            contract=SimpleNamespace(memory_mib=declared.get(name)),
            workload=SimpleNamespace(kind="llm"),
        )
        for name in pool.tenant_names()
    }
    tenancy = SimpleNamespace(tenant=lambda name: tenants[name])
    spec = SimpleNamespace(tenancy=tenancy)
    return SimpleNamespace(platform=pool, timeline=Timeline(None), run_dir=tmp_path, spec=spec)


def _fault(name: str) -> Any:
    fault = registry.get("local", name)
    assert fault is not None
    return fault


# -- registration and arguments ----------------------------------------------------------------

NAMES = (
    "spike_neighbour_load",
    "spike_neighbour_memory",
    "fault_neighbour_context",
    "exhaust_quota",
    "deny_admission",
    "recreate_replica",
)


@pytest.mark.parametrize("name", NAMES)
def test_each_tenancy_fault_is_registered_aimed_at_a_tenant_and_documented(name: str) -> None:
    fault = _fault(name)
    assert fault.target_arg == "tenant" and fault.platform == "local"
    assert "tenant" in fault.args.model_fields
    doc = type(fault).__doc__ or ""
    assert "stand-in" in doc.lower() or "real on" in doc.lower(), name
    assert "Proof" in doc, name


@pytest.mark.parametrize(
    ("name", "raw", "problem"),
    [
        ("spike_neighbour_load", {"users": 4, "rate": 2.0}, "not both"),
        ("spike_neighbour_load", {"users": 0}, "users"),
        ("spike_neighbour_memory", {"mib": -1}, "mib"),
        ("fault_neighbour_context", {"kind": "melt"}, "kind"),
        ("exhaust_quota", {"quota": 0}, "quota"),
        ("deny_admission", {"rule": "none"}, "rule"),
        ("recreate_replica", {"memory_mib": 0}, "memory_mib"),
        ("spike_neighbour_memory", {"tenant": "Team B"}, "tenant"),
    ],
)
def test_bad_arguments_are_refused_naming_them(
    name: str, raw: dict[str, Any], problem: str
) -> None:
    with pytest.raises(ChaosError, match=problem):
        lifecycle.parse_args(_fault(name), raw)


def test_a_run_without_tenants_is_refused_in_one_line(tmp_path: Path) -> None:
    ctx = SimpleNamespace(
        platform=SimpleNamespace(kind="local"), timeline=Timeline(None), run_dir=tmp_path
    )
    with pytest.raises(ChaosError, match="needs tenants"):
        lifecycle.run(_fault("exhaust_quota"), ctx, {"tenant": "teama"})


def test_an_unknown_tenant_is_refused_naming_the_tenants(tmp_path: Path) -> None:
    ctx = _ctx(FakePool(), tmp_path)
    with pytest.raises(ChaosError, match="'teamz' is not one of teama, teamb"):
        lifecycle.run(_fault("exhaust_quota"), ctx, {"tenant": "teamz", "duration_s": 0.05})


def test_the_default_target_is_the_neighbour_or_the_service(tmp_path: Path) -> None:
    ctx = _ctx(FakePool(), tmp_path)
    memory = _fault("spike_neighbour_memory")
    assert memory.pick_target(ctx, lifecycle.parse_args(memory, {})) == "teamb"
    quota = _fault("exhaust_quota")
    assert quota.pick_target(ctx, lifecycle.parse_args(quota, {})) == "teama"


# -- who a memory spike reaches ----------------------------------------------------------------


def test_time_slicing_spike_starves_every_replica_on_the_device(tmp_path: Path) -> None:
    pool = FakePool("time-slicing")
    ctx = _ctx(pool, tmp_path, declared={"teama": 1024.0, "teamb": 1024.0})
    room = headrooms(ctx, pool, "teamb", ["teamb-gpu0-0"], 1500.0)
    # gpu0 holds teama-gpu0-0 and teamb-gpu0-0: 4096 - 2 x 1024 declared - 1500 = 548
    assert room == {"teama-gpu0-0": 548.0, "teamb-gpu0-0": 548.0}
    # teama's replica on gpu1 shares nothing with teamb: untouched
    assert "teama-gpu1-0" not in room
    # all it can: nothing left for anyone on gpu0
    assert set(headrooms(ctx, pool, "teamb", ["teamb-gpu0-0"], None).values()) == {0.0}


@pytest.mark.parametrize("sharing", ["mps", "mig", "exclusive"])
def test_capped_modes_keep_the_spike_in_the_tenant(sharing: str, tmp_path: Path) -> None:
    pool = FakePool(sharing, caps={"teamb-gpu0-0": 2048.0, "teama-gpu0-0": 2048.0})
    ctx = _ctx(pool, tmp_path)
    assert headrooms(ctx, pool, "teamb", ["teamb-gpu0-0"], 1500.0) == {"teamb-gpu0-0": 548.0}
    assert headrooms(ctx, pool, "teamb", ["teamb-gpu0-0"], 3000.0) == {"teamb-gpu0-0": 0.0}
    assert headrooms(ctx, pool, "teamb", ["teamb-gpu0-0"], None) == {"teamb-gpu0-0": 0.0}


def test_exclusive_without_a_cap_has_the_whole_gpu(tmp_path: Path) -> None:
    pool = FakePool("exclusive")
    room = headrooms(_ctx(pool, tmp_path), pool, "teamb", ["teamb-gpu0-0"], 1000.0)
    assert room == {"teamb-gpu0-0": GPU_MIB - 1000.0}


# -- who a context fault reaches -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("sharing", "reached"),
    [
        ("time-slicing", ["teama-gpu0-0"]),
        ("mps", ["teama-gpu0-0"]),
        ("mig", []),
        ("exclusive", []),
    ],
)
def test_a_context_fault_reaches_neighbours_only_on_a_shared_fault_domain(
    sharing: str, reached: list[str]
) -> None:
    assert blast(FakePool(sharing), "teamb", ["teamb-gpu0-0"]) == reached


def test_a_crash_without_neighbours_kills_only_the_tenant(tmp_path: Path) -> None:
    pool = FakePool("mig")
    fault = _fault("fault_neighbour_context")
    args = lifecycle.parse_args(fault, {"tenant": "teamb", "kind": "crash", "duration_s": 1})
    injection = fault.inject(_ctx(pool, tmp_path), args, "teamb")
    try:
        assert pool.killed == [("teamb-gpu0-0", 9)]
        assert injection.facts["affected"] == ["teamb-gpu0-0"]
    finally:
        assert injection.active is not None
        injection.active.revert()


# -- quota, admission, recreate: inject, prove, revert -----------------------------------------


def test_exhaust_quota_cuts_the_quota_to_the_running_replicas_and_restores_it(
    tmp_path: Path,
) -> None:
    pool = FakePool()
    ctx = _ctx(pool, tmp_path)
    out = lifecycle.run(_fault("exhaust_quota"), ctx, {"tenant": "teama", "duration_s": 0.05})
    assert out["quota"] == 2 and out["quota_before"] == 3 and out["in_force"]
    (effect,) = [e for e in ctx.timeline.events if e["kind"] == "fault_effect"]
    assert effect["details"]["tenant"] == "teama"
    assert effect["details"]["affected"] == ["teama-gpu0-0", "teama-gpu1-0"]
    assert pool.quotas["teama"] == 3  # reverted after the hold


def test_a_quota_above_the_running_replicas_is_no_exhaustion(tmp_path: Path) -> None:
    pool = FakePool()
    with pytest.raises(FaultNoEffect, match="leaves room"):
        lifecycle.run(
            _fault("exhaust_quota"),
            _ctx(pool, tmp_path),
            {"tenant": "teama", "quota": 3, "duration_s": 0.05},
        )
    assert pool.quotas["teama"] == 3


def test_the_quota_is_restored_by_its_time_to_live(tmp_path: Path) -> None:
    pool = FakePool()
    fault = _fault("exhaust_quota")
    args = lifecycle.parse_args(fault, {"tenant": "teama", "duration_s": 60, "ttl_s": 0.1})
    fault.inject(_ctx(pool, tmp_path), args, "teama")
    assert pool.quotas["teama"] == 2
    deadline = time.monotonic() + 5
    while pool.quotas["teama"] != 3 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert pool.quotas["teama"] == 3


def test_deny_admission_without_eviction_sets_and_lifts_the_rule(tmp_path: Path) -> None:
    pool = FakePool()
    ctx = _ctx(pool, tmp_path)
    out = lifecycle.run(
        _fault("deny_admission"),
        ctx,
        {"tenant": "teama", "rule": "all", "evict": False, "duration_s": 0.05},
    )
    assert out["reason"] == "all: denied" and out["affected"] == [] and not pool.killed
    assert pool.rules == {}


def test_deny_admission_evicts_and_waits_for_the_denied_relaunch(tmp_path: Path) -> None:
    pool = FakePool()
    ctx = _ctx(pool, tmp_path)
    fault = _fault("deny_admission")
    args = lifecycle.parse_args(fault, {"tenant": "teamb", "duration_s": 1})
    injection = fault.inject(ctx, args, "teamb")
    try:
        assert pool.killed == [("teamb-gpu0-0", 15)] and pool.rules == {"teamb": "memory-cap"}
        assert fault.prove(ctx, args, injection) is None  # no denial seen yet
        ctx.timeline.emit("admission_denied", "teamb-gpu0-0", {"tenant": "teamb"})
        proof = fault.prove(ctx, args, injection)
        assert proof is not None and proof["denied"] == ["teamb-gpu0-0"]
        assert proof["affected"] == ["teamb-gpu0-0"]
    finally:
        assert injection.active is not None
        injection.active.revert()
    assert pool.rules == {}


def test_a_rule_the_tenant_meets_is_no_denial_and_is_lifted(tmp_path: Path) -> None:
    pool = FakePool()  # teama declares a memory cap: memory-cap admits it
    with pytest.raises(FaultNoEffect, match="use rule all"):
        lifecycle.run(
            _fault("deny_admission"), _ctx(pool, tmp_path), {"tenant": "teama", "duration_s": 0.05}
        )
    assert pool.rules == {} and not pool.killed


def test_recreate_replica_proves_a_new_pid_and_the_new_cap(tmp_path: Path) -> None:
    pool = FakePool("mps")
    out = lifecycle.run(
        _fault("recreate_replica"), _ctx(pool, tmp_path), {"tenant": "teama", "memory_mib": 1536.0}
    )
    assert pool.recreated == [("teama-gpu0-0", 1536.0)]
    assert out["old_pid"] == DEAD_PID and out["new_pid"] == os.getpid()
    assert out["memory_cap_mib"] == 1536.0 and out["affected"] == ["teama-gpu0-0"]


def test_recreate_refuses_a_replica_of_another_tenant(tmp_path: Path) -> None:
    with pytest.raises(ChaosError, match="not a running replica of tenant teama"):
        lifecycle.run(
            _fault("recreate_replica"),
            _ctx(FakePool(), tmp_path),
            {"tenant": "teama", "replica": "teamb-gpu0-0"},
        )


# -- the extra load ------------------------------------------------------------------------------


def test_the_spike_load_is_the_tenants_own_requests_at_a_flat_level() -> None:
    base = LoadSpec.model_validate(
        {
            "user": "openai",
            "prompt_words": 12,
            "max_tokens": 7,
            "workers": 2,
            "shape": {"kind": "step", "duration_s": 60, "start": 2, "increment": 0, "step_s": 60},
        }
    )
    closed = spike_spec(base, SpikeLoadArgs(users=5, duration_s=20))
    assert closed.user == "openai" and closed.prompt_words == 12 and closed.max_tokens == 7
    assert closed.mode == "closed" and closed.workers == 0
    assert closed.shape.kind == "step" and closed.shape.start == 5  # type: ignore[union-attr]
    assert closed.shape.duration_s >= 20
    opened = spike_spec(base, SpikeLoadArgs(rate=3.5, duration_s=20))
    assert opened.mode == "open" and opened.shape.start == 3.5  # type: ignore[union-attr]


def test_answered_counts_records_and_answers(tmp_path: Path) -> None:
    path = tmp_path / "requests.csv"
    assert answered(path) == (0, 0)
    path.write_text("start,end,status\n1,2,200\n1,2,503\n1,2,200\n")
    assert answered(path) == (3, 2)


def test_the_pool_node_of_a_view_node() -> None:
    assert pool_node("teamb-gpu0", "teamb") == "gpu0"
    assert pool_node("teamb-gpu-0-s1", "teamb") == "gpu-0"


@pytest.mark.parametrize(
    ("sharing", "memory", "context"),
    [
        ("time-slicing", "every replica on its GPUs", "every other tenant's"),
        ("mps", "only its own replicas", "every other tenant's"),
        ("mig", "only its own replicas", "its replicas only"),
    ],
)
def test_the_dry_run_says_whom_each_mode_lets_the_fault_reach(
    sharing: str, memory: str, context: str, tmp_path: Path
) -> None:
    ctx = _ctx(FakePool(sharing), tmp_path)
    ctx.spec.tenancy.sharing = sharing
    fault = _fault("spike_neighbour_memory")
    would = fault.plan(ctx, lifecycle.parse_args(fault, {}), "teamb")["would"]
    assert memory in would and sharing in would
    fault = _fault("fault_neighbour_context")
    assert context in fault.plan(ctx, lifecycle.parse_args(fault, {}), "teamb")["would"]
