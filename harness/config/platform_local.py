"""The ``platform`` block of kind ``local``: virtual nodes, probes, routing and scaling.

The embedded platform (:mod:`harness.platforms.local`) reads these: the nodes and their
capacity, the supervisor's back-off and liveness probe, the router's outlier ejection and the
optional autoscaler (:mod:`harness.config.autoscaler`).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from harness.config.autoscaler import AutoscalerSpec
from harness.config.base import StrictModel


class NodeSpec(StrictModel):
    """A virtual node of the local platform: one device and the replicas it runs."""

    name: str = Field(description="Node name, used as a fault target.", pattern=r"^[a-z0-9-]+$")
    device: str = Field(
        default="auto",
        description="'cpu', 'cuda', 'cuda:N', or 'auto' (cuda:0 when a GPU is present, else cpu).",
        pattern=r"^(auto|cpu|cuda(:\d+)?)$",
    )
    replicas: int = Field(default=1, ge=0, le=64, description="Replicas on this node.")
    cpus: list[int] | None = Field(
        default=None,
        description=(
            "CPU cores the node's replicas are pinned to (its share of the machine), e.g. "
            "[0]; unset: no pinning. Cores this machine lacks are skipped."
        ),
    )
    max_replicas: int | None = Field(
        default=None,
        ge=0,
        le=64,
        description=(
            "Most replicas the node can run (its GPU capacity): replicas of a lost node are "
            "rescheduled onto nodes below it, and the autoscaler scales up to it; unset: "
            "'replicas' (no spare room)."
        ),
    )

    @property
    def capacity(self) -> int:
        """Most replicas this node can run."""
        return self.replicas if self.max_replicas is None else max(self.max_replicas, 0)

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

    period_s: float = Field(default=1.0, gt=0, description="Seconds between liveness probes.")
    timeout_s: float = Field(default=2.0, gt=0, description="A probe slower than this fails.")
    failure_threshold: int = Field(
        default=3, ge=1, description="Failed probes in a row before the replica is restarted."
    )


class OutlierEjectionSpec(StrictModel):
    """Envoy-style outlier detection in the local router: a replica that answers
    ``consecutive_5xx`` 5xx in a row (or cannot be reached) gets no traffic for a while."""

    consecutive_5xx: int = Field(
        default=5, ge=1, description="5xx answers (or failed connections) in a row that eject."
    )
    base_ejection_s: float = Field(
        default=30.0,
        gt=0,
        description="Ejection time; the n-th ejection of a replica lasts n times this.",
    )
    max_ejection_s: float = Field(
        default=300.0, gt=0, description="Longest ejection, whatever the count."
    )
    max_ejection_percent: float = Field(
        default=50.0,
        ge=0,
        le=100,
        description=(
            "Most replicas ejected at once, in percent (at least one replica may be ejected, "
            "the last one never)."
        ),
    )


class LocalPlatformSpec(StrictModel):
    """The embedded local platform: virtual nodes, replicas as processes, a router."""

    kind: Literal["local"] = Field(default="local", description="Platform kind.")
    nodes: list[NodeSpec] = Field(min_length=1, description="Virtual nodes and their replicas.")
    restart_backoff_s: float = Field(
        default=0.5, gt=0, description="First restart delay of a crashed replica (doubles)."
    )
    max_backoff_s: float = Field(default=10.0, gt=0, description="Cap of the restart delay.")
    probe_interval_s: float = Field(
        default=0.25, gt=0, description="How often the supervisor checks replica readiness."
    )
    torch_threads: int = Field(
        default=1, ge=1, description="CPU threads per replica (torch.set_num_threads)."
    )
    liveness: LivenessSpec | None = Field(
        default_factory=LivenessSpec,
        description="Liveness probe that restarts hung replicas; null: none.",
    )
    autoscaler: AutoscalerSpec | None = Field(
        default=None, description="Scale replicas on queue depth or TTFT; unset: fixed count."
    )
    outlier_ejection: OutlierEjectionSpec | None = Field(
        default=None,
        description=(
            "Eject replicas that keep failing from the router's rotation; null (default): "
            "none, like a Service or gateway without outlier detection."
        ),
    )

    @model_validator(mode="after")
    def _unique_nodes(self) -> LocalPlatformSpec:
        names = [n.name for n in self.nodes]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"node names must be unique, repeated: {', '.join(dupes)}")
        return self
