"""Placement on the local platform: node capacity, rescheduling, node pools and Pending
replicas; the part of the platform the autoscalers drive
(:class:`~harness.platforms.local.autoscaler.ScalablePlatform`,
:class:`~harness.platforms.local.cluster.ClusterPlatform`).

A node's room is its capacity (``max_replicas``, or a pool's ``capacity``) minus the
replicas placed there; a down node, a node whose GPU is unhealthy and a cordoned node
(capacity 0) have none.

A pool node is a node name the platform knows from the start; those past the pool's
``min_nodes`` start absent (down, and no fault's ``node_up`` brings them back) until the
cluster autoscaler provisions them. A replica is Pending when it is wanted but on no up node
with room: its node is down, or it has none yet (a scale-up beyond capacity on a platform
with pools, as a Deployment's new pod is). Each replica that becomes Pending is a
``replica_pending`` event.
"""

from __future__ import annotations

import logging
import time

from harness.config import LocalPlatformSpec
from harness.platforms.local.devices import resolve_device
from harness.platforms.local.process import usable_cpus
from harness.platforms.local.replica import Replica
from harness.platforms.local.supervisor import Supervisor
from harness.timeline import Timeline

log = logging.getLogger(__name__)


class Placement:
    """The placement half of :class:`~harness.platforms.local.platform.LocalPlatform`."""

    spec: LocalPlatformSpec
    timeline: Timeline
    _supervisor: Supervisor
    _node_cpus: dict[str, set[int] | None]
    _node_devices: dict[str, str]
    _node_names: list[str]

    def _check_node(self, node: str) -> None:
        raise NotImplementedError

    def _lay_out_pools(self, spec: LocalPlatformSpec, capacity: dict[str, int]) -> list[str]:
        """Give every pool node its cores, device and capacity; returns those that start
        absent."""
        #: pool node -> its pool's name
        self._pool_of: dict[str, str] = {}
        self._pending_seen: set[str] = set()  # replicas reported Pending, not placed since
        absent: list[str] = []
        for pool in spec.pools:
            device = resolve_device(pool.device)
            for i, name in enumerate(pool.node_names()):
                self._pool_of[name] = pool.name
                self._node_cpus[name] = usable_cpus(pool.cpus)
                self._node_devices[name] = device
                capacity[name] = pool.capacity
                if i >= pool.min_nodes:
                    absent.append(name)
        return absent

    def nodes(self) -> list[str]:
        """The fixed nodes and the pool nodes present now (not those not provisioned)."""
        with self._supervisor.lock:
            absent = set(self._supervisor.absent)
        return [n for n in self._node_names if n not in absent]

    def _reschedule(self, why: str) -> None:
        moved = self._place()
        pending = self.pending_replicas()
        if moved or pending:
            log.info("%s: rescheduled %s; waiting for their node: %s", why, moved, pending)
            self.timeline.emit(
                "scale",
                "scheduler",
                {"reason": why, "rescheduled": moved, "pending": pending},
            )
        self._note_pending(why)

    def _note_pending(self, why: str) -> None:
        """A ``replica_pending`` event for each replica that became Pending (wanted, no up
        node with room) since the last look; the scheduler's ``scale`` event names those
        placed again."""
        pending = set(self.pending_replicas())
        for rid in sorted(pending - self._pending_seen):
            with self._supervisor.lock:
                r = self._supervisor.replicas.get(rid)
                node = r.node if r is not None else ""
            self.timeline.emit("replica_pending", rid, {"reason": why, "node": node or None})
        self._pending_seen = pending

    # -- node pools, for the cluster autoscaler --------------------------------------------

    def _provision(self, node: str) -> bool:
        """A pool node finished its provisioning stages: present and up from now on."""
        with self._supervisor.lock:
            self._supervisor.absent.discard(node)
        return self._supervisor.bring_node_up(node)

    def _retire(self, node: str) -> bool:
        """Remove an empty pool node; False when a replica is placed there."""
        sup = self._supervisor
        with sup.lock:
            if sup.assigned(node) or node in sup.absent:
                return False
            sup.absent.add(node)
            sup.node_up[node] = False
        return True

    def _add_pending(self) -> str | None:
        """A new replica with no node (Pending), for a cluster autoscaler to make room for;
        the supervisor's ``reschedule`` places it once a node has room."""
        sup = self._supervisor
        with sup.lock:
            taken = set(sup.replicas)
            i = 0
            while f"scaled-{i}" in taken:
                i += 1
            r = Replica(f"scaled-{i}", "", "cpu", state="pending", autoscaled=True)
            sup.replicas[r.id] = r
        return r.id

    def pending_replicas(self) -> list[str]:
        """Replicas wanted but on no up node with room: their node is down, they have none,
        or its GPU is unhealthy and no node had room (state ``pending``)."""
        sup = self._supervisor
        with sup.lock:
            return [
                r.id
                for r in sup.replicas.values()
                if r.state == "pending" or not sup.node_up.get(r.node, False)
            ]

    def _place(self) -> dict[str, str]:
        """Place the Pending replicas on up nodes with room (their own node first, then the
        most room, like a scheduler spreading pods); the rest wait. Returns replica -> node."""
        sup = self._supervisor
        moved: dict[str, str] = {}
        with sup.lock:  # (after the platform stopped, the supervisor starts nothing)
            now = time.monotonic()
            for r in sup.replicas.values():
                if sup.node_up.get(r.node, False) or r.proc is not None:
                    continue
                candidates = [n for n in sup.node_up if sup.room(n) > 0]
                if not candidates:
                    continue
                to = max(candidates, key=lambda n: (n == r.home, sup.room(n)))
                r.node = to
                r.device = sup.devices.get(to, r.device)
                r.consecutive_crashes = 0
                sup.schedule_locked(r, now)
                moved[r.id] = to
        if moved:
            sup.wake()
        return moved

    def node_assigned(self, node: str) -> int:
        with self._supervisor.lock:
            return self._supervisor.assigned(node)

    def provision_node(self, node: str) -> None:
        """A pool node finished its provisioning stages: up, and the pending replicas are
        placed on it."""
        self._check_node(node)
        if self._provision(node):
            self.timeline.emit("node_up", node, {"pool": self._pool_of.get(node)})
            log.info("pool node %s up", node)
            self._reschedule(f"pool node {node} ready")

    def retire_node(self, node: str) -> bool:
        """Remove the empty pool node ``node`` (cluster autoscaler's scale-down)."""
        self._check_node(node)
        if node not in self._pool_of:
            return False
        return self._retire(node)

    def add_pending_replica(self) -> str | None:
        """A replica with no node yet (Pending), only on a platform with node pools (what a
        cluster autoscaler could make room for); None otherwise."""
        if not self.spec.pools:
            return None
        rid = self._add_pending()
        self._reschedule("scale-up beyond capacity")
        return rid

    # -- capacity, for rescheduling and the autoscaler ------------------------------------

    def node_device(self, node: str) -> str:
        self._check_node(node)
        return self._node_devices[node]

    def node_cpus(self, node: str) -> set[int] | None:
        self._check_node(node)
        return self._node_cpus[node]

    def node_is_up(self, node: str) -> bool:
        with self._supervisor.lock:
            return self._supervisor.node_up.get(node, False)

    def node_room(self) -> dict[str, int]:
        """How many more replicas each node can take (0 for a down node)."""
        with self._supervisor.lock:
            return {n: self._supervisor.room(n) for n in self._node_names}

    def replica_count(self) -> int:
        """Replicas the platform keeps (running, starting or waiting for a node)."""
        with self._supervisor.lock:
            return len(self._supervisor.replicas)

    def add_replica(self, node: str) -> str | None:
        """Scale up by one replica on ``node``; its id, or None when the node has no room."""
        self._check_node(node)
        replica = self._supervisor.add_replica(node)
        return replica.id if replica is not None else None
