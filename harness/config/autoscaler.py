"""The ``platform.autoscaler`` block of the local platform: KEDA-like scaling on one metric.

Read by :mod:`harness.platforms.local.autoscaler`; the Kubernetes platform's counterpart is
:class:`harness.config.platform_kubernetes.KedaSpec`.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from harness.config.base import StrictModel


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
    threshold: float = Field(gt=0, description="Target value of the metric per replica.")
    polling_interval_s: float = Field(
        default=5.0, gt=0, description="Seconds between two looks at the metric."
    )
    cooldown_s: float = Field(
        default=30.0, ge=0, description="Seconds after a scaling action before the next one."
    )
    min_replicas: int = Field(default=1, ge=0, le=256, description="Fewest replicas.")
    max_replicas: int = Field(default=4, ge=1, le=256, description="Most replicas.")
    max_step: int = Field(default=2, ge=1, description="Most replicas added or removed at once.")
    replica_memory_mib: float = Field(
        default=0.0,
        ge=0,
        description=(
            "Memory a new replica needs on its node (GPU memory from NVML on CUDA nodes, host "
            "memory on CPU nodes); a node with less free takes none."
        ),
    )
    tolerance: float = Field(
        default=0.1, ge=0, lt=1, description="No change while metric/threshold is within 1 +- this."
    )

    @model_validator(mode="after")
    def _bounds(self) -> AutoscalerSpec:
        if self.min_replicas > self.max_replicas:
            raise ValueError(
                f"min_replicas ({self.min_replicas}) exceeds max_replicas ({self.max_replicas})"
            )
        return self
