"""The ``slos`` block: the objectives a run is scored against, their evaluation windows and
weights, and the price of a GPU-hour.
"""

from __future__ import annotations

from pydantic import Field, model_validator

from harness.config.base import StrictModel

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

#: Named evaluation windows (see the README's Scoring section); ``load:NAME`` and a number of
#: seconds (rolling window) are accepted too.
WINDOW_NAMES: tuple[str, ...] = ("run", "baseline", "fault", "recovery", "steady")


class SLOSpec(StrictModel):
    """Service level objectives and scoring knobs. Unset objectives are not scored.

    Every objective is evaluated over the whole load unless ``windows`` names another window
    for it: ``baseline``, ``fault``, ``recovery``, ``steady`` (phases from the timeline),
    ``load:NAME`` (a load-shape phase, e.g. ``load:spike``), or a number of seconds (a rolling
    window: the worst such window must meet the objective).
    """

    p50_latency_ms: float | None = Field(default=None, gt=0, description="Max p50 latency.")
    p95_latency_ms: float | None = Field(default=None, gt=0, description="Max p95 latency.")
    p99_latency_ms: float | None = Field(default=None, gt=0, description="Max p99 latency.")
    ttft_p95_ms: float | None = Field(default=None, gt=0, description="Max p95 TTFT.")
    ttft_p99_ms: float | None = Field(default=None, gt=0, description="Max p99 TTFT.")
    tpot_p95_ms: float | None = Field(
        default=None,
        gt=0,
        description="Max p95 time per output token: (latency - TTFT) / (output tokens - 1).",
    )
    tpot_p99_ms: float | None = Field(
        default=None, gt=0, description="Max p99 time per output token (see tpot_p95_ms)."
    )
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
        default=None, ge=0, description="Min successful requests per second."
    )
    goodput_rps: float | None = Field(
        default=None,
        ge=0,
        description="Min requests per second that succeeded and met every latency objective.",
    )
    recovery_s: float | None = Field(
        default=None, gt=0, description="Max seconds from fault start until SLIs hold again."
    )
    hold_s: int = Field(
        default=3, ge=1, description="Seconds in a row the SLIs must hold to count as recovered."
    )
    windows: dict[str, str | float] = Field(
        default_factory=dict,
        description=(
            "Evaluation window per objective: run (default), baseline, fault, recovery, "
            "steady, load:NAME, or seconds of a rolling window."
        ),
    )
    weights: dict[str, float] = Field(
        default_factory=dict,
        description="Weight of each objective in the score (default 1 each).",
    )
    price_per_gpu_hour: float | None = Field(
        default=None, ge=0, description="Price of one GPU-hour, for the cost of the run."
    )

    @model_validator(mode="after")
    def _known_names(self) -> SLOSpec:
        for field in ("windows", "weights"):
            unknown = sorted(set(getattr(self, field)) - set(SLO_NAMES))
            if unknown:
                raise ValueError(
                    f"{field}: unknown objective(s) {', '.join(unknown)}; "
                    f"expected one of {', '.join(SLO_NAMES)}"
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
            if not window >= 1:
                raise ValueError(f"windows.{name}: a rolling window must be >= 1 s, got {window}")
        for name, weight in self.weights.items():
            if not weight >= 0:
                raise ValueError(f"weights.{name}: expected a weight >= 0, got {weight}")
        return self

    def window(self, name: str) -> str | float:
        """The evaluation window of objective ``name`` (``"run"`` unless set)."""
        return self.windows.get(name, "run")
