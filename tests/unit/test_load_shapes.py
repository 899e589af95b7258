"""Spike shape as pure functions: phases, schedule, user counts, changes."""

from __future__ import annotations

import pytest

from harness.config import SpikeShape
from harness.load import phase_at, phase_schedule, users_at
from harness.load.shapes import next_change, spike_users


def _shape(**kw: float) -> SpikeShape:
    base: dict[str, float] = {
        "duration_s": 10,
        "baseline_users": 2,
        "spike_multiplier": 3,
        "spike_start_s": 3,
        "spike_duration_s": 3,
    }
    base.update(kw)
    return SpikeShape.model_validate(base)


@pytest.mark.parametrize(
    ("t", "phase"),
    [
        (-1.0, "baseline"),
        (0.0, "baseline"),
        (2.999, "baseline"),
        (3.0, "spike"),
        (5.999, "spike"),
        (6.0, "recovery"),
        (9.9, "recovery"),
        (12.0, "recovery"),
    ],
)
def test_phase_at(t: float, phase: str) -> None:
    assert phase_at(_shape(), t) == phase


def test_phase_schedule() -> None:
    assert phase_schedule(_shape()) == [(0.0, "baseline"), (3.0, "spike"), (6.0, "recovery")]


def test_schedule_leaves_out_empty_phases() -> None:
    assert phase_schedule(_shape(spike_start_s=0)) == [(0.0, "spike"), (3.0, "recovery")]
    assert phase_schedule(_shape(spike_start_s=7)) == [(0.0, "baseline"), (7.0, "spike")]
    assert phase_schedule(_shape(spike_duration_s=0)) == [(0.0, "baseline")]


def test_no_spike_is_baseline_throughout() -> None:
    shape = _shape(spike_duration_s=0)
    assert {phase_at(shape, t) for t in (0, 3, 5, 9)} == {"baseline"}
    assert {users_at(shape, t) for t in (0, 3, 5, 9)} == {2}


def test_schedule_agrees_with_phase_at() -> None:
    shape = _shape(duration_s=20, spike_start_s=4.5, spike_duration_s=7.25)
    for offset, phase in phase_schedule(shape):
        assert phase_at(shape, offset) == phase


def test_users_over_time() -> None:
    shape = _shape()
    counts = [users_at(shape, t / 2) for t in range(0, 22)]
    assert counts == [2] * 6 + [6] * 6 + [2] * 8 + [None, None]
    assert users_at(shape, -5) == 2


def test_spike_users_round_and_never_zero() -> None:
    assert spike_users(_shape(baseline_users=3, spike_multiplier=2.5)) == 8
    assert spike_users(_shape(baseline_users=1, spike_multiplier=1)) == 1


def test_next_change() -> None:
    shape = _shape()
    assert next_change(shape, 0) == 3
    assert next_change(shape, 3) == 6
    assert next_change(shape, 6.5) == 10
    assert next_change(shape, 10) is None
    assert next_change(_shape(spike_duration_s=0), 0) == 10
