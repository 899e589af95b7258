"""The ``load.shape`` block: how the load level moves over time.

A shape is one of spike, step, ramp, diurnal or a recorded trace, told apart by ``kind``
(``spike`` when unset). The level is concurrent users in closed-loop mode and requests/s in
open-loop mode; :mod:`harness.load.shapes` turns a shape into Locust's ``LoadTestShape``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Discriminator, Field, PrivateAttr, Tag, field_validator, model_validator

from harness.config.base import StrictModel


class SpikeShape(StrictModel):
    """Baseline users, then a spike of users for a while, then baseline again."""

    kind: Literal["spike"] = Field(default="spike", description="Shape kind.")
    duration_s: float = Field(gt=0, description="Total length of the load, seconds.")
    baseline_users: int = Field(ge=1, description="Concurrent users outside the spike.")
    spike_multiplier: float = Field(
        default=3.0, ge=1, description="Users during the spike = baseline_users x this."
    )
    spike_start_s: float = Field(ge=0, description="Seconds after load start the spike begins.")
    spike_duration_s: float = Field(ge=0, description="Length of the spike, seconds.")
    spawn_rate: float = Field(default=100.0, gt=0, description="Users started per second.")

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
    duration_s: float = Field(gt=0, description="Total length of the load, seconds.")
    start: float = Field(ge=0, description=f"Level of the first step ({LEVEL_DOC}).")
    increment: float = Field(description="Added to the level at every step (may be negative).")
    step_s: float = Field(gt=0, description="Length of each step, seconds.")
    max_level: float | None = Field(
        default=None, ge=0, description="The level never goes above this (unset: no cap)."
    )
    spawn_rate: float = Field(default=100.0, gt=0, description="Users started per second.")


class RampShape(StrictModel):
    """A linear ramp from ``start`` to ``end`` over ``ramp_s`` seconds, then held at ``end``."""

    kind: Literal["ramp"] = Field(description="Shape kind.")
    duration_s: float = Field(gt=0, description="Total length of the load, seconds.")
    start: float = Field(ge=0, description=f"Level at load start ({LEVEL_DOC}).")
    end: float = Field(ge=0, description="Level at the end of the ramp.")
    ramp_s: float = Field(gt=0, description="Length of the ramp, seconds.")
    spawn_rate: float = Field(default=100.0, gt=0, description="Users started per second.")

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
    duration_s: float = Field(gt=0, description="Total length of the load, seconds.")
    mean: float = Field(ge=0, description=f"Average level ({LEVEL_DOC}).")
    amplitude: float = Field(ge=0, description="Swing of the level above and below the mean.")
    period_s: float = Field(gt=0, description="Length of one day, seconds.")
    spawn_rate: float = Field(default=100.0, gt=0, description="Users started per second.")


class TraceShape(StrictModel):
    """Replays a CSV of ``time_s,level`` rows (a recorded rate over time), held between rows."""

    kind: Literal["trace"] = Field(description="Shape kind.")
    path: str = Field(
        description=(
            "CSV file with a header 'time_s,level' (or 'time_s,rate' / 'time_s,users') and rows "
            "of seconds since start and level; relative paths are from the working directory."
        )
    )
    scale: float = Field(default=1.0, gt=0, description="Every level is multiplied by this.")
    duration_s: float | None = Field(
        default=None, gt=0, description="Length of the load; unset: the last row's time."
    )
    spawn_rate: float = Field(default=100.0, gt=0, description="Users started per second.")
    _points: tuple[tuple[float, float], ...] = PrivateAttr(default=())

    @field_validator("path")
    @classmethod
    def _absolute(cls, value: str) -> str:
        return str(Path(value).expanduser().resolve())

    def model_post_init(self, _context: object) -> None:
        self._points = read_trace(Path(self.path))

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
        if t < 0 or level < 0 or (points and t <= points[-1][0]):
            raise ValueError(f"{path}:{number}: times must rise from 0, levels be >= 0")
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
