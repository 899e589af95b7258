"""The local autoscaler (like KEDA on Prometheus, with the HPA's rule), one or more rules.

Each rule, every ``polling_interval_s`` of its own, reads one figure: the average queue
depth of the Ready replicas' ``/metrics`` (``vllm:num_requests_waiting``), the mean time to
first token over the last interval (``vllm:time_to_first_token_seconds``), or the p99
latency of the load's own records over the last ``window_s``
(:mod:`~harness.platforms.local.latency`, like an HPA on a Prometheus latency histogram).
Its desired count is ``ceil(ready x value / threshold)`` (no change within ``tolerance``),
clamped to ``[min_replicas, max_replicas]`` and to ``max_step`` per action; after its own
action the rule waits ``cooldown_s``. A rule scales up on its own; it scales down no lower
than what every other rule last asked for (the HPA takes the largest proposal), so a quiet
queue does not undo what the latency rule added, nor lower than any rule asked for within
``scale_down_stabilization_s`` (the HPA's stabilization window). A scale-up places each
new replica on the up node with the most room (``max_replicas`` of the node) that has
``replica_memory_mib`` free (NVML on CUDA, host memory on CPU); when no node has room and
the platform has node pools, the replica is created Pending (no node), as a Deployment's
pod is, for the cluster autoscaler (:mod:`~harness.platforms.local.cluster`) to find.
Every decision that differs from the current count is a ``scale`` event (acted on, held by
the cooldown, or blocked by capacity) naming its rule; the new replicas' ``replica_ready``
events follow. Long intervals and cooldowns make it too slow, as in production.

It drives its platform only through :class:`ScalablePlatform`, the few calls it makes, so it
does not import the platform that starts it (no import circle), and it reads GPU memory
through telemetry (:func:`harness.telemetry.nvml.gpu_free_mib`).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import psutil

from harness.config import AutoscalerSpec
from harness.config.autoscaler import ScalingRuleSpec
from harness.platforms.base import ReplicaInfo
from harness.platforms.local.latency import LatencyWindow
from harness.telemetry.nvml import gpu_free_mib
from harness.telemetry.scrape import scrape
from harness.timeline import Timeline

log = logging.getLogger(__name__)

QUEUE_METRIC = "vllm:num_requests_waiting"
TTFT_METRIC = "vllm:time_to_first_token_seconds"


def desired_replicas(
    current: int,
    ready: int,
    value: float,
    spec: AutoscalerSpec,
    rule: ScalingRuleSpec | None = None,
) -> int:
    """The HPA rule: ``ceil(ready x value / threshold)``, unchanged within the tolerance,
    clamped to the bounds and to ``max_step`` away from ``current``. ``rule``: whose
    threshold and tolerance (default: the single-rule form's)."""
    rule = rule or spec.effective_rules()[0]
    ratio = value / rule.threshold
    want = current if abs(ratio - 1.0) <= rule.tolerance or ready == 0 else math.ceil(ready * ratio)
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

    def add_pending_replica(self) -> str | None:
        """A replica with no node yet (Pending) for the cluster autoscaler to find room
        for; None when the platform has no node pool that could bring room."""
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
    rule: int = 0  # index of the rule that looked
    pending: list[str] = field(default_factory=list)  # of ``added``: created with no node


@dataclass
class _Rule:
    """One rule's schedule, cooldown and last proposal."""

    spec: ScalingRuleSpec
    index: int
    next_due: float = 0.0  # monotonic
    last_action: float = -math.inf  # monotonic
    last_reported: tuple[int, str] | None = None
    proposal: int | None = None  # what it last asked for (None: no data)
    ttft_prev: dict[int, tuple[float, float]] = field(default_factory=dict)  # pid -> sum, count


class Autoscaler:
    """Runs the rules and scales the local platform's replicas (a thread)."""

    def __init__(
        self,
        platform: ScalablePlatform,
        spec: AutoscalerSpec,
        timeline: Timeline,
        requests_path: Callable[[], Path | None] = lambda: None,
    ) -> None:
        self.platform = platform
        self.spec = spec
        self.timeline = timeline
        self.decisions: list[Decision] = []
        self.rules = [_Rule(rule, i) for i, rule in enumerate(spec.effective_rules())]
        self._latency = LatencyWindow(requests_path)
        self._asked: list[tuple[float, int]] = []  # (monotonic, desired) of every rule
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        now = time.monotonic()
        for r in self.rules:
            r.next_due = now + r.spec.polling_interval_s
        self._thread = threading.Thread(target=self._run, name="gpuchaos-autoscaler", daemon=True)
        self._thread.start()
        for r in self.rules:
            log.info(
                "autoscaler rule %d on %s (threshold %g, every %g s, cooldown %g s, %d-%d "
                "replicas)", r.index, r.spec.metric, r.spec.threshold, r.spec.polling_interval_s,
                r.spec.cooldown_s, self.spec.min_replicas, self.spec.max_replicas,
            )  # fmt: skip

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5.0)

    def reset(self) -> None:
        """Forget the cooldowns and the last readings (a game day's reset: the next
        experiment's autoscaler starts as a fresh one would)."""
        for r in self.rules:
            r.last_action = -math.inf
            r.last_reported = None
            r.proposal = None
            r.ttft_prev.clear()
        self._asked.clear()

    def _run(self) -> None:
        while not self._stop.is_set():
            now = time.monotonic()
            for r in self.rules:
                if r.next_due <= now:
                    r.next_due = now + r.spec.polling_interval_s
                    try:
                        self.decisions.append(self.step(r.index))
                    except Exception:
                        log.exception("autoscaler step failed (rule %d)", r.index)
            wait = min(r.next_due for r in self.rules) - time.monotonic()
            self._stop.wait(max(wait, 0.01))

    # -- one step -----------------------------------------------------------------------

    def measure(self, index: int = 0) -> tuple[float | None, int]:
        """Rule ``index``'s metric over the Ready replicas, and how many are Ready."""
        rule = self.rules[index]
        ready = [r for r in self.platform.replicas() if r.state == "ready" and r.port]
        if rule.spec.metric == "p99_latency_ms":
            return self._latency.p99_ms(time.time(), rule.spec.window), len(ready)
        samples = {r.pid or 0: scrape(r.port or 0) for r in ready}
        samples = {pid: s for pid, s in samples.items() if s}
        if not samples:
            return None, len(ready)
        if rule.spec.metric == "queue_depth":
            values = [s.get(QUEUE_METRIC, 0.0) for s in samples.values()]
            return sum(values) / len(values), len(ready)
        d_sum = d_count = 0.0
        for pid, s in samples.items():
            now = (s.get(f"{TTFT_METRIC}_sum", 0.0), s.get(f"{TTFT_METRIC}_count", 0.0))
            before = rule.ttft_prev.get(pid, (0.0, 0.0))
            rule.ttft_prev[pid] = now
            d_sum += now[0] - before[0]
            d_count += now[1] - before[1]
        return (d_sum / d_count if d_count > 0 else None), len(ready)

    def step(self, index: int = 0) -> Decision:
        """One look by rule ``index`` and what came of it."""
        rule = self.rules[index]
        value, ready = self.measure(index)
        current = self.platform.replica_count()
        if value is None:
            rule.proposal = None
            return Decision(None, current, ready, current, "no data", [], [], index)
        desired = desired_replicas(current, ready, value, self.spec, rule.spec)
        rule.proposal = desired
        now = time.monotonic()
        self._asked.append((now, desired))
        window = self.spec.scale_down_stabilization_s
        self._asked = [(t, d) for t, d in self._asked if now - t <= window]
        others = [r.proposal for r in self.rules if r is not rule and r.proposal is not None]
        others += [d for _, d in self._asked]  # the stabilization window's proposals
        if desired < current:  # no lower than another rule asks for, or asked lately
            desired = min(current, max(desired, *others))
        if desired == current:
            rule.last_reported = None
            return Decision(value, current, ready, desired, "steady", [], [], index)
        added: list[str] = []
        removed: list[str] = []
        pending: list[str] = []
        if time.monotonic() - rule.last_action < rule.spec.cooldown_s:
            outcome = "cooldown"
        elif desired > current:
            added, pending = self._scale_up(desired - current)
            outcome = "scaled" if added else "no capacity"
        else:
            removed = self._scale_down(current - desired)
            outcome = "scaled" if removed else "steady"
        if added or removed:
            rule.last_action = time.monotonic()
        decision = Decision(value, current, ready, desired, outcome, added, removed, index, pending)
        if outcome == "scaled" or rule.last_reported != (desired, outcome):
            rule.last_reported = (desired, outcome)
            self._emit(decision)
        return decision

    def _emit(self, d: Decision) -> None:
        rule = self.rules[d.rule].spec
        details: dict[str, Any] = {
            "metric": rule.metric,
            "rule": d.rule,
            "value": round(d.value, 4) if d.value is not None else None,
            "threshold": rule.threshold,
            "from": d.current,
            "to": d.current + len(d.added) - len(d.removed),
            "desired": d.desired,
            "ready": d.ready,
            "outcome": d.outcome,
            "added": d.added,
            "removed": d.removed,
        }
        if d.pending:
            details["pending"] = d.pending
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

    def _scale_up(self, n: int) -> tuple[list[str], list[str]]:
        """Add up to ``n`` replicas; (added, those of them created Pending)."""
        added: list[str] = []
        pending: list[str] = []
        for _ in range(n):
            room = self.platform.node_room()
            nodes = sorted((c, name) for name, c in room.items() if c > 0)
            placed = None
            for _, node in reversed(nodes):
                if self._has_memory(node):
                    placed = self.platform.add_replica(node)
                    if placed:
                        break
            if placed is None and not nodes:  # no room anywhere: Pending, if a pool may help
                placed = self.platform.add_pending_replica()
                if placed is not None:
                    pending.append(placed)
            if placed is None:
                break
            added.append(placed)
        return added, pending

    def _scale_down(self, n: int) -> list[str]:
        infos = self.platform.replicas()
        order = {"pending": -1, "down": 0, "backoff": 1, "starting": 2, "unready": 3}
        order.update(exited=4, ready=5)
        victims = sorted(infos, key=lambda r: (order.get(r.state, 6), -_index(r.id)))
        removed = []
        for r in victims[:n]:
            self.platform.remove_replica(r.id)
            removed.append(r.id)
        return removed


def _index(replica_id: str) -> int:
    tail = replica_id.rsplit("-", 1)[-1]
    return int(tail) if tail.isdigit() else 0
