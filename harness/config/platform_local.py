"""The ``platform`` block of kind ``local``: virtual nodes, probes, routing and scaling.

The embedded platform (:mod:`harness.platforms.local`) reads these: the nodes and their
capacity, the supervisor's back-off and liveness probe, the router's outlier ejection and the
optional autoscaler (:mod:`harness.config.autoscaler`).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from harness.config.autoscaler import AutoscalerSpec
from harness.config.base import (
    MAX_COUNT,
    MAX_CPU,
    MAX_DURATION_S,
    MAX_INTERVAL_S,
    MAX_NODE_REPLICAS,
    MAX_THREADS,
    StrictModel,
)
from harness.config.pools import ClusterAutoscalerSpec, NodePoolSpec

#: A CPU core's number.
Core = Annotated[int, Field(ge=0, le=MAX_CPU)]


class NodeSpec(StrictModel):
    """A virtual node of the local platform: one device and the replicas it runs."""

    name: str = Field(description="Node name, used as a fault target.", pattern=r"^[a-z0-9-]+$")
    device: str = Field(
        default="auto",
        description="'cpu', 'cuda', 'cuda:N', or 'auto' (cuda:0 when a GPU is present, else cpu).",
        pattern=r"^(auto|cpu|cuda(:\d+)?)$",
    )
    replicas: int = Field(
        default=1,
        ge=0,
        le=MAX_NODE_REPLICAS,
        description=(
            f"Replicas on this node, 0 to {MAX_NODE_REPLICAS} (0: a spare node, room for "
            "rescheduled or scaled-up replicas; the platform needs at least one replica)."
        ),
    )
    cpus: list[Core] | None = Field(
        default=None,
        min_length=1,
        description=(
            "CPU cores the node's replicas are pinned to (its share of the machine), e.g. "
            f"[0]; unset (not []): no pinning. Core numbers 0 to {MAX_CPU}, each listed once "
            "and pinned by one node only. Cores this machine lacks are skipped."
        ),
    )
    max_replicas: int | None = Field(
        default=None,
        ge=0,
        le=MAX_NODE_REPLICAS,
        description=(
            "Most replicas the node can run (its GPU capacity): replicas of a lost node are "
            "rescheduled onto nodes below it, and the autoscaler scales up to it; unset: "
            f"'replicas' (no spare room). At most {MAX_NODE_REPLICAS}."
        ),
    )

    @property
    def capacity(self) -> int:
        """Most replicas this node can run."""
        return self.replicas if self.max_replicas is None else max(self.max_replicas, 0)

    @field_validator("cpus")
    @classmethod
    def _once_each(cls, value: list[int] | None) -> list[int] | None:
        if value is None:
            return value
        repeated = sorted({c for c in value if value.count(c) > 1})
        if repeated:
            raise ValueError(f"cores listed more than once: {', '.join(map(str, repeated))}")
        return value

    @model_validator(mode="after")
    def _room_for_replicas(self) -> NodeSpec:
        if self.max_replicas is not None and self.max_replicas < self.replicas:
            raise ValueError(
                f"max_replicas ({self.max_replicas}) is below replicas ({self.replicas})"
            )
        return self


class LivenessSpec(StrictModel):
    """The supervisor's liveness probe (like a kubelet livenessProbe): GET /health/live;
    after ``failure_threshold`` failures in a row the replica is killed and restarted."""

    period_s: float = Field(
        default=1.0,
        gt=0,
        le=MAX_INTERVAL_S,
        description=f"Seconds between liveness probes, at most {MAX_INTERVAL_S} (1 hour).",
    )
    timeout_s: float = Field(
        default=2.0,
        gt=0,
        le=MAX_INTERVAL_S,
        description=(
            f"A probe slower than this fails, seconds; at most {MAX_INTERVAL_S} (1 hour)."
        ),
    )
    failure_threshold: int = Field(
        default=3,
        ge=1,
        le=MAX_COUNT,
        description=(
            f"Failed probes in a row before the replica is restarted, 1 to {MAX_COUNT:,}."
        ),
    )


class OutlierEjectionSpec(StrictModel):
    """Envoy-style outlier detection in the local router: a replica that answers
    ``consecutive_5xx`` 5xx in a row (or cannot be reached) gets no traffic for a while."""

    consecutive_5xx: int = Field(
        default=5,
        ge=1,
        le=MAX_COUNT,
        description=(
            f"5xx answers (or failed connections) in a row that eject, 1 to {MAX_COUNT:,}."
        ),
    )
    base_ejection_s: float = Field(
        default=30.0,
        gt=0,
        le=MAX_DURATION_S,
        description=(
            "Ejection time, seconds; the n-th ejection of a replica lasts n times this. At "
            f"most {MAX_DURATION_S} (7 days)."
        ),
    )
    max_ejection_s: float = Field(
        default=300.0,
        gt=0,
        le=MAX_DURATION_S,
        description=(
            f"Longest ejection, whatever the count, seconds; at most {MAX_DURATION_S} (7 days)."
        ),
    )
    max_ejection_percent: float = Field(
        default=50.0,
        ge=0,
        le=100,
        description=(
            "Most replicas ejected at once, in percent, 0 to 100 (at least one replica may be "
            "ejected, the last one never)."
        ),
    )


class LocalPlatformSpec(StrictModel):
    """The embedded local platform: virtual nodes, replicas as processes, a router."""

    kind: Literal["local"] = Field(default="local", description="Platform kind.")
    nodes: list[NodeSpec] = Field(
        min_length=1,
        description=(
            "Virtual nodes and their replicas: unique names, at least one replica in all, no "
            "CPU core pinned by two nodes."
        ),
    )
    restart_backoff_s: float = Field(
        default=0.5,
        gt=0,
        le=MAX_INTERVAL_S,
        description=(
            "First restart delay of a crashed replica (doubles), seconds; at most "
            f"{MAX_INTERVAL_S} (1 hour)."
        ),
    )
    max_backoff_s: float = Field(
        default=10.0,
        gt=0,
        le=MAX_INTERVAL_S,
        description=f"Cap of the restart delay, seconds; at most {MAX_INTERVAL_S} (1 hour).",
    )
    probe_interval_s: float = Field(
        default=0.25,
        gt=0,
        le=MAX_INTERVAL_S,
        description=(
            "How often the supervisor checks replica readiness, seconds; at most "
            f"{MAX_INTERVAL_S} (1 hour)."
        ),
    )
    torch_threads: int = Field(
        default=1,
        ge=1,
        le=MAX_THREADS,
        description=f"CPU threads per replica (torch.set_num_threads), 1 to {MAX_THREADS}.",
    )
    liveness: LivenessSpec | None = Field(
        default_factory=LivenessSpec,
        description="Liveness probe that restarts hung replicas; null: none.",
    )
    autoscaler: AutoscalerSpec | None = Field(
        default=None, description="Scale replicas on queue depth or TTFT; unset: fixed count."
    )
    pools: list[NodePoolSpec] = Field(
        default_factory=list,
        description=(
            "Node pools (harness.config.pools): nodes of one shape that come up only when the "
            "cluster autoscaler asks for them, after their provisioning stages; [] (default): "
            "the fixed nodes only."
        ),
    )
    cluster_autoscaler: ClusterAutoscalerSpec | None = Field(
        default=None,
        description=(
            "Add pool nodes for pending replicas and remove empty ones; unset: a pool keeps "
            "its min_nodes (needs pools)."
        ),
    )
    outlier_ejection: OutlierEjectionSpec | None = Field(
        default=None,
        description=(
            "Eject replicas that keep failing from the router's rotation; null (default): "
            "none, like a Service or gateway without outlier detection."
        ),
    )

    def all_node_names(self) -> list[str]:
        """The fixed nodes, then every node each pool may have."""
        return [n.name for n in self.nodes] + [m for p in self.pools for m in p.node_names()]

    @model_validator(mode="after")
    def _unique_nodes(self) -> LocalPlatformSpec:
        names = self.all_node_names()
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"node names must be unique, repeated: {', '.join(dupes)}")
        return self

    @model_validator(mode="after")
    def _some_replica(self) -> LocalPlatformSpec:
        if not any(n.replicas for n in self.nodes):
            raise ValueError(
                "nodes: no node has a replica (replicas is 0 everywhere); at least one is "
                "needed to serve the load"
            )
        return self

    @model_validator(mode="after")
    def _cores_not_shared(self) -> LocalPlatformSpec:
        owner: dict[int, str] = {}
        shares = [(n.name, n.cpus) for n in self.nodes]
        shares += [(f"pool {p.name}", p.cpus) for p in self.pools]
        for name, cpus in shares:
            for core in cpus or []:
                if core in owner:
                    raise ValueError(
                        f"nodes: core {core} is in the cpus of both {owner[core]} and "
                        f"{name} (a core is one node's share of the machine)"
                    )
                owner[core] = name
        return self

    @model_validator(mode="after")
    def _pools_for_autoscaler(self) -> LocalPlatformSpec:
        if self.cluster_autoscaler is not None and not self.pools:
            raise ValueError("cluster_autoscaler: needs at least one pool under 'pools'")
        names = [p.name for p in self.pools]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"pools: names must be unique, repeated: {', '.join(dupes)}")
        return self
