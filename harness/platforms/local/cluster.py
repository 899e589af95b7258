"""The cluster-autoscaler model of the local platform (like the Kubernetes Cluster
Autoscaler over node pools).

Two loops, as in the real one. Every ``scan_interval_s`` it looks for pending replicas
(wanted, but no node has room: a replica autoscaler's scale-up beyond capacity, or the
replicas of a lost node) and, when the nodes already on their way cannot hold them, requests
nodes from the pools in their order, never more than a pool's ``max_nodes``. A requested
node goes through its provisioning stages (``boot``, ``driver``, ``image_pull``), each a
``scale`` event when it ends, and then becomes schedulable: the platform places the pending
replicas there and they start (the model load is the replica's own start). A pool node above
``min_nodes`` that stayed empty for ``scale_down_unneeded_s`` is removed.

Every decision is a ``scale`` event with target ``cluster-autoscaler`` and
``details.scaler = "cluster-autoscaler"`` and an ``action``: ``node_requested``,
``node_stage``, ``node_ready``, ``node_removed``, or ``max_nodes`` (pending replicas, every
pool full). :mod:`harness.scoring.capacity` reads them into the chain.

The model runs on a clock it is given (unix seconds, ``time.time`` by default) and drives
its platform only through :class:`ClusterPlatform`, so unit tests run it on a fake clock
with a fake platform: :meth:`ClusterAutoscaler.step` is one tick.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from harness.config.pools import ClusterAutoscalerSpec, NodePoolSpec
from harness.timeline import Timeline

log = logging.getLogger(__name__)

SCALER = "cluster-autoscaler"
TICK_S = 0.1  # how often the thread advances the provisioning stages

NodeState = Literal["absent", "provisioning", "ready"]


class ClusterPlatform(Protocol):
    """What the cluster autoscaler needs of a platform (the local platform is one)."""

    def pending_replicas(self) -> list[str]:
        """Replicas wanted but on no up node with room."""
        ...

    def node_assigned(self, node: str) -> int:
        """Replicas placed on ``node`` (running, starting or waiting for it)."""
        ...

    def provision_node(self, node: str) -> None:
        """The pool node ``node`` finished its stages: make it schedulable now."""
        ...

    def retire_node(self, node: str) -> bool:
        """Remove the empty pool node ``node``; False when a replica is placed there."""
        ...


@dataclass
class PoolNode:
    """The model's record of one pool node."""

    name: str
    pool: NodePoolSpec
    state: NodeState = "absent"
    requested_at: float | None = None
    stage: int = 0  # index of the stage under way while provisioning
    stage_started: float = 0.0
    empty_since: float | None = None
    history: list[tuple[str, float]] = field(default_factory=list)  # (what, when)


class ClusterAutoscaler:
    """Adds pool nodes for pending replicas, removes empty ones (see module)."""

    def __init__(
        self,
        platform: ClusterPlatform,
        pools: Sequence[NodePoolSpec],
        spec: ClusterAutoscalerSpec,
        timeline: Timeline,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.platform = platform
        self.pools = list(pools)
        self.spec = spec
        self.timeline = timeline
        self.clock = clock
        self.nodes: dict[str, PoolNode] = {}
        for pool in self.pools:
            for i, name in enumerate(pool.node_names()):
                self.nodes[name] = PoolNode(name, pool, "ready" if i < pool.min_nodes else "absent")
        self.events: list[dict[str, Any]] = []  # the details of every event it emitted
        self._next_scan: float | None = None
        self._at_max = False
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- the thread ---------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="gpuchaos-cluster", daemon=True)
        self._thread.start()
        log.info(
            "cluster autoscaler: scan every %g s, scale-down after %g s empty; pools %s",
            self.spec.scan_interval_s, self.spec.scale_down_unneeded_s,
            ", ".join(f"{p.name} ({p.min_nodes}-{p.max_nodes} nodes, "
                      f"{p.provisioning_s:g} s)" for p in self.pools),
        )  # fmt: skip

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5.0)

    def _run(self) -> None:
        while not self._stop.wait(TICK_S):
            try:
                self.step()
            except Exception:
                log.exception("cluster autoscaler step failed")

    # -- one tick -----------------------------------------------------------------------

    def step(self, now: float | None = None) -> None:
        """Advance the nodes being provisioned to ``now``; scan when a scan is due."""
        with self._lock:
            now = self.clock() if now is None else now
            self._advance(now)
            if self._next_scan is None or now >= self._next_scan:
                self._next_scan = now + self.spec.scan_interval_s
                self._scan(now)

    def state(self, node: str) -> NodeState:
        return self.nodes[node].state

    def _advance(self, now: float) -> None:
        for node in self.nodes.values():
            if node.state != "provisioning":
                continue
            stages = node.pool.stage_seconds()
            while node.stage < len(stages) and now >= node.stage_started + stages[node.stage][1]:
                name, seconds = stages[node.stage]
                node.stage_started += seconds
                node.stage += 1
                self._emit("node_stage", node, now, stage=name, stage_s=seconds)
            if node.stage >= len(stages):
                node.state = "ready"
                node.empty_since = None
                self.platform.provision_node(node.name)
                assert node.requested_at is not None
                self._emit(
                    "node_ready", node, now, provisioning_s=round(now - node.requested_at, 3)
                )

    def _scan(self, now: float) -> None:
        pending = self.platform.pending_replicas()
        incoming = sum(n.pool.capacity for n in self.nodes.values() if n.state == "provisioning")
        need = len(pending) - incoming
        if need > 0:
            for pool in self.pools:
                absent = [
                    self.nodes[m] for m in pool.node_names() if self.nodes[m].state == "absent"
                ]
                for node in absent[: math.ceil(need / pool.capacity)]:
                    node.state, node.requested_at = "provisioning", now
                    node.stage, node.stage_started = 0, now
                    need -= pool.capacity
                    self._emit(
                        "node_requested", node, now, pending=list(pending),
                        stages=dict(pool.stage_seconds()), expected_ready_s=pool.provisioning_s,
                    )  # fmt: skip
                if need <= 0:
                    break
            self._advance(now)  # stages of 0 s end at once
            if need > 0 and not self._at_max:
                self._at_max = True
                self._emit("max_nodes", None, now, pending=list(pending), unplaced=need)
        if need <= 0:
            self._at_max = False
        self._scale_down(now)

    def _scale_down(self, now: float) -> None:
        for pool in self.pools:
            present = [self.nodes[m] for m in pool.node_names() if self.nodes[m].state != "absent"]
            count = len(present)
            for node in reversed(present):  # the newest first
                if node.state != "ready" or self.platform.node_assigned(node.name):
                    node.empty_since = None
                    continue
                if node.empty_since is None:
                    node.empty_since = now
                unneeded = now - node.empty_since
                if (
                    count > pool.min_nodes
                    and unneeded >= self.spec.scale_down_unneeded_s
                    and self.platform.retire_node(node.name)
                ):
                    node.state, node.empty_since, node.requested_at = "absent", None, None
                    count -= 1
                    self._emit("node_removed", node, now, empty_s=round(unneeded, 3))

    def _emit(self, action: str, node: PoolNode | None, now: float, **extra: Any) -> None:
        details: dict[str, Any] = {"scaler": SCALER, "action": action}
        if node is not None:
            details["node"] = node.name
            details["pool"] = node.pool.name
            node.history.append((action, now))
        details.update(extra)
        self.events.append(details)
        log.info("cluster autoscaler: %s", details)
        self.timeline.emit("scale", SCALER, details, at=now)
