"""What every load runner puts on the timeline: ``load_start`` and ``load_end`` details, phases.

Shared by the local runners (:mod:`harness.load.local`, :mod:`harness.load.local_workers`)
and the Kubernetes Jobs runner (:mod:`harness.load.k8s_runner`), so all three describe
the load the same way to the scorer and the live view.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from harness.config import LoadSpec, Shape
from harness.load.sampling import scheduled_count
from harness.load.shapes import duration, level_at, peak_level, phase_schedule
from harness.timeline import Timeline


def load_start_details(spec: LoadSpec, endpoint: str, **extra: Any) -> dict[str, Any]:
    """What the ``load_start`` timeline event says about the load (the scorer reads
    ``duration_s``; the live view reads the levels)."""
    shape = spec.shape
    return {
        "shape": shape.kind,
        "mode": spec.mode,
        "user": spec.user,
        "level": level_at(shape, 0.0),
        "peak_level": peak_level(shape),
        "endpoint": endpoint,
        **extra,
        "duration_s": duration(shape),
    }


def scheduled_arrivals(spec: LoadSpec, t0: float | None, stopped_at: float | None) -> int | None:
    """``scheduled`` of the ``load_end`` event: in open loop, the schedule's arrivals (each
    one record), all of them, or those due by ``stopped_at`` when the load was stopped
    before its end; ``None`` in closed loop or when the load never started (no t0)."""
    if spec.mode != "open" or t0 is None:
        return None
    return scheduled_count(spec, None if stopped_at is None else stopped_at - t0)


class PhaseEvents:
    """The shape's ``phase`` events, each emitted at its time by a timer thread; the ones
    still pending are cancelled when the load stops."""

    def __init__(self, shape: Shape, timeline: Timeline) -> None:
        self.shape = shape
        self.timeline = timeline
        self._timers: list[threading.Timer] = []

    def schedule(self, t0: float) -> None:
        """Start a timer per phase of the shape, its offsets counted from ``t0``."""
        for offset, phase in phase_schedule(self.shape):
            details = {
                "phase": phase,
                "offset_s": offset,
                "level": level_at(self.shape, offset),
            }
            timer = threading.Timer(
                max(0.0, t0 + offset - time.time()),
                self.timeline.emit,
                args=("phase", "load", details),
                kwargs={"at": t0 + offset},
            )
            timer.daemon = True
            timer.start()
            self._timers.append(timer)

    def cancel(self) -> None:
        for timer in self._timers:
            timer.cancel()
