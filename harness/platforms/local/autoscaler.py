"""The local autoscaler (like KEDA on Prometheus, with the HPA's rule).

Every ``polling_interval_s`` it scrapes each Ready replica's ``/metrics`` and computes one
figure: the average queue depth (``vllm:num_requests_waiting``) or the mean time to first
token over the last interval (``vllm:time_to_first_token_seconds``). The desired count is
``ceil(ready x value / threshold)`` (no change within ``tolerance``), clamped to
``[min_replicas, max_replicas]`` and to ``max_step`` per action; after an action nothing
changes for ``cooldown_s``. A scale-up places each new replica on the up node with the most
room (``max_replicas`` of the node) that has ``replica_memory_mib`` free (NVML on CUDA,
host memory on CPU). Every decision that differs from the current count is a ``scale``
event in the timeline (acted on, held by the cooldown, or blocked by capacity); the new
replicas' ``replica_ready`` events follow. Long intervals and cooldowns make it too slow,
as in production.

It drives its platform only through :class:`ScalablePlatform`, the few calls it makes, so it
does not import the platform that starts it (no import circle), and it reads GPU memory
through telemetry (:func:`harness.telemetry.nvml.gpu_free_mib`).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from dataclasses import dataclass
from typing import Any, Protocol

import psutil

from harness.config import AutoscalerSpec
from harness.platforms.base import ReplicaInfo
from harness.telemetry.nvml import gpu_free_mib
from harness.telemetry.scrape import scrape
from harness.timeline import Timeline

log = logging.getLogger(__name__)

QUEUE_METRIC = "vllm:num_requests_waiting"
TTFT_METRIC = "vllm:time_to_first_token_seconds"


def desired_replicas(current: int, ready: int, value: float, spec: AutoscalerSpec) -> int:
    """The HPA rule: ``ceil(ready x value / threshold)``, unchanged within the tolerance,
    clamped to the bounds and to ``max_step`` away from ``current``."""
    ratio = value / spec.threshold
    want = current if abs(ratio - 1.0) <= spec.tolerance or ready == 0 else math.ceil(ready * ratio)
    want = max(spec.min_replicas, min(spec.max_replicas, want))
    return max(current - spec.max_step, min(current + spec.max_step, want))


class ScalablePlatform(Protocol):
    """What the autoscaler needs of a platform (the local platform is one)."""

    def replicas(self) -> list[ReplicaInfo]:
        """A snapshot of every replica (state, pid and port tell the Ready ones)."""
        ...

    def replica_count(self) -> int:
        """Replicas the platform keeps (running, starting or waiting for a node)."""
        ...

    def node_room(self) -> dict[str, int]:
        """How many more replicas each node can take (0 for a down node)."""
        ...

    def node_device(self, node: str) -> str:
        """The device of ``node``: 'cpu' or 'cuda:N'."""
        ...

    def add_replica(self, node: str) -> str | None:
        """Scale up by one replica on ``node``; its id, or None when the node has no room."""
        ...

    def remove_replica(self, replica_id: str) -> None:
        """Scale down by one replica, stopped gracefully."""
        ...


@dataclass
class Decision:
    """One look at the metric and what came of it."""

    value: float | None
    current: int
    ready: int
    desired: int
    outcome: str  # "scaled", "cooldown", "no capacity", "steady", "no data"
    added: list[str]
    removed: list[str]


class Autoscaler:
    """Polls the metric and scales the local platform's replicas (a thread)."""

    def __init__(
        self, platform: ScalablePlatform, spec: AutoscalerSpec, timeline: Timeline
    ) -> None:
        self.platform = platform
        self.spec = spec
        self.timeline = timeline
        self.decisions: list[Decision] = []
        self._last_action = -math.inf  # monotonic
        self._last_reported: tuple[int, str] | None = None
        self._ttft_prev: dict[int, tuple[float, float]] = {}  # pid -> (sum, count)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="gpuchaos-autoscaler", daemon=True)
        self._thread.start()
        log.info(
            "autoscaler on %s (threshold %g, every %g s, cooldown %g s, %d-%d replicas)",
            self.spec.metric, self.spec.threshold, self.spec.polling_interval_s,
            self.spec.cooldown_s, self.spec.min_replicas, self.spec.max_replicas,
        )  # fmt: skip

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5.0)

    def reset(self) -> None:
        """Forget the cooldown and the last readings (a game day's reset: the next
        experiment's autoscaler starts as a fresh one would)."""
        self._last_action = -math.inf
        self._last_reported = None
        self._ttft_prev.clear()

    def _run(self) -> None:
        while not self._stop.wait(self.spec.polling_interval_s):
            try:
                self.decisions.append(self.step())
            except Exception:
                log.exception("autoscaler step failed")

    # -- one step -----------------------------------------------------------------------

    def measure(self) -> tuple[float | None, int]:
        """The metric over the Ready replicas, and how many are Ready."""
        ready = [r for r in self.platform.replicas() if r.state == "ready" and r.port]
        samples = {r.pid or 0: scrape(r.port or 0) for r in ready}
        samples = {pid: s for pid, s in samples.items() if s}
        if not samples:
            return None, len(ready)
        if self.spec.metric == "queue_depth":
            values = [s.get(QUEUE_METRIC, 0.0) for s in samples.values()]
            return sum(values) / len(values), len(ready)
        d_sum = d_count = 0.0
        for pid, s in samples.items():
            now = (s.get(f"{TTFT_METRIC}_sum", 0.0), s.get(f"{TTFT_METRIC}_count", 0.0))
            before = self._ttft_prev.get(pid, (0.0, 0.0))
            self._ttft_prev[pid] = now
            d_sum += now[0] - before[0]
            d_count += now[1] - before[1]
        return (d_sum / d_count if d_count > 0 else None), len(ready)

    def step(self) -> Decision:
        value, ready = self.measure()
        current = self.platform.replica_count()
        if value is None:
            return Decision(None, current, ready, current, "no data", [], [])
        desired = desired_replicas(current, ready, value, self.spec)
        if desired == current:
            self._last_reported = None
            return Decision(value, current, ready, desired, "steady", [], [])
        added: list[str] = []
        removed: list[str] = []
        if time.monotonic() - self._last_action < self.spec.cooldown_s:
            outcome = "cooldown"
        elif desired > current:
            added = self._scale_up(desired - current)
            outcome = "scaled" if added else "no capacity"
        else:
            removed = self._scale_down(current - desired)
            outcome = "scaled" if removed else "steady"
        if added or removed:
            self._last_action = time.monotonic()
        decision = Decision(value, current, ready, desired, outcome, added, removed)
        if outcome == "scaled" or self._last_reported != (desired, outcome):
            self._last_reported = (desired, outcome)
            self._emit(decision)
        return decision

    def _emit(self, d: Decision) -> None:
        details: dict[str, Any] = {
            "metric": self.spec.metric,
            "value": round(d.value, 4) if d.value is not None else None,
            "threshold": self.spec.threshold,
            "from": d.current,
            "to": d.current + len(d.added) - len(d.removed),
            "desired": d.desired,
            "ready": d.ready,
            "outcome": d.outcome,
            "added": d.added,
            "removed": d.removed,
        }
        log.info("autoscaler: %s", details)
        self.timeline.emit("scale", "autoscaler", details)

    def _has_memory(self, node: str) -> bool:
        need = self.spec.replica_memory_mib
        if need <= 0:
            return True
        device = self.platform.node_device(node)
        free = gpu_free_mib(device)
        if free is None:
            free = psutil.virtual_memory().available / (1 << 20)
        return free >= need

    def _scale_up(self, n: int) -> list[str]:
        added: list[str] = []
        for _ in range(n):
            room = self.platform.node_room()
            nodes = sorted((c, name) for name, c in room.items() if c > 0)
            placed = None
            for _, node in reversed(nodes):
                if self._has_memory(node):
                    placed = self.platform.add_replica(node)
                    if placed:
                        break
            if placed is None:
                break
            added.append(placed)
        return added

    def _scale_down(self, n: int) -> list[str]:
        infos = self.platform.replicas()
        order = {"down": 0, "backoff": 1, "starting": 2, "unready": 3, "exited": 4, "ready": 5}
        victims = sorted(infos, key=lambda r: (order.get(r.state, 6), -_index(r.id)))
        removed = []
        for r in victims[:n]:
            self.platform.remove_replica(r.id)
            removed.append(r.id)
        return removed


def _index(replica_id: str) -> int:
    tail = replica_id.rsplit("-", 1)[-1]
    return int(tail) if tail.isdigit() else 0
