"""The game-day plan file: what runs, on which deployment, in which order, and how the
platform is judged healthy between experiments.

Why a model of its own and not a list of ``gpuchaos run`` lines: the plan names the
workload and the platform once (every experiment runs on that deployment), and everything
in it is checked before anything is deployed, like an experiment's ``gpuchaos`` block:
unknown keys are errors, every number is finite and bounded (:mod:`harness.config.base`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, model_validator

from harness.config import EndpointSpec, PlatformSpec, StrictModel, WorkloadSpec
from harness.config.base import MAX_DURATION_S, MAX_INTERVAL_S, MAX_SEED
from harness.experiment.document import read_document
from harness.experiment.fields import format_validation_error

#: Experiments in one plan: a day of short experiments, far beyond a real game day.
MAX_EXPERIMENTS = 100
#: Highest rate of the health gate's trickle: a few requests per second is the point.
MAX_TRICKLE_RPS = 100


class ShuffleSpec(StrictModel):
    """Run the experiments in an order drawn from a seed (``--seed`` overrides it)."""

    seed: int = Field(
        ge=0, le=MAX_SEED, description=f"Seed of the order, 0 to {MAX_SEED} (32 bits)."
    )


class HealthGateSpec(StrictModel):
    """When the platform counts as healthy again between two experiments."""

    trickle_rps: float = Field(
        default=2.0,
        gt=0,
        le=MAX_TRICKLE_RPS,
        description=(
            "Requests per second of the trickle of load sent while the gate waits (one at a "
            f"time); at most {MAX_TRICKLE_RPS}."
        ),
    )
    hold_s: float = Field(
        default=3.0,
        gt=0,
        le=MAX_INTERVAL_S,
        description=(
            "The next experiment's latency and error SLOs must hold over the trickle's last "
            f"hold_s seconds; at most {MAX_INTERVAL_S}."
        ),
    )
    timeout_s: float = Field(
        default=180.0,
        gt=0,
        le=MAX_DURATION_S,
        description=(
            "Longest the reset and the gate may take together; past it the remaining "
            f"experiments are not run; at most {MAX_DURATION_S}."
        ),
    )
    restart_after_s: float = Field(
        default=15.0,
        gt=0,
        le=MAX_INTERVAL_S,
        description=(
            "A replica still Unready this long into the reset is restarted (its process "
            "killed; the supervisor starts it again; one still starting is restarted after "
            f"the workload's ready_timeout_s); at most {MAX_INTERVAL_S}."
        ),
    )


class PlanEntry(StrictModel):
    """One experiment of the plan."""

    experiment: str = Field(
        min_length=1,
        max_length=500,
        description=(
            "A catalog name (gpu-node-loss: experiments/gpu-node-loss.yaml) or a path "
            "relative to the plan file (anything with a '/' or a .yaml, .yml or .json end)."
        ),
    )
    vars: dict[str, Any] = Field(
        default_factory=dict,
        description="Overrides of the experiment's configuration, as --var NAME=VALUE.",
    )
    own_platform: bool = Field(
        default=False,
        description=(
            "Run on the experiment's own workload and platform (deployed and torn down for "
            "it, as gpuchaos run does) instead of the plan's shared deployment."
        ),
    )

    @model_validator(mode="before")
    @classmethod
    def _name_alone(cls, data: Any) -> Any:
        """``- gpu-node-loss`` is short for ``- experiment: gpu-node-loss``."""
        return {"experiment": data} if isinstance(data, str) else data


class GamedayPlan(StrictModel):
    """A game day: experiments run one after another against one deployment."""

    title: str = Field(min_length=1, max_length=200, description="What the game day is.")
    workload: WorkloadSpec = Field(
        default_factory=WorkloadSpec,
        description="What to deploy, once, for every experiment (as an experiment's).",
    )
    platform: PlatformSpec | None = Field(
        default=None,
        description="Where to deploy it (as an experiment's platform); unset with endpoint.",
    )
    endpoint: EndpointSpec | None = Field(
        default=None,
        description=(
            "An external server every experiment loads instead of a deployment; node and "
            "replica faults are refused then."
        ),
    )
    experiments: list[PlanEntry] = Field(
        min_length=1,
        max_length=MAX_EXPERIMENTS,
        description=f"The experiments, in order; 1 to {MAX_EXPERIMENTS}.",
    )
    pause_s: float = Field(
        default=0.0,
        ge=0,
        le=MAX_INTERVAL_S,
        description=(
            f"Seconds to wait after an experiment, before the reset; at most {MAX_INTERVAL_S}."
        ),
    )
    on_failure: Literal["continue", "stop"] = Field(
        default="continue",
        description=(
            "After an experiment that did not pass: go on with the next (continue), or mark "
            "the rest not run (stop)."
        ),
    )
    shuffle: ShuffleSpec | None = Field(
        default=None, description="Run the experiments in a seeded random order."
    )
    allow_modules: list[str] = Field(
        default_factory=list,
        max_length=100,
        description="Python modules the experiments' activities may come from (--allow-module).",
    )
    health_gate: HealthGateSpec = Field(
        default_factory=HealthGateSpec,
        description="When the platform is healthy again between experiments.",
    )

    @model_validator(mode="after")
    def _platform_or_endpoint(self) -> GamedayPlan:
        if self.platform is None and self.endpoint is None:
            raise ValueError("set platform (deploy the workload once) or endpoint")
        if self.platform is not None and self.endpoint is not None:
            raise ValueError("set one of platform and endpoint, not both")
        return self


def read_plan(path: Path) -> tuple[GamedayPlan, dict[str, Any]]:
    """The plan file as a model, and the document it came from (its raw ``workload`` and
    ``platform`` blocks replace each experiment's); every problem is one ConfigError."""
    doc = read_document(path, "a game-day plan")
    try:
        return GamedayPlan.model_validate(doc), doc
    except ValidationError as exc:
        raise format_validation_error(path, "", exc, doc) from None
