"""Red herrings: harmless events at their drawn times, so not every change on the page is
the incident. A graceful restart of a replica (the supervisor starts it again), or a node
scaled up for a while and back. They look like any other platform event on the trainee's
timeline; the debrief marks them.
"""

from __future__ import annotations

import json
import logging
import signal
import threading
import time
from pathlib import Path
from typing import Any

from harness.drill.pick import Herring
from harness.errors import HarnessError
from harness.rundir import RunDir

log = logging.getLogger(__name__)


def load_t0(run_dir: Path) -> float | None:
    """The load's start (unix seconds) once the load runner wrote it, else None."""
    try:
        data = json.loads(RunDir(run_dir).load_t0.read_text(encoding="utf-8"))
        return float(data["t0"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


class HerringThread:
    """Plays the drawn red herrings against ``platform`` at their times after load start."""

    def __init__(self, platform: Any, run_dir: Path, herrings: tuple[Herring, ...]) -> None:
        self.platform = platform
        self.run_dir = run_dir
        self.herrings = herrings
        #: what was done: the herring, its time (s after load start) and result
        self.done: list[dict[str, Any]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="gpuchaos-herrings", daemon=True)

    def start(self) -> None:
        if self.herrings:
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)

    def _run(self) -> None:
        t0 = None
        while t0 is None:
            if self._stop.wait(0.2):
                return
            t0 = load_t0(self.run_dir)
        pending: list[tuple[float, Herring, int | None]] = [
            (h.at_s, h, None) for h in self.herrings
        ]
        while pending:
            pending.sort(key=lambda p: p[0])
            at, herring, back_to = pending.pop(0)
            if self._stop.wait(max(0.0, t0 + at - time.time())):
                return
            entry: dict[str, Any] = {
                "kind": herring.kind,
                "target": herring.target,
                "t_s": round(time.time() - t0, 1),
            }
            try:
                if herring.kind == "restart":
                    pid = self.platform.kill_replica(herring.target, signal.SIGTERM)
                    entry["result"] = {"stopped_pid": pid}
                else:
                    entry["result"], before = self._scale(herring, back_to)
                    if back_to is None:
                        pending.append((at + herring.hold_s, herring, before))
                        entry["back_at_s"] = at + herring.hold_s
            except HarnessError as exc:
                entry["error"] = str(exc)
                log.info("red herring %s %s skipped: %s", herring.kind, herring.target, exc)
            self.done.append(entry)

    def _scale(self, herring: Herring, back_to: int | None) -> tuple[dict[str, Any], int]:
        from harness.platforms.local.mitigate import scale_node

        before = sum(1 for r in self.platform.replicas() if r.node == herring.target)
        count = herring.replicas if back_to is None else back_to
        return scale_node(self.platform, herring.target, count), before
