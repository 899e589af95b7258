"""Spare-capacity preflight: before a node is taken away, is there room for its replicas,
and how long until there is?

Fault-injection tools check that their targets exist before they act (AWS FIS, Krkn); none
checks whether the GPU capacity the fault removes can be found again in time. This is that
check, a pure function over the platform's topology (no process, no clock): the replicas
the lost node runs, the room on the other nodes (``max_replicas`` minus their replicas, and
the empty pool nodes present from the start), and for the rest, how long the cluster
autoscaler would take to bring pool nodes (one scan interval at worst, then the pool's
provisioning stages) or, when the fault gives the node back, how long until it returns.
Compared with the experiment's recovery objective (``slos.recovery_s``) it says whether the
fault can recover in time; ``preflight: strict`` refuses a fault that cannot.

The replicas' own start (model load) is not counted: it is the same wherever they land.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from harness.config import LocalPlatformSpec


@dataclass(frozen=True)
class Preflight:
    """What losing one node means for capacity."""

    node: str
    replicas: int  # replicas the node runs at the start
    room_elsewhere: int  # places for them on the other nodes present
    unplaced: int  # replicas with no place until nodes come
    pool_nodes: int  # pool nodes the cluster autoscaler would add for them
    pool: str | None  # the pool they would come from (the first that can, in order)
    pool_s: float | None  # about how long those nodes take (scan + stages); None: no pool
    node_back_s: float | None  # when the fault gives the node back (its duration)
    capacity_s: float | None  # seconds until every lost replica has a place; None: never
    recovery_s: float | None  # the experiment's recovery objective
    in_time: bool | None  # capacity_s within recovery_s; None when there is no objective
    loss: str = "node"  # what is lost: the node, or only its GPU (lose_gpu: XID 79)

    def line(self) -> str:
        """One line for people, e.g. "node-a lost: 2 replicas, room for 1 elsewhere, a
        pool node would take about 190 s; recovery objective 30 s: cannot recover in time"."""
        what = self.node if self.loss == "node" else f"{self.node}'s GPU"
        text = f"{what} lost: {self.replicas} replica{'s' * (self.replicas != 1)}, "
        text += f"room for {self.room_elsewhere} elsewhere"
        if self.unplaced:
            if self.pool_s is not None:
                what = "a pool node" if self.pool_nodes == 1 else f"{self.pool_nodes} pool nodes"
                text += f", {what} would take about {self.pool_s:.0f} s"
            else:
                text += ", no pool node can take the rest"
            if self.node_back_s is not None:
                text += f", the node returns after {self.node_back_s:g} s"
        if self.recovery_s is None:
            return text + "; no recovery objective"
        verdict = {True: "fits", False: "cannot recover in time", None: "unknown"}[self.in_time]
        return f"{text}; recovery objective {self.recovery_s:g} s: {verdict}"

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["line"] = self.line()
        return out


def preflight_node_loss(
    platform: LocalPlatformSpec,
    node: str,
    recovery_s: float | None,
    down_for_s: float | None = None,
    loss: str = "node",
) -> Preflight:
    """Losing ``node`` of ``platform`` (for ``down_for_s`` seconds; None: for good) against
    the recovery objective ``recovery_s`` (seconds; None: no objective). ``loss="gpu"``: only
    the node's GPU is lost (``lose_gpu``); the same arithmetic, since its replicas must go
    elsewhere or wait for the GPU just as they wait for a node."""
    fixed = {n.name: n for n in platform.nodes}
    lost = fixed[node].replicas if node in fixed else 0
    room = sum(max(0, n.capacity - n.replicas) for n in platform.nodes if n.name != node)
    for pool in platform.pools:  # empty pool nodes present from the start
        present = pool.min_nodes - (1 if node in pool.node_names()[: pool.min_nodes] else 0)
        room += max(0, present) * pool.capacity
    unplaced = max(0, lost - room)
    pool_nodes, pool_name, pool_s = 0, None, None
    scaler = platform.cluster_autoscaler
    if unplaced and scaler is not None:
        for pool in platform.pools:
            free = pool.max_nodes - pool.min_nodes
            need = math.ceil(unplaced / pool.capacity)
            if need <= free:
                pool_nodes, pool_name = need, pool.name
                pool_s = scaler.scan_interval_s + pool.provisioning_s
                break
    waits = [s for s in (pool_s, down_for_s) if s is not None]
    capacity_s = 0.0 if not unplaced else (min(waits) if waits else None)
    in_time: bool | None = None
    if recovery_s is not None:
        in_time = capacity_s is not None and capacity_s <= recovery_s
    return Preflight(
        node=node,
        replicas=lost,
        room_elsewhere=room,
        unplaced=unplaced,
        pool_nodes=pool_nodes,
        pool=pool_name,
        pool_s=pool_s,
        node_back_s=down_for_s,
        capacity_s=capacity_s,
        recovery_s=recovery_s,
        in_time=in_time,
        loss=loss,
    )
