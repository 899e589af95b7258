"""Node pools of the local platform and the cluster-autoscaler model that grows them.

A pool is a set of nodes of one shape (device, cores, replica capacity) that a cluster
autoscaler adds when replicas are pending and removes when they stay empty, like a GKE node
pool or an EKS managed node group under the Kubernetes Cluster Autoscaler. A new node is
not there at once: it boots, loads its GPU driver and pulls the workload's image, each a
named stage with its own delay (the model load is the replica's own start). Read by
:mod:`harness.platforms.local.pools` and :mod:`harness.platforms.local.cluster`.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, field_validator, model_validator

from harness.config.base import (
    MAX_CPU,
    MAX_DURATION_S,
    MAX_INTERVAL_S,
    MAX_NODE_REPLICAS,
    StrictModel,
)

#: Most nodes one pool may have (each is a name the platform knows from the start).
MAX_POOL_NODES = 64

#: The provisioning stages of a pool node, in order.
STAGES: tuple[str, ...] = ("boot", "driver", "image_pull")

_Core = Annotated[int, Field(ge=0, le=MAX_CPU)]


class NodePoolSpec(StrictModel):
    """A pool of nodes of one shape; its nodes are named ``<name>-0``, ``<name>-1``, ..."""

    name: str = Field(
        description="Pool name; its nodes are '<name>-<i>' (fault targets like any node).",
        pattern=r"^[a-z0-9-]+$",
        max_length=40,
    )
    device: str = Field(
        default="auto",
        description="'cpu', 'cuda', 'cuda:N', or 'auto' (cuda:0 when a GPU is present, else cpu).",
        pattern=r"^(auto|cpu|cuda(:\d+)?)$",
    )
    cpus: list[_Core] | None = Field(
        default=None,
        min_length=1,
        description=(
            "CPU cores every node of the pool pins its replicas to (the pool's share of this "
            f"machine), e.g. [1]; unset: no pinning. Core numbers 0 to {MAX_CPU}."
        ),
    )
    capacity: int = Field(
        default=1,
        ge=1,
        le=MAX_NODE_REPLICAS,
        description=f"Replicas one node of the pool can run (its GPUs), 1 to {MAX_NODE_REPLICAS}.",
    )
    min_nodes: int = Field(
        default=0,
        ge=0,
        le=MAX_POOL_NODES,
        description=(
            "Nodes present from the start (empty, ready for pending replicas) and never "
            f"removed, 0 to {MAX_POOL_NODES}."
        ),
    )
    max_nodes: int = Field(
        default=1,
        ge=1,
        le=MAX_POOL_NODES,
        description=(
            f"Most nodes the cluster autoscaler may run in this pool, 1 to {MAX_POOL_NODES}."
        ),
    )
    boot_s: float = Field(
        default=60.0,
        ge=0,
        le=MAX_DURATION_S,
        description=(
            "Seconds from the request to a booted machine (cloud VM start, kubelet join), "
            f"0 to {MAX_DURATION_S} (7 days)."
        ),
    )
    driver_s: float = Field(
        default=60.0,
        ge=0,
        le=MAX_DURATION_S,
        description=(
            "Seconds to install/load the GPU driver and device plugin after boot (the node "
            f"is not schedulable for GPUs before), 0 to {MAX_DURATION_S}."
        ),
    )
    image_pull_s: float = Field(
        default=60.0,
        ge=0,
        le=MAX_DURATION_S,
        description=(
            "Seconds to pull the inference image (often 10+ GiB with CUDA and torch) after "
            f"the driver, 0 to {MAX_DURATION_S}; the model load is the replica's own start."
        ),
    )

    @property
    def provisioning_s(self) -> float:
        """Seconds from a node's request to its being schedulable (the three stages)."""
        return self.boot_s + self.driver_s + self.image_pull_s

    def stage_seconds(self) -> list[tuple[str, float]]:
        """(stage, seconds) in order."""
        return [("boot", self.boot_s), ("driver", self.driver_s), ("image_pull", self.image_pull_s)]

    def node_names(self) -> list[str]:
        """Every node name the pool may have, in the order they are added."""
        return [f"{self.name}-{i}" for i in range(self.max_nodes)]

    @field_validator("cpus")
    @classmethod
    def _once_each(cls, value: list[int] | None) -> list[int] | None:
        if value is not None and len(set(value)) != len(value):
            raise ValueError("cores listed more than once")
        return value

    @model_validator(mode="after")
    def _bounds(self) -> NodePoolSpec:
        if self.min_nodes > self.max_nodes:
            raise ValueError(f"min_nodes ({self.min_nodes}) exceeds max_nodes ({self.max_nodes})")
        return self


class ClusterAutoscalerSpec(StrictModel):
    """The cluster-autoscaler model: scans for pending replicas, adds pool nodes, removes
    pool nodes that stayed empty (the Kubernetes Cluster Autoscaler's two loops)."""

    scan_interval_s: float = Field(
        default=10.0,
        gt=0,
        le=MAX_INTERVAL_S,
        description=(
            "Seconds between two scans for pending replicas (the Cluster Autoscaler's "
            f"--scan-interval, 10 s by default), at most {MAX_INTERVAL_S} (1 hour)."
        ),
    )
    scale_down_unneeded_s: float = Field(
        default=600.0,
        ge=0,
        le=MAX_DURATION_S,
        description=(
            "A pool node above min_nodes that stayed empty this long is removed "
            "(--scale-down-unneeded-time, 10 min by default), seconds; at most "
            f"{MAX_DURATION_S} (7 days)."
        ),
    )
