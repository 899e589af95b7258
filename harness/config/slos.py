"""The ``slos`` block: the objectives a run is scored against, their evaluation windows and
weights, and the price of a GPU-hour.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field, model_validator

from harness.config.base import (
    MAX_COUNT,
    MAX_DURATION_S,
    MAX_INTERVAL_S,
    MAX_LATENCY_MS,
    MAX_MULTIPLIER,
    MAX_PRICE,
    MAX_RATE,
    StrictModel,
)

#: SLO names of :class:`SLOSpec`, in scorecard order (``recovery_s`` last).
SLO_NAMES: tuple[str, ...] = (
    "p50_latency_ms",
    "p95_latency_ms",
    "p99_latency_ms",
    "ttft_p95_ms",
    "ttft_p99_ms",
    "tpot_p95_ms",
    "tpot_p99_ms",
    "error_rate",
    "availability",
    "throughput_rps",
    "goodput_rps",
    "recovery_s",
)

#: GPU objectives (:mod:`harness.scoring.gpu_slos`), after the others in the scorecard: they
#: read ``telemetry.csv`` (NVML locally, DCGM through Prometheus on Kubernetes) and the
#: timeline's XID events, over the whole load (no window).
GPU_SLO_NAMES: tuple[str, ...] = (
    "gpu_min_utilization_pct",
    "gpu_max_xid_errors",
    "gpu_max_idle_gpu_s",
)

#: Named evaluation windows (see docs/scoring.md, "SLOs and their windows"); ``load:NAME``
#: and a number of seconds (rolling window) are accepted too.
WINDOW_NAMES: tuple[str, ...] = ("run", "baseline", "fault", "recovery", "steady")


#: A rolling window's seconds: infinite and NaN let through to the range check of
#: :meth:`SLOSpec._known_names`, which names the objective (a union's own error would name
#: its members instead).
_Seconds = Annotated[float, Field(allow_inf_nan=True)]


def _ms(description: str) -> Any:
    """An optional latency objective in milliseconds, at most :data:`MAX_LATENCY_MS`."""
    return Field(
        default=None,
        gt=0,
        le=MAX_LATENCY_MS,
        description=f"{description}, ms; at most {MAX_LATENCY_MS:,} (1 hour).",
    )


class SLOSpec(StrictModel):
    """Service level objectives and scoring knobs. Unset objectives are not scored.

    Every objective is evaluated over the whole load unless ``windows`` names another window
    for it: ``baseline``, ``fault``, ``recovery``, ``steady`` (phases from the timeline),
    ``load:NAME`` (a load-shape phase, e.g. ``load:spike``), or a number of seconds (a rolling
    window: the worst such window must meet the objective).
    """

    p50_latency_ms: float | None = _ms("Max p50 latency")
    p95_latency_ms: float | None = _ms("Max p95 latency")
    p99_latency_ms: float | None = _ms("Max p99 latency")
    ttft_p95_ms: float | None = _ms("Max p95 TTFT")
    ttft_p99_ms: float | None = _ms("Max p99 TTFT")
    tpot_p95_ms: float | None = _ms(
        "Max p95 time per output token: (latency - TTFT) / (output tokens - 1)"
    )
    tpot_p99_ms: float | None = _ms("Max p99 time per output token (see tpot_p95_ms)")
    error_rate: float | None = Field(
        default=None, ge=0, le=1, description="Max share of failed requests (0-1)."
    )
    availability: float | None = Field(
        default=None,
        ge=0,
        le=1,
        description="Min share of successful requests (0-1); sets the error budget.",
    )
    throughput_rps: float | None = Field(
        default=None,
        ge=0,
        le=MAX_RATE,
        description=f"Min successful requests per second, at most {MAX_RATE:,}.",
    )
    goodput_rps: float | None = Field(
        default=None,
        ge=0,
        le=MAX_RATE,
        description=(
            "Min requests per second that succeeded and met every latency objective, at "
            f"most {MAX_RATE:,}."
        ),
    )
    recovery_s: float | None = Field(
        default=None,
        gt=0,
        le=MAX_DURATION_S,
        description=(
            "Max seconds from fault start until SLIs hold again, at most "
            f"{MAX_DURATION_S} (7 days)."
        ),
    )
    gpu_min_utilization_pct: float | None = Field(
        default=None,
        ge=0,
        le=100,
        description=(
            "Min mean GPU utilization during the load, percent (0-100); without GPU "
            "telemetry it is not met ('n/a: no GPU telemetry')."
        ),
    )
    gpu_max_xid_errors: int | None = Field(
        default=None,
        ge=0,
        le=MAX_COUNT,
        description=(
            "Most XID errors during the run (NVML/DCGM xid samples plus XIDs the faults "
            f"injected); 0: none allowed; at most {MAX_COUNT:,}."
        ),
    )
    gpu_max_idle_gpu_s: float | None = Field(
        default=None,
        ge=0,
        le=MAX_DURATION_S,
        description=(
            "Most idle GPU-seconds during the load (GPUs x duration x (1 - utilization)); "
            f"without GPU telemetry it is not met; at most {MAX_DURATION_S}."
        ),
    )
    hold_s: int = Field(
        default=3,
        ge=1,
        le=MAX_INTERVAL_S,
        description=(
            "Seconds in a row the SLIs must hold to count as recovered, 1 to "
            f"{MAX_INTERVAL_S} (1 hour)."
        ),
    )
    windows: dict[str, str | _Seconds] = Field(
        default_factory=dict,
        description=(
            "Evaluation window per objective: run (default), baseline, fault, recovery, "
            f"steady, load:NAME, or seconds of a rolling window (1 to {MAX_DURATION_S}, "
            "7 days)."
        ),
    )
    weights: dict[str, float] = Field(
        default_factory=dict,
        description=(
            f"Weight of each objective in the score (default 1 each), 0 to {MAX_MULTIPLIER}."
        ),
    )
    price_per_gpu_hour: float | None = Field(
        default=None,
        ge=0,
        le=MAX_PRICE,
        description=(
            f"Price of one GPU-hour, for the cost of the run; at most {MAX_PRICE:,} (any currency)."
        ),
    )

    @model_validator(mode="after")
    def _known_names(self) -> SLOSpec:
        for field, names in (("windows", SLO_NAMES), ("weights", SLO_NAMES + GPU_SLO_NAMES)):
            unknown = sorted(set(getattr(self, field)) - set(names))
            if unknown:
                raise ValueError(
                    f"{field}: unknown objective(s) {', '.join(unknown)}; "
                    f"expected one of {', '.join(names)}"
                )
        for name, window in self.windows.items():
            if name == "recovery_s":
                raise ValueError("windows: recovery_s is measured from the fault, no window")
            if isinstance(window, str):
                if window in WINDOW_NAMES or (window.startswith("load:") and len(window) > 5):
                    continue
                raise ValueError(
                    f"windows.{name}: {window!r}: expected {', '.join(WINDOW_NAMES)}, "
                    "load:NAME or a number of seconds"
                )
            if not 1 <= window <= MAX_DURATION_S:
                raise ValueError(
                    f"windows.{name}: a rolling window must be >= 1 s and at most "
                    f"{MAX_DURATION_S} s (7 days), got {window:g}"
                )
        for name, weight in self.weights.items():
            if not 0 <= weight <= MAX_MULTIPLIER:
                raise ValueError(
                    f"weights.{name}: expected a weight from 0 to {MAX_MULTIPLIER}, got {weight:g}"
                )
        return self

    def window(self, name: str) -> str | float:
        """The evaluation window of objective ``name`` (``"run"`` unless set)."""
        return self.windows.get(name, "run")
