"""Load shapes as pure functions of the time since load start.

A shape gives a *level* at each moment: concurrent users in closed-loop mode, requests per
second in open-loop mode. Used by the Locust process (the ``LoadTestShape`` and the open-loop
dispatcher), by the runner (phase events on the timeline) and by the scorer. No Locust import
here: the harness process must never import locust.

Phases (the ``phase`` column of each request record): spike ``baseline``/``spike``/
``recovery``; step ``step-0``, ``step-1``, ...; ramp ``ramp``/``hold``; diurnal ``rising``/
``falling``; trace ``trace``.
"""

from __future__ import annotations

import bisect
import math

from harness.config import DiurnalShape, RampShape, Shape, SpikeShape, StepShape, TraceShape

#: Continuous shapes (ramp, diurnal) change the user count at most this often, seconds.
USER_CHANGE_S = 1.0


def duration(shape: Shape) -> float:
    """Length of the load, seconds."""
    if isinstance(shape, TraceShape):
        return shape.length_s
    return shape.duration_s


def spike_users(shape: SpikeShape) -> int:
    """Concurrent users during the spike."""
    return max(1, round(shape.baseline_users * shape.spike_multiplier))


def _spike_end(shape: SpikeShape) -> float:
    return shape.spike_start_s + shape.spike_duration_s


def _step_index(shape: StepShape, t: float) -> int:
    return int(max(t, 0.0) // shape.step_s)


def level_at(shape: Shape, t: float) -> float | None:
    """The shape's level at ``t`` seconds after load start; ``None`` once the load is over.

    Times before 0 count as 0. Levels are never negative.
    """
    t = max(t, 0.0)
    if t >= duration(shape):
        return None
    if isinstance(shape, SpikeShape):
        in_spike = shape.spike_duration_s > 0 and shape.spike_start_s <= t < _spike_end(shape)
        return float(
            shape.baseline_users * shape.spike_multiplier if in_spike else shape.baseline_users
        )
    if isinstance(shape, StepShape):
        level = shape.start + shape.increment * _step_index(shape, t)
        if shape.max_level is not None:
            level = min(level, shape.max_level)
        return max(0.0, level)
    if isinstance(shape, RampShape):
        done = min(t / shape.ramp_s, 1.0)
        return shape.start + (shape.end - shape.start) * done
    if isinstance(shape, DiurnalShape):
        return max(0.0, shape.mean + shape.amplitude * math.sin(2 * math.pi * t / shape.period_s))
    points = shape.points
    i = bisect.bisect_right([p[0] for p in points], t) - 1
    return points[max(i, 0)][1] * shape.scale


def peak_level(shape: Shape) -> float:
    """The highest level the shape reaches (sampled every 0.1 s for continuous shapes)."""
    if isinstance(shape, SpikeShape):
        return float(spike_users(shape) if shape.spike_duration_s > 0 else shape.baseline_users)
    if isinstance(shape, TraceShape):
        return max(p[1] for p in shape.points if p[0] < shape.length_s) * shape.scale
    steps = int(duration(shape) / 0.1)
    return max((level_at(shape, i * 0.1) or 0.0) for i in range(steps + 1))


def users_at(shape: Shape, t: float) -> int | None:
    """Target user count (closed loop) at ``t``; ``None`` once the load is over.

    The spike's counts are the configured ones; other shapes round their level.
    """
    if isinstance(shape, SpikeShape):
        if max(t, 0.0) >= shape.duration_s:
            return None
        return spike_users(shape) if phase_at(shape, t) == "spike" else shape.baseline_users
    level = level_at(shape, t)
    return None if level is None else max(0, round(level))


def phase_at(shape: Shape, t: float) -> str:
    """Phase at ``t`` seconds after load start (times before 0 count as 0).

    Spike: ``baseline`` before the spike, ``spike`` during ``[spike_start_s, spike_start_s +
    spike_duration_s)``, ``recovery`` after it; a shape without a spike (duration 0) is
    ``baseline`` throughout.
    """
    t = max(t, 0.0)
    if isinstance(shape, SpikeShape):
        if shape.spike_duration_s <= 0 or t < shape.spike_start_s:
            return "baseline"
        return "spike" if t < _spike_end(shape) else "recovery"
    if isinstance(shape, StepShape):
        return f"step-{_step_index(shape, t)}"
    if isinstance(shape, RampShape):
        return "ramp" if t < shape.ramp_s else "hold"
    if isinstance(shape, DiurnalShape):
        return "rising" if math.cos(2 * math.pi * t / shape.period_s) >= 0 else "falling"
    return "trace"


def phase_schedule(shape: Shape) -> list[tuple[float, str]]:
    """Offsets (seconds after load start) at which each phase begins, in order.

    Phases of zero length are left out: a spike from 0 has no baseline, a spike that
    lasts until ``duration_s`` has no recovery.
    """
    end = duration(shape)
    if isinstance(shape, SpikeShape):
        if shape.spike_duration_s <= 0:
            return [(0.0, "baseline")]
        schedule: list[tuple[float, str]] = []
        if shape.spike_start_s > 0:
            schedule.append((0.0, "baseline"))
        schedule.append((float(shape.spike_start_s), "spike"))
        if _spike_end(shape) < end:
            schedule.append((float(_spike_end(shape)), "recovery"))
        return schedule
    if isinstance(shape, StepShape):
        count = math.ceil(end / shape.step_s)
        return [(i * shape.step_s, f"step-{i}") for i in range(count)]
    if isinstance(shape, RampShape):
        return [(0.0, "ramp")] + ([(shape.ramp_s, "hold")] if shape.ramp_s < end else [])
    if isinstance(shape, DiurnalShape):
        quarter = shape.period_s / 4
        out = [(0.0, "rising")]
        k = 1
        while (2 * k - 1) * quarter < end:
            out.append(((2 * k - 1) * quarter, "falling" if k % 2 else "rising"))
            k += 1
        return out
    return [(0.0, "trace")]


class PhaseClock:
    """:func:`phase_at` for times that mostly move forward, remembered between changes.

    Each request asks for its phase; the answer stays the same between two entries of
    :func:`phase_schedule`, so it is computed once per phase (a boundary itself, or a time
    outside the shape, is always computed afresh).
    """

    def __init__(self, shape: Shape) -> None:
        self._shape = shape
        self._bounds = [offset for offset, _ in phase_schedule(shape)[1:]] + [duration(shape)]
        self._low = self._high = 0.0
        self._phase = ""

    def at(self, t: float) -> str:
        if self._low < t < self._high:
            return self._phase
        phase = phase_at(self._shape, t)
        i = bisect.bisect_right(self._bounds, t)
        if 0 < t < self._bounds[-1] and (i == 0 or self._bounds[i - 1] < t):
            self._low = self._bounds[i - 1] if i else 0.0
            self._high = self._bounds[i]
            self._phase = phase
        return phase


def next_change(shape: Shape, t: float) -> float | None:
    """The first time after ``t`` at which the user count may change (or the load ends)."""
    end = duration(shape)
    bounds = [end]
    if isinstance(shape, SpikeShape):
        if shape.spike_duration_s > 0:
            bounds += [shape.spike_start_s, _spike_end(shape)]
    elif isinstance(shape, StepShape):
        bounds.append((_step_index(shape, t) + 1) * shape.step_s)
    elif isinstance(shape, TraceShape):
        bounds += [p[0] for p in shape.points]
    else:
        bounds.append((math.floor(max(t, 0.0) / USER_CHANGE_S) + 1) * USER_CHANGE_S)
    later = [b for b in bounds if b > t]
    return min(later) if later else None
