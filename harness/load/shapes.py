"""Load shapes as pure functions of the time since load start.

Used by the Locust process (the ``LoadTestShape``), by the runner (phase events on the
timeline) and by the scorer. No Locust import here: the harness process must never
import locust.
"""

from __future__ import annotations

from typing import Literal

from harness.config import SpikeShape

Phase = Literal["baseline", "spike", "recovery"]


def spike_users(shape: SpikeShape) -> int:
    """Concurrent users during the spike."""
    return max(1, round(shape.baseline_users * shape.spike_multiplier))


def _spike_end(shape: SpikeShape) -> float:
    return shape.spike_start_s + shape.spike_duration_s


def phase_at(shape: SpikeShape, t: float) -> Phase:
    """Phase at ``t`` seconds after load start.

    ``baseline`` before the spike, ``spike`` during ``[spike_start_s, spike_start_s +
    spike_duration_s)``, ``recovery`` after it. A shape without a spike (duration 0) is
    ``baseline`` throughout; times before 0 are ``baseline``.
    """
    if shape.spike_duration_s <= 0 or t < shape.spike_start_s:
        return "baseline"
    if t < _spike_end(shape):
        return "spike"
    return "recovery"


def phase_schedule(shape: SpikeShape) -> list[tuple[float, Phase]]:
    """Offsets (seconds after load start) at which each phase begins, in order.

    Phases of zero length are left out: a spike from 0 has no baseline, a spike that
    lasts until ``duration_s`` has no recovery.
    """
    if shape.spike_duration_s <= 0:
        return [(0.0, "baseline")]
    schedule: list[tuple[float, Phase]] = []
    if shape.spike_start_s > 0:
        schedule.append((0.0, "baseline"))
    schedule.append((float(shape.spike_start_s), "spike"))
    end = _spike_end(shape)
    if end < shape.duration_s:
        schedule.append((float(end), "recovery"))
    return schedule


def users_at(shape: SpikeShape, t: float) -> int | None:
    """Target user count at ``t`` seconds after load start; ``None`` once the load is over.

    Times before 0 count as 0 (the load starts with the baseline).
    """
    t = max(t, 0.0)
    if t >= shape.duration_s:
        return None
    if phase_at(shape, t) == "spike":
        return spike_users(shape)
    return shape.baseline_users


def next_change(shape: SpikeShape, t: float) -> float | None:
    """The first time after ``t`` at which the user count changes (or the load ends)."""
    bounds = [shape.duration_s]
    if shape.spike_duration_s > 0:
        bounds += [shape.spike_start_s, _spike_end(shape)]
    later = [b for b in bounds if b > t]
    return min(later) if later else None
