"""The ``platform.autoscaler`` block of the local platform: KEDA-like scaling on one metric.

Read by :mod:`harness.platforms.local.autoscaler`; the Kubernetes platform's counterpart is
:class:`harness.config.platform_kubernetes.KedaSpec`.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from harness.config.base import (
    MAX_COUNT,
    MAX_DURATION_S,
    MAX_INTERVAL_S,
    MAX_MEMORY_MIB,
    MAX_REPLICAS,
    StrictModel,
)


class AutoscalerSpec(StrictModel):
    """A local autoscaler like KEDA on Prometheus: polls the replicas' /metrics and sets the
    replica count with the HPA rule desired = ceil(replicas x metric / threshold)."""

    metric: Literal["queue_depth", "ttft_s"] = Field(
        default="queue_depth",
        description=(
            "queue_depth: vllm:num_requests_waiting averaged over Ready replicas; ttft_s: mean "
            "time to first token over the last polling interval (seconds)."
        ),
    )
    threshold: float = Field(
        gt=0,
        le=MAX_COUNT,
        description=f"Target value of the metric per replica, at most {MAX_COUNT:,}.",
    )
    polling_interval_s: float = Field(
        default=5.0,
        gt=0,
        le=MAX_INTERVAL_S,
        description=(
            f"Seconds between two looks at the metric, at most {MAX_INTERVAL_S} (1 hour)."
        ),
    )
    cooldown_s: float = Field(
        default=30.0,
        ge=0,
        le=MAX_DURATION_S,
        description=(
            "Seconds after a scaling action before the next one (0: none), at most "
            f"{MAX_DURATION_S} (7 days)."
        ),
    )
    min_replicas: int = Field(
        default=1, ge=0, le=MAX_REPLICAS, description=f"Fewest replicas, 0 to {MAX_REPLICAS}."
    )
    max_replicas: int = Field(
        default=4, ge=1, le=MAX_REPLICAS, description=f"Most replicas, 1 to {MAX_REPLICAS}."
    )
    max_step: int = Field(
        default=2,
        ge=1,
        le=MAX_REPLICAS,
        description=f"Most replicas added or removed at once, 1 to {MAX_REPLICAS}.",
    )
    replica_memory_mib: float = Field(
        default=0.0,
        ge=0,
        le=MAX_MEMORY_MIB,
        description=(
            "Memory a new replica needs on its node (GPU memory from NVML on CUDA nodes, host "
            "memory on CPU nodes); a node with less free takes none. 0: not checked; at most "
            f"{MAX_MEMORY_MIB:,} MiB (1 TiB)."
        ),
    )
    tolerance: float = Field(
        default=0.1,
        ge=0,
        lt=1,
        description="No change while metric/threshold is within 1 +- this; 0 to below 1.",
    )

    @model_validator(mode="after")
    def _bounds(self) -> AutoscalerSpec:
        if self.min_replicas > self.max_replicas:
            raise ValueError(
                f"min_replicas ({self.min_replicas}) exceeds max_replicas ({self.max_replicas})"
            )
        return self
