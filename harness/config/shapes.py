"""The ``load.shape`` block: how the load level moves over time.

A shape is one of spike, step, ramp, diurnal or a recorded trace, told apart by ``kind``
(``spike`` when unset). The level is concurrent users in closed-loop mode and requests/s in
open-loop mode; :mod:`harness.load.shapes` turns a shape into Locust's ``LoadTestShape``.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Discriminator, Field, PrivateAttr, Tag, field_validator, model_validator

from harness.config.base import (
    MAX_COUNT,
    MAX_DURATION_S,
    MAX_LEVEL,
    MAX_MULTIPLIER,
    MAX_RATE,
    MAX_USERS,
    StrictModel,
)

#: How the limit of a length of time reads in descriptions.
_DAYS = f"at most {MAX_DURATION_S} (7 days)"
#: How the limit of a level reads in descriptions.
_LEVELS = f"at most {MAX_LEVEL:,}"


def _duration(description: str, gt: float | None = 0, ge: float | None = None) -> Any:
    """A length of time in seconds, finite and at most :data:`MAX_DURATION_S`."""
    return Field(gt=gt, ge=ge, le=MAX_DURATION_S, description=f"{description}; {_DAYS}.")


def _spawn_rate() -> Any:
    return Field(
        default=100.0,
        gt=0,
        le=MAX_RATE,
        description=f"Users started per second, at most {MAX_RATE:,}.",
    )


class SpikeShape(StrictModel):
    """Baseline users, then a spike of users for a while, then baseline again."""

    kind: Literal["spike"] = Field(default="spike", description="Shape kind.")
    duration_s: float = _duration("Total length of the load, seconds")
    baseline_users: int = Field(
        ge=1,
        le=MAX_USERS,
        description=(
            f"Concurrent users outside the spike (open loop: requests/s), 1 to {MAX_USERS:,}."
        ),
    )
    spike_multiplier: float = Field(
        default=3.0,
        ge=1,
        le=MAX_MULTIPLIER,
        description=(
            f"Users during the spike = baseline_users x this, 1 to {MAX_MULTIPLIER}; the "
            f"product at most {MAX_LEVEL:,}."
        ),
    )
    spike_start_s: float = _duration("Seconds after load start the spike begins", None, 0)
    spike_duration_s: float = _duration("Length of the spike, seconds (0: no spike)", None, 0)
    spawn_rate: float = _spawn_rate()

    @model_validator(mode="after")
    def _peak(self) -> SpikeShape:
        if self.baseline_users * self.spike_multiplier > MAX_LEVEL:
            raise ValueError(
                f"baseline_users x spike_multiplier ({self.baseline_users} x "
                f"{self.spike_multiplier:g}) must not exceed {MAX_LEVEL:,}"
            )
        return self

    @model_validator(mode="after")
    def _inside(self) -> SpikeShape:
        if self.spike_start_s + self.spike_duration_s > self.duration_s:
            raise ValueError(
                "spike_start_s + spike_duration_s must not exceed duration_s "
                f"({self.spike_start_s} + {self.spike_duration_s} > {self.duration_s})"
            )
        return self


#: What a shape's level means: concurrent users (closed loop) or requests/s (open loop).
LEVEL_DOC = "users in closed-loop mode, requests/s in open-loop mode"


class StepShape(StrictModel):
    """The level starts at ``start`` and rises by ``increment`` every ``step_s`` seconds."""

    kind: Literal["step"] = Field(description="Shape kind.")
    duration_s: float = _duration("Total length of the load, seconds")
    start: float = Field(
        ge=0, le=MAX_LEVEL, description=f"Level of the first step ({LEVEL_DOC}); {_LEVELS}."
    )
    increment: float = Field(
        ge=-MAX_LEVEL,
        le=MAX_LEVEL,
        description=(
            f"Added to the level at every step (may be negative), -{MAX_LEVEL:,} to "
            f"{MAX_LEVEL:,}; the highest level reached is {_LEVELS}."
        ),
    )
    step_s: float = _duration(f"Length of each step, seconds (at most {MAX_COUNT:,} steps)")
    max_level: float | None = Field(
        default=None,
        ge=0,
        le=MAX_LEVEL,
        description=f"The level never goes above this (unset: no cap); {_LEVELS}.",
    )
    spawn_rate: float = _spawn_rate()

    @model_validator(mode="after")
    def _reachable(self) -> StepShape:
        steps = math.ceil(self.duration_s / self.step_s)
        if steps > MAX_COUNT:
            raise ValueError(
                f"step_s: {steps:,} steps of {self.step_s:g} s in {self.duration_s:g} s; at "
                f"most {MAX_COUNT:,}"
            )
        top = max(self.start, self.start + self.increment * (steps - 1))
        if self.max_level is not None:
            top = min(top, self.max_level)
        if top > MAX_LEVEL:
            raise ValueError(
                f"the level reaches {top:,.0f} by the last step, above {MAX_LEVEL:,}: set "
                "max_level or a smaller increment"
            )
        return self


class RampShape(StrictModel):
    """A linear ramp from ``start`` to ``end`` over ``ramp_s`` seconds, then held at ``end``."""

    kind: Literal["ramp"] = Field(description="Shape kind.")
    duration_s: float = _duration("Total length of the load, seconds")
    start: float = Field(
        ge=0, le=MAX_LEVEL, description=f"Level at load start ({LEVEL_DOC}); {_LEVELS}."
    )
    end: float = Field(ge=0, le=MAX_LEVEL, description=f"Level at the end of the ramp; {_LEVELS}.")
    ramp_s: float = _duration("Length of the ramp, seconds")
    spawn_rate: float = _spawn_rate()

    @model_validator(mode="after")
    def _inside(self) -> RampShape:
        if self.ramp_s > self.duration_s:
            raise ValueError(
                f"ramp_s must not exceed duration_s ({self.ramp_s} > {self.duration_s})"
            )
        return self


class DiurnalShape(StrictModel):
    """A day compressed: ``mean + amplitude * sin(2 pi t / period_s)``, never below 0."""

    kind: Literal["diurnal"] = Field(description="Shape kind.")
    duration_s: float = _duration("Total length of the load, seconds")
    mean: float = Field(ge=0, le=MAX_LEVEL, description=f"Average level ({LEVEL_DOC}); {_LEVELS}.")
    amplitude: float = Field(
        ge=0,
        le=MAX_LEVEL,
        description=(f"Swing of the level above and below the mean; mean + amplitude {_LEVELS}."),
    )
    period_s: float = _duration("Length of one day, seconds")
    spawn_rate: float = _spawn_rate()

    @model_validator(mode="after")
    def _peak(self) -> DiurnalShape:
        if self.mean + self.amplitude > MAX_LEVEL:
            raise ValueError(
                f"mean + amplitude ({self.mean:g} + {self.amplitude:g}) must not exceed "
                f"{MAX_LEVEL:,}"
            )
        return self


class TraceShape(StrictModel):
    """Replays a CSV of ``time_s,level`` rows (a recorded rate over time), held between rows."""

    kind: Literal["trace"] = Field(description="Shape kind.")
    path: str = Field(
        description=(
            "CSV file with a header 'time_s,level' (or 'time_s,rate' / 'time_s,users') and rows "
            "of seconds since start and level; relative paths are from the working directory. "
            f"Times rise from 0 to {MAX_DURATION_S} (7 days), levels 0 to {MAX_LEVEL:,}."
        )
    )
    scale: float = Field(
        default=1.0,
        gt=0,
        le=MAX_MULTIPLIER,
        description=(
            f"Every level is multiplied by this, at most {MAX_MULTIPLIER}; the scaled levels "
            f"{_LEVELS}."
        ),
    )
    duration_s: float | None = Field(
        default=None,
        gt=0,
        le=MAX_DURATION_S,
        description=f"Length of the load, seconds; unset: the last row's time; {_DAYS}.",
    )
    spawn_rate: float = _spawn_rate()
    _points: tuple[tuple[float, float], ...] = PrivateAttr(default=())

    @field_validator("path")
    @classmethod
    def _absolute(cls, value: str) -> str:
        return str(Path(value).expanduser().resolve())

    def model_post_init(self, _context: object) -> None:
        self._points = read_trace(Path(self.path))
        top = max(level for _, level in self._points) * self.scale
        if top > MAX_LEVEL:
            raise ValueError(
                f"the trace's highest level x scale is {top:,.0f}, above {MAX_LEVEL:,}"
            )

    @property
    def points(self) -> tuple[tuple[float, float], ...]:
        """The trace's (time_s, level) rows in time order, scale not applied."""
        return self._points

    @property
    def length_s(self) -> float:
        """The load's length: ``duration_s`` or the last row's time."""
        return self.duration_s if self.duration_s is not None else self._points[-1][0]


