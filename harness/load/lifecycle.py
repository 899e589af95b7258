"""What every load runner puts on the timeline: the ``load_start`` details and the phases.

Shared by the local runners (:mod:`harness.load.local`, :mod:`harness.load.local_workers`)
and the Kubernetes Jobs runner (:mod:`harness.load.k8s_runner`), so all three describe
the load the same way to the scorer and the live view.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from harness.config import LoadSpec, Shape
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
