"""p99 latency of the load's own records over the last seconds: the replica autoscaler's
``p99_latency_ms`` metric, as an HPA reads a latency histogram from Prometheus.

Why the records and not the servers' histograms: they are what users saw, failed and
timed-out requests included (a request that timed out counts with its full wait), and the
same rows the scorer reads. The window reads only the bytes appended since its last call
(:class:`harness.records.LineTail`), so a reading costs the same late in a long run.
"""

from __future__ import annotations

import collections
import csv
import logging
import math
from collections.abc import Callable
from pathlib import Path

from harness.records import COLUMNS, LineTail

log = logging.getLogger(__name__)

_END = COLUMNS.index("end")
_LATENCY = COLUMNS.index("latency_ms")


def p99(values: list[float]) -> float | None:
    """The nearest-rank 99th percentile; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.99 * len(ordered)) - 1)]


class LatencyWindow:
    """Latencies of the requests that ended within the last seconds of ``requests.csv``.

    ``path`` is asked anew on every reading (a game day moves the platform from run folder
    to run folder); a new path starts a new window."""

    def __init__(self, path: Callable[[], Path | None]) -> None:
        self._path = path
        self._tail: LineTail | None = None
        self._tail_path: Path | None = None
        self._rows: collections.deque[tuple[float, float]] = collections.deque()

    def p99_ms(self, now: float, window_s: float) -> float | None:
        """p99 latency (ms) of the records that ended in ``(now - window_s, now]``."""
        path = self._path()
        if path is None:
            return None
        if path != self._tail_path:
            self._tail, self._tail_path = LineTail(path), path
            self._rows.clear()
        assert self._tail is not None
        lines, restarted = self._tail.read()
        if restarted:
            self._rows.clear()
        for row in csv.reader(line.decode("utf-8", errors="replace") for line in lines):
            try:
                self._rows.append((float(row[_END]), float(row[_LATENCY])))
            except (IndexError, ValueError):
                continue  # a torn or foreign line
        keep_from = now - max(window_s, 60.0)
        while self._rows and self._rows[0][0] < keep_from:
            self._rows.popleft()
        return p99([lat for end, lat in self._rows if now - window_s < end <= now])
