"""The ``stop_conditions`` block: abort guards watched while the experiment runs.

:mod:`harness.chaos.guards` checks them every second; one that trips stops the method.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from harness.config.base import (
    MAX_COUNT,
    MAX_DURATION_S,
    MAX_INTERVAL_S,
    MAX_LATENCY_MS,
    MAX_REPLICAS,
    StrictModel,
)

#: The range of each metric's values: shares 0-1, milliseconds, replicas.
METRIC_RANGES: dict[str, tuple[float, float]] = {
    "error_rate": (0.0, 1.0),
    "availability": (0.0, 1.0),
    "p99_latency_ms": (0.0, float(MAX_LATENCY_MS)),
    "ready_replicas": (0.0, float(MAX_REPLICAS)),
}
#: The largest bound of any metric.
_MAX_BOUND = max(high for _, high in METRIC_RANGES.values())


_RANGES_DOC = (
    "error_rate and availability 0 to 1, p99_latency_ms 0 to "
    f"{MAX_LATENCY_MS:,}, ready_replicas 0 to {MAX_REPLICAS}"
)


class StopCondition(StrictModel):
    """An abort guard (like an AWS FIS stop condition): when ``metric`` stays beyond its
    bound for ``for_s`` seconds, the method is stopped, rollbacks run and the run is
    marked aborted."""

    metric: Literal["error_rate", "availability", "p99_latency_ms", "ready_replicas"] = Field(
        description=(
            "What is watched: error_rate or availability (0-1) and p99_latency_ms over the "
            "last window_s seconds of requests, or the number of Ready replicas."
        )
    )
    above: float | None = Field(
        default=None,
        ge=0,
        le=_MAX_BOUND,
        description=f"Trips when the metric is above this; {_RANGES_DOC}.",
    )
    below: float | None = Field(
        default=None,
        ge=0,
        le=_MAX_BOUND,
        description=f"Trips when the metric is below this; {_RANGES_DOC}.",
    )
    for_s: float = Field(
        default=20.0,
        ge=0,
        le=MAX_DURATION_S,
        description=(
            "Seconds the bound must be crossed without a break (0: trips at the first check "
            f"that sees it); at most {MAX_DURATION_S} (7 days)."
        ),
    )
    window_s: float = Field(
        default=5.0,
        gt=0,
        le=MAX_INTERVAL_S,
        description=(
            "Request metrics: seconds of requests each check covers; at most "
            f"{MAX_INTERVAL_S} (1 hour)."
        ),
    )
    min_requests: int = Field(
        default=5,
        ge=1,
        le=MAX_COUNT,
        description=(
            f"Request metrics: fewer requests in the window: no check. 1 to {MAX_COUNT:,}."
        ),
    )

    @model_validator(mode="after")
    def _one_bound(self) -> StopCondition:
        if (self.above is None) == (self.below is None):
            raise ValueError("set exactly one of above and below")
        name, bound = ("above", self.above) if self.above is not None else ("below", self.below)
        low, high = METRIC_RANGES[self.metric]
        if bound is not None and not low <= bound <= high:
            raise ValueError(
                f"{name}: {self.metric} lies within {low:g} to {high:g}, got {bound:g}"
            )
        return self

    def describe(self) -> str:
        bound = f"> {self.above:g}" if self.above is not None else f"< {self.below:g}"
        return f"{self.metric} {bound} for {self.for_s:g} s"
