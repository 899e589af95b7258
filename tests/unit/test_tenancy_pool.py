"""The tenant pool's bookkeeping without replica processes (harness.platforms.local.tenancy
and tenancy_view): which replicas share a device per mode, pool node names, quota and
admission decisions and their timeline events, the server flags and environment per
device, and the memory cap's RLIMIT_AS on a real (sleeping) process. The pool with real
replicas and load is tests/integration/test_tenancy_platform.py."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from harness.config import HarnessSpec
from harness.errors import PlatformError
from harness.faults.procfs import address_space_limit
from harness.platforms.local import tenancy_view
from harness.platforms.local.devices import MigDevice
from harness.platforms.local.replica import Replica
from harness.platforms.local.tenancy import TenantPool
from harness.platforms.local.tenancy_view import TenantSupervisor, TenantTimeline
from harness.timeline import Timeline

SHAPE = {"kind": "step", "duration_s": 10, "start": 1, "increment": 0, "step_s": 10}


def _pool(
    tmp_path: Path,
    sharing: str,
    contracts: dict[str, dict[str, Any]],
    nodes: int = 2,
    device: str = "cpu",
    **extra: Any,
) -> TenantPool:
    spec = HarnessSpec.model_validate(
        {
            "name": "gpuchaos",
            "platform": {
                "kind": "local",
                "nodes": [{"name": f"gpu{i}", "device": device} for i in range(nodes)],
            },
            "tenancy": {
                "sharing": sharing,
                "tenants": [
                    {"name": n, "load": {"shape": SHAPE}, "contract": c}
                    for n, c in contracts.items()
                ],
                **extra,
            },
        }
    )
    return TenantPool(spec, Timeline(tmp_path / "timeline.jsonl"), tmp_path)


def _events(pool: TenantPool, kind: str) -> list[dict[str, Any]]:
    return [e for e in pool.timeline.events if e["kind"] == kind]


def test_a_tenant_timeline_names_its_tenant_in_the_one_file(tmp_path: Path) -> None:
    parent = Timeline(tmp_path / "t.jsonl")
    seen: list[tuple[str, str]] = []
    view = TenantTimeline(parent, "a", lambda kind, target, d: seen.append((kind, d["tenant"])))
    view.emit("replica_start", "a-gpu0-0", {"pid": 1})
    view.close()  # the view closes nothing: the run's timeline goes on
    parent.emit("run_end", "x")
    assert parent.events[0]["details"] == {"pid": 1, "tenant": "a"}
    assert view.events is parent.events and seen == [("replica_start", "a")]
    assert len((tmp_path / "t.jsonl").read_text().splitlines()) == 2


@pytest.mark.parametrize(
    ("sharing", "nodes", "replica", "expected"),
    [
        ("time-slicing", 1, "a-gpu0-0", ["a-gpu0-0", "a-gpu0-1", "b-gpu0-0", "b-gpu0-1"]),
        ("mps", 2, "b-gpu1-0", ["a-gpu1-0", "b-gpu1-0"]),
        ("exclusive", 4, "a-gpu1-0", ["a-gpu1-0"]),
        ("mig", 1, "a-gpu0-s0-0", ["a-gpu0-s0-0"]),  # a's other replica: the other slice
    ],
)
def test_co_resident_follows_the_sharing_mode(
    tmp_path: Path, sharing: str, nodes: int, replica: str, expected: list[str]
) -> None:
    two = {"replicas": 2}
    contracts = {"a": two} if sharing == "mig" else {"a": two, "b": two}
    pool = _pool(tmp_path, sharing, contracts, nodes=nodes)
    assert pool.co_resident(replica) == expected
    assert pool.tenant_of(replica) == replica[0]


def test_a_pool_node_means_every_tenants_view_of_it(tmp_path: Path) -> None:
    pool = _pool(tmp_path, "mig", {"a": {}, "b": {}}, nodes=1)
    assert [(p.tenant, v) for p, v in pool._views("gpu0")] == [
        ("a", "a-gpu0-s0"),
        ("b", "b-gpu0-s1"),
    ]
    assert pool.node_device("gpu0") == pool.node_device("b-gpu0-s1") == "cpu"
    with pytest.raises(PlatformError, match="pool nodes: gpu0; tenants' nodes: a-gpu0-s0"):
        pool.node_up("gpu9")
    with pytest.raises(PlatformError, match="belongs to no tenant"):
        pool.tenant_of("c-gpu0-0")
    with pytest.raises(PlatformError, match="unknown tenant 'c'"):
        pool.set_quota("c", 2)


def test_the_quota_refuses_a_scale_up_and_says_so(tmp_path: Path) -> None:
    pool = _pool(tmp_path, "time-slicing", {"a": {"quota": 2}, "b": {}})
    a = pool.tenant("a")
    assert pool.quota("a") == 2 and a.node_room() == {"a-gpu0": 1, "a-gpu1": 2}
    assert pool.add_replica("a-gpu1") == "a-gpu1-0"  # within the quota
    assert a.node_room() == {"a-gpu0": 0, "a-gpu1": 0}  # at the quota: no room anywhere
    assert pool.add_replica("a-gpu0") is None
    assert a.add_pending_replica() is None
    refused = _events(pool, "quota_refused")
    assert [e["details"]["reason"] for e in refused] == ["scale-up on a-gpu0", "scale-up"]
    assert refused[0]["target"] == "a"
    assert refused[0]["details"] == {
        "wanted": 3,
        "quota": 2,
        "replicas": 2,
        "reason": "scale-up on a-gpu0",
        "tenant": "a",
    }
    assert pool.set_quota("a", 3) == 2 and pool.add_replica("a-gpu0") == "a-gpu0-1"
    assert pool.set_quota("a", None) == 3 and pool.quota("a") == 2  # the contract's again


def test_admission_rules_deny_launches_with_back_off(tmp_path: Path) -> None:
    pool = _pool(tmp_path, "mps", {"a": {"memory_mib": 512}, "b": {}})
    with pytest.raises(PlatformError, match="unknown admission rule 'some'"):
        pool.set_admission("a", "some")
    pool.set_admission("b", "memory-cap")
    pool.set_admission("a", "memory-cap")
    assert pool.admission_would_deny("a") is None  # a declares its cap
    assert pool.admission_would_deny("b") == "no memory cap (contract.memory_mib unset)"
    b = pool.tenant("b")
    sup = b._supervisor
    assert isinstance(sup, TenantSupervisor)
    with sup.lock:
        replica = sup.replicas["b-gpu0-0"]
    for _ in range(2):  # each denied launch: an event, Pending, a longer back-off
        sup._start_replica(replica)
    assert replica.state == "pending" and replica.proc is None
    assert replica.consecutive_crashes == 2 and replica.crashes == 0
    denied = _events(pool, "admission_denied")
    assert [e["target"] for e in denied] == ["b-gpu0-0", "b-gpu0-0"]
    assert denied[0]["details"]["rule"] == "memory-cap"
    pool.set_admission("a", "all")
    assert pool.admission_would_deny("a") == "the admission rule 'all' denies every new replica"
    pool.set_admission("a", None)
    assert pool.admission_would_deny("a") is None


def test_on_cuda_a_capped_replica_gets_its_memory_fraction(tmp_path: Path) -> None:
    pool = _pool(tmp_path, "mps", {"a": {"memory_mib": 1024}, "b": {}}, device="cuda:0")
    a = pool.tenant("a")
    replica = Replica("a-gpu0-0", "a-gpu0", "cuda:0")
    # no NVML here: the fraction is of tenancy.gpu_memory_mib (4096)
    assert a._replica_args(replica) == ["--memory-fraction", "0.2500"]
    assert a._replica_args(Replica("a-gpu0-0", "a-gpu0", "cpu")) == []
    sliced = _pool(tmp_path, "time-slicing", {"a": {"memory_mib": 1024}}, device="cuda:0")
    assert sliced.tenant("a")._replica_args(replica) == []  # one memory pool: no cap
    assert sliced.memory_cap_mib("a-gpu0-0") is None


def test_a_gpu_in_mig_mode_gives_each_slice_its_own_device(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pool = _pool(tmp_path, "mig", {"a": {}, "b": {}}, nodes=1, device="cuda:0")
    b = pool.tenant("b")
    replica = Replica("b-gpu0-s1-0", "b-gpu0-s1", "cuda:0")
    virtual = b._replica_args(replica)
    assert virtual == ["--memory-fraction", "0.5000"]  # no MIG: a virtual slice's share
    slices = [MigDevice(0, i, f"MIG-{i}", 20000.0) for i in range(2)]
    monkeypatch.setattr(tenancy_view, "mig_devices", lambda gpu: slices)
    assert b._replica_env(replica) == {"CUDA_VISIBLE_DEVICES": "MIG-1"}
    assert b._replica_args(replica) == ["--device", "cuda:0"]


@pytest.fixture
def sleeper() -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        yield proc
    finally:
        proc.kill()
        proc.wait()


def test_a_ready_replica_on_cpu_gets_its_cap_as_soft_rlimit_as(
    tmp_path: Path, sleeper: subprocess.Popen[bytes]
) -> None:
    pool = _pool(tmp_path, "mps", {"a": {"memory_mib": 256}})
    before = address_space_limit(sleeper.pid)
    assert before is not None
    details: dict[str, Any] = {"pid": sleeper.pid, "node": "a-gpu0"}
    pool.tenant("a")._annotate("replica_ready", "a-gpu0-0", details)
    soft, hard = address_space_limit(sleeper.pid) or (None, None)
    assert details["memory_cap_mib"] == 256 and details["rlimit_as"] == soft
    assert soft is not None and soft > 256 * 2**20  # its size, plus the cap
    assert hard == before[1]  # the hard limit is left alone
    assert pool.tenant("a").address_limits == {"a-gpu0-0": soft}
