"""The ``platform.autoscaler`` block of the local platform: KEDA/HPA-like scaling rules.

One rule (the single-rule form: ``metric``, ``threshold``, ``polling_interval_s``,
``cooldown_s`` at the top, as before) or several under ``rules``, each on its own metric with
its own interval and cooldown, like a KEDA ScaledObject on queue depth beside an HPA on p99
latency: a rule scales up on its own; a scale-down goes no lower than what every other rule
last asked for (the HPA takes the largest proposal). Read by
:mod:`harness.platforms.local.autoscaler`; the Kubernetes platform's counterpart is
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

Metric = Literal["queue_depth", "ttft_s", "p99_latency_ms"]

_METRIC_HELP = (
    "queue_depth: vllm:num_requests_waiting averaged over Ready replicas; ttft_s: mean time "
    "to first token over the last polling interval (seconds); p99_latency_ms: p99 latency of "
    "the load's own request records that ended in the last window_s (failed ones included), "
    "like an HPA on a Prometheus latency histogram."
)


class ScalingRuleSpec(StrictModel):
    """One scaling rule: a metric, its per-replica target, how often it is read and how long
    the rule waits after its own action."""

    metric: Metric = Field(description=_METRIC_HELP)
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
            "Seconds after this rule's scaling action before its next one (0: none), at most "
            f"{MAX_DURATION_S} (7 days)."
        ),
    )
    tolerance: float = Field(
        default=0.1,
        ge=0,
        lt=1,
        description="No change while metric/threshold is within 1 +- this; 0 to below 1.",
    )
    window_s: float | None = Field(
        default=None,
        gt=0,
        le=MAX_INTERVAL_S,
        description=(
            "p99_latency_ms only: the records of the last this many seconds; unset: the "
            f"polling interval, at least 5 s. At most {MAX_INTERVAL_S} (1 hour)."
        ),
    )

    @property
    def window(self) -> float:
        """Seconds of records a p99_latency_ms reading covers."""
        return self.window_s if self.window_s is not None else max(self.polling_interval_s, 5.0)


class AutoscalerSpec(StrictModel):
    """A local autoscaler like KEDA on Prometheus: polls the replicas' /metrics (or the
    load's records) and sets the replica count with the HPA rule
    desired = ceil(replicas x metric / threshold)."""

    metric: Metric = Field(
        default="queue_depth", description=f"Single-rule form: the metric. {_METRIC_HELP}"
    )
    threshold: float | None = Field(
        default=None,
        gt=0,
        le=MAX_COUNT,
        description=(
            f"Single-rule form: target value of the metric per replica, at most {MAX_COUNT:,}; "
            "required unless 'rules' is given."
        ),
    )
    rules: list[ScalingRuleSpec] = Field(
        default_factory=list,
        max_length=16,
        description=(
            "Several rules active together (at most 16), each with its own metric, interval "
            "and cooldown; instead of metric/threshold/polling_interval_s/cooldown_s/tolerance."
        ),
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
    scale_down_stabilization_s: float = Field(
        default=0.0,
        ge=0,
        le=MAX_DURATION_S,
        description=(
            "A scale-down goes no lower than the highest count any rule asked for in the last "
            "this many seconds (the HPA's scale-down stabilization window, 300 s there); 0 "
            f"(default): none. At most {MAX_DURATION_S} (7 days)."
        ),
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

    def effective_rules(self) -> list[ScalingRuleSpec]:
        """The rules: ``rules``, or the one rule of the single-rule form."""
        if self.rules:
            return list(self.rules)
        assert self.threshold is not None  # the validator requires one form
        return [
            ScalingRuleSpec(
                metric=self.metric,
                threshold=self.threshold,
                polling_interval_s=self.polling_interval_s,
                cooldown_s=self.cooldown_s,
                tolerance=self.tolerance,
            )
        ]

    @model_validator(mode="after")
    def _one_form(self) -> AutoscalerSpec:
        single = {"metric", "threshold", "polling_interval_s", "cooldown_s", "tolerance"}
        if self.rules:
            both = sorted(single & self.model_fields_set)
            if both:
                raise ValueError(
                    f"give either 'rules' or the single-rule fields, not both ({', '.join(both)})"
                )
        elif self.threshold is None:
            raise ValueError("threshold: required (or give 'rules', a list of rules)")
        return self

    @model_validator(mode="after")
    def _bounds(self) -> AutoscalerSpec:
        if self.min_replicas > self.max_replicas:
            raise ValueError(
                f"min_replicas ({self.min_replicas}) exceeds max_replicas ({self.max_replicas})"
            )
        return self
