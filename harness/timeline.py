"""The run's timeline: one JSON event per line in ``timeline.jsonl``, flushed as written."""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Any, Literal

log = logging.getLogger(__name__)

EventKind = Literal[
    "run_start",
    "run_end",
    "load_start",
    "load_end",
    "experiment_start",
    "experiment_end",
    "fault_start",
    "fault_end",
    "fault_effect",
    "node_down",
    "node_up",
    "replica_start",
    "replica_exit",
    "replica_ready",
    "replica_unready",
    "replica_ejected",
    "replica_returned",
    "replica_pending",  # wanted, but no up node has room (harness.platforms.local.placement)
    "preflight",  # spare capacity for a node-loss fault, checked before the run
    "scale",
    "phase",
    "abort",
    "drill_action",  # a trainee's action in a drill (harness.drill.actions)
    "gpu_unhealthy",  # a node's GPU lost under running replicas (lose_gpu): none starts there
    "gpu_healthy",  # its GPU back
    "quota_refused",  # a tenant's scale-up past its replica quota (tenancy)
    "admission_denied",  # a tenant's replica launch an admission rule denied (tenancy)
    "replica_recreated",  # a tenant's replica restarted with a new memory cap (VPA-style)
]


class Timeline:
    """Thread-safe append-only event log. Subscribers see every event (live progress)."""

    def __init__(self, path: str | os.PathLike[str] | None) -> None:
        self._lock = threading.Lock()
        self._fh = open(path, "a", encoding="utf-8") if path else None  # noqa: SIM115
        self._subscribers: list[Callable[[dict[str, Any]], None]] = []
        self.events: list[dict[str, Any]] = []

    def emit(
        self,
        kind: EventKind,
        target: str = "",
        details: dict[str, Any] | None = None,
        at: float | None = None,
    ) -> dict[str, Any]:
        event = {
            "time": time.time() if at is None else at,
            "kind": kind,
            "target": target,
            "details": details or {},
        }
        with self._lock:
            self.events.append(event)
            if self._fh is not None and not self._fh.closed:
                self._fh.write(json.dumps(event, default=str) + "\n")
                self._fh.flush()
            subscribers = list(self._subscribers)
        log.debug("timeline %s %s %s", kind, target, details or "")
        for fn in subscribers:
            fn(event)
        return event

    def subscribe(self, fn: Callable[[dict[str, Any]], None]) -> None:
        with self._lock:
            self._subscribers.append(fn)

    def close(self) -> None:
        with self._lock:
            if self._fh is not None:
                self._fh.close()


def read_timeline(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Read ``timeline.jsonl``; a torn last line (a killed run) is skipped."""
    events = []
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            line = line.strip()
            if not line:
                continue
            try:
                events.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return events
