"""Pure parts of the fault catalog: the autoscaler's rule, abort-guard streaks, the new
config models, /proc parsing and fault state files."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from pydantic import ValidationError

from harness.chaos.guards import Streaks
from harness.config import AutoscalerSpec, NodeSpec, StopCondition
from harness.faults.procfs import proc_state, vm_size
from harness.faults.state import FaultRecord, Target, new_record
from harness.platforms.local.autoscaler import desired_replicas

SPEC = AutoscalerSpec(threshold=2, min_replicas=1, max_replicas=6, max_step=2, tolerance=0.1)


@pytest.mark.parametrize(
    ("current", "ready", "value", "want"),
    [
        (2, 2, 2.0, 2),  # on target
        (2, 2, 2.1, 2),  # inside the tolerance
        (2, 2, 4.0, 4),  # ceil(2 x 4 / 2)
        (2, 2, 20.0, 4),  # at most max_step at once
        (5, 5, 20.0, 6),  # never above max_replicas
        (4, 4, 0.0, 2),  # scale down, max_step at once
        (1, 1, 0.0, 1),  # never below min_replicas
        (3, 0, 9.0, 3),  # nothing Ready: no basis for a change
    ],
)
def test_desired_replicas(current: int, ready: int, value: float, want: int) -> None:
    assert desired_replicas(current, ready, value, SPEC) == want


def test_streak_trips_only_after_for_s_without_a_break() -> None:
    s = Streaks([StopCondition(metric="error_rate", above=0.5, for_s=3)])
    assert s.update([0.9], 100.0) is None
    assert s.update([0.9], 102.0) is None
    assert s.update([0.1], 102.5) is None  # a break resets the streak
    assert s.update([0.9], 103.0) is None
    assert s.update([None], 105.0) is None  # no data neither breaks nor trips
    reason = s.update([0.8], 106.0)
    assert reason is not None and "error_rate > 0.5 for 3 s tripped" in reason


def test_availability_floor() -> None:
    s = Streaks([StopCondition(metric="availability", below=0.9, for_s=0)])
    assert s.update([0.95], 1.0) is None
    assert "availability < 0.9" in (s.update([0.5], 2.0) or "")


def test_stop_condition_needs_one_bound() -> None:
    with pytest.raises(ValidationError, match="exactly one of above and below"):
        StopCondition(metric="error_rate", above=0.5, below=0.1)
    with pytest.raises(ValidationError, match="extra"):
        StopCondition.model_validate({"metric": "error_rate", "above": 0.5, "for": 3})


def test_node_capacity() -> None:
    assert NodeSpec(name="a", replicas=2).capacity == 2
    assert NodeSpec(name="a", replicas=1, max_replicas=3).capacity == 3
    with pytest.raises(ValidationError, match="below replicas"):
        NodeSpec(name="a", replicas=2, max_replicas=1)


def test_autoscaler_bounds() -> None:
    with pytest.raises(ValidationError, match="exceeds max_replicas"):
        AutoscalerSpec(threshold=1, min_replicas=5, max_replicas=2)


def test_procfs_on_this_process() -> None:
    assert proc_state(os.getpid()) == "R"
    assert (vm_size(os.getpid()) or 0) > 0
    assert proc_state(2**22 + 12345) is None


def test_state_file_round_trip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GPUCHAOS_STATE_DIR", str(tmp_path))
    record = new_record("rlimit", "exhaust_gpu_memory", "node-b", ttl_s=30)
    record.targets = [Target(pid=123, start=1.5, soft=None)]
    path = record.save()
    assert path.parent == tmp_path / "faults"
    loaded = FaultRecord.load(path)
    assert loaded == record
    assert loaded.owner_alive() and not loaded.expired()
    assert loaded.expired(record.created_at + 31)


def test_a_fault_record_with_a_hook_token_is_readable_by_its_owner_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GPUCHAOS_STATE_DIR", str(tmp_path))
    record = FaultRecord(
        id="t1", kind="hook", fault="throttle_gpu", target="node-a", owner_pid=os.getpid(),
        owner_start=None, created_at=0.0, expires_at=1.0,
        hook={"host": "127.0.0.1", "port": "1", "token": "secret"},
    )  # fmt: skip
    path = record.save()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert FaultRecord.load(path).hook["token"] == "secret"