def read_trace(path: Path) -> tuple[tuple[float, float], ...]:
    """The rows of a trace CSV; ValueError naming the line when one is not two numbers."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise ValueError(f"cannot read trace {path}: {exc.strerror or exc}") from None
    points: list[tuple[float, float]] = []
    for number, line in enumerate(lines, start=1):
        cells = [c.strip() for c in line.split(",")]
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if number == 1 and cells[0] == "time_s":
            continue
        try:
            t, level = float(cells[0]), float(cells[1])
        except (ValueError, IndexError):
            raise ValueError(f"{path}:{number}: expected 'time_s,level' numbers") from None
        if not (math.isfinite(t) and math.isfinite(level)):
            raise ValueError(f"{path}:{number}: expected finite numbers (no inf, no nan)")
        if t < 0 or level < 0 or (points and t <= points[-1][0]):
            raise ValueError(f"{path}:{number}: times must rise from 0, levels be >= 0")
        if t > MAX_DURATION_S or level > MAX_LEVEL:
            raise ValueError(
                f"{path}:{number}: times must be at most {MAX_DURATION_S} s (7 days), levels "
                f"at most {MAX_LEVEL:,}"
            )
        points.append((t, level))
    if len(points) < 2:
        raise ValueError(f"{path}: a trace needs at least two rows")
    return tuple(points)


def _shape_kind(value: object) -> str:
    kind = value.get("kind", "spike") if isinstance(value, dict) else getattr(value, "kind", "")
    return str(kind)


Shape = Annotated[
    Annotated[SpikeShape, Tag("spike")]
    | Annotated[StepShape, Tag("step")]
    | Annotated[RampShape, Tag("ramp")]
    | Annotated[DiurnalShape, Tag("diurnal")]
    | Annotated[TraceShape, Tag("trace")],
    Discriminator(_shape_kind),
]
