"""Abort guards: the experiment's stop conditions (like AWS FIS stop conditions or Chaos
Toolkit safeguards).

A thread checks every condition once a second while the experiment runs. When one has been
crossed for its ``for_s`` seconds without a break, the guard records the reason and
interrupts the main thread (the one running chaoslib) as Ctrl-C would: the method stops,
the rollbacks run, and the runner marks the run aborted with the reason.
"""

from __future__ import annotations

import logging
import math
import signal
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from harness.config import StopCondition
from harness.rundir import REQUESTS_FILE

if TYPE_CHECKING:
    from harness.scoring.recent import RecentRequests

log = logging.getLogger(__name__)

CHECK_INTERVAL_S = 1.0
REQUEST_METRICS = ("error_rate", "availability", "p99_latency_ms")


def crossed(cond: StopCondition, value: float) -> bool:
    if cond.above is not None:
        return value > cond.above
    assert cond.below is not None
    return value < cond.below


class Streaks:
    """How long each condition has been crossed without a break (pure; no I/O)."""

    def __init__(self, conditions: Sequence[StopCondition]) -> None:
        self.conditions = list(conditions)
        self.since: list[float | None] = [None] * len(self.conditions)

    def update(self, values: Sequence[float | None], now: float) -> str | None:
        """Feed one value per condition (None: too little data, the streak neither starts
        nor breaks); returns the reason of the first condition that tripped, else None."""
        for i, (cond, value) in enumerate(zip(self.conditions, values, strict=True)):
            if value is None or math.isnan(value):
                continue
            if not crossed(cond, value):
                self.since[i] = None
                continue
            if self.since[i] is None:
                self.since[i] = now
            start = self.since[i]
            assert start is not None
            if now - start >= cond.for_s:
                return f"stop condition {cond.describe()} tripped (last value {value:.4g})"
        return None


class StopGuard:
    """Watches the stop conditions of a run and interrupts the main thread when one trips."""

    def __init__(
        self,
        conditions: Sequence[StopCondition],
        run_dir: Path,
        ready_replicas: Callable[[], int],
        timeout_ms: float,
        interval_s: float = CHECK_INTERVAL_S,
    ) -> None:
        self.streaks = Streaks(conditions)
        self.run_dir = Path(run_dir)
        self.ready_replicas = ready_replicas
        self.timeout_ms = timeout_ms
        self.interval_s = interval_s
        self.reason: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._main = threading.main_thread()
        self._recent: RecentRequests | None = None

    def start(self) -> None:
        if not self.streaks.conditions:
            return
        self._thread = threading.Thread(target=self._run, name="gpuchaos-guard", daemon=True)
        self._thread.start()
        log.info("abort guards: %s", "; ".join(c.describe() for c in self.streaks.conditions))

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5.0)

    def values(self, now: float) -> list[float | None]:
        """The current value of each condition's metric."""
        figures: dict[float, dict[str, float]] = {}
        out: list[float | None] = []
        for cond in self.streaks.conditions:
            if cond.metric == "ready_replicas":
                out.append(float(self.ready_replicas()))
                continue
            if cond.window_s not in figures:
                figures[cond.window_s] = self._request_figures(now, cond.window_s)
            f = figures[cond.window_s]
            if f.get("requests", 0) < cond.min_requests:
                out.append(None)
            elif cond.metric == "availability":
                out.append(1.0 - f["error_rate"])
            else:
                out.append(f.get(cond.metric))
        return out

    def _request_figures(self, now: float, window_s: float) -> dict[str, float]:
        from harness.scoring.recent import RecentRequests
        from harness.scoring.slis import overall

        path = self.run_dir / REQUESTS_FILE
        if not path.is_file():
            return {}
        if self._recent is None:  # read incrementally: a check costs the same all run long
            widest = max(c.window_s for c in self.streaks.conditions)
            self._recent = RecentRequests(path, keep_s=max(widest, window_s))
        recent = self._recent.window(now, window_s)
        figures = overall(recent, timeout_ms=self.timeout_ms)
        return {k: float(v) for k, v in figures.items() if isinstance(v, int | float)}

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                now = time.time()
                reason = self.streaks.update(self.values(now), now)
            except Exception:
                log.exception("abort guard check failed")
                continue
            if reason is not None:
                self.trip(reason)
                return

    def trip(self, reason: str) -> None:
        """Record ``reason`` and interrupt the main thread (KeyboardInterrupt there)."""
        if self.reason is not None or self._stop.is_set():
            return
        self.reason = reason
        log.error("abort: %s; stopping the method, rollbacks will run", reason)
        ident = self._main.ident
        if ident is not None and self._main.is_alive():
            signal.pthread_kill(ident, signal.SIGINT)
