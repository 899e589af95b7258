"""The ``stop_conditions`` block: abort guards watched while the experiment runs.

:mod:`harness.chaos.guards` checks them every second; one that trips stops the method.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from harness.config.base import StrictModel


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
    above: float | None = Field(default=None, description="Trips when the metric is above this.")
    below: float | None = Field(default=None, description="Trips when the metric is below this.")
    for_s: float = Field(
        default=20.0, ge=0, description="Seconds the bound must be crossed without a break."
    )
    window_s: float = Field(
        default=5.0, gt=0, description="Request metrics: seconds of requests each check covers."
    )
    min_requests: int = Field(
        default=5, ge=1, description="Request metrics: fewer requests in the window: no check."
    )

    @model_validator(mode="after")
    def _one_bound(self) -> StopCondition:
        if (self.above is None) == (self.below is None):
            raise ValueError("set exactly one of above and below")
        return self

    def describe(self) -> str:
        bound = f"> {self.above:g}" if self.above is not None else f"< {self.below:g}"
        return f"{self.metric} {bound} for {self.for_s:g} s"
