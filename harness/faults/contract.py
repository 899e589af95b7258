"""The fault contract: what every fault is, whatever it breaks and wherever it runs.

A fault is a subclass of :class:`Fault` registered by name (:mod:`harness.faults.registry`)
with typed arguments (a strict pydantic model). It does three things of its own:

- :meth:`Fault.inject`: cause the effect. Anything that must be undone is registered as an
  :class:`~harness.faults.active.ActiveFault` *before* the effect, with a state file and a
  detached reverter where the effect could outlive the harness, so it is reverted at the
  latest after its time-to-live even when the harness is SIGKILLed.
- :meth:`Fault.prove`: show that the effect took hold (None: not yet). The shared code asks
  again until the platform's proof time-out (:data:`~harness.faults.policy.PROOF_TIMEOUT_S`)
  and then fails the run with "fault had no effect", naming what was checked.
- its revert: the undo steps of its ActiveFault, run once, whoever asks first.

Everything else is shared (:mod:`harness.faults.lifecycle`) and so the same for every
fault: the arguments checked, the target picked when the fault may pick one, the
``fault_effect`` event with the injection latency, the hold for ``duration_s`` (or left in
place until its revert action with ``duration_s: 0`` where :attr:`Fault.hold` is
``"open"``), the revert, the dry-run plan. The Chaos Toolkit functions experiments name are
generated from this (:mod:`harness.chaos.adapter`); the timeline control writes
``fault_start`` / ``fault_end`` around them for every registered fault.

Faults never import a platform: they act through the platform object they are handed, and
what they need of it is written down as a protocol in :mod:`harness.faults.hosts`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Generic, Literal, Protocol, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from harness.config.base import MAX_DURATION_S, refuse_bool_for_number
from harness.errors import ChaosError
from harness.faults.active import ActiveFault
from harness.faults.policy import PlatformKind
from harness.timeline import Timeline

#: How a fault lasts. none: it is instant (a crash: nothing to undo); timed: held
#: ``duration_s`` then reverted (0: reverted at once); open: like timed, but ``duration_s: 0``
#: leaves it in place until its revert action, the end of the run, or its time-to-live.
Hold = Literal["none", "timed", "open"]


class FaultArgs(BaseModel):
    """Base of every fault's arguments: strict, as experiments write them, and finite (no
    ``.inf`` or NaN float: an infinite hold would outlive the run and its time-to-live; no
    ``true`` or ``false`` for a number).
    Every number of a fault's arguments has an upper bound too (the shared limits of
    :mod:`harness.config.base`), stated in its description."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    @field_validator("*", mode="before")
    @classmethod
    def _no_bool_for_number(cls, value: Any, info: ValidationInfo) -> Any:
        field = cls.model_fields.get(str(info.field_name))
        return value if field is None else refuse_bool_for_number(field.annotation, value)


class FaultContext(Protocol):
    """What a fault is handed: the run's platform, timeline and folder."""

    @property
    def platform(self) -> Any: ...

    @property
    def timeline(self) -> Timeline: ...

    @property
    def run_dir(self) -> Path: ...


@dataclass
class Injection:
    """One injected fault, from :meth:`Fault.inject` to its revert."""

    target: str  # the node or replica (pod) acted on
    active: ActiveFault | None = None  # its revert handle; None for an instant fault
    facts: dict[str, Any] = field(default_factory=dict)  # what inject saw: proof and output
    scratch: dict[str, Any] = field(default_factory=dict)  # the fault's own state, not output
    #: seconds from the call until the effect was in place, when inject knows it (a limit
    #: set, the hog answered); else the time until :meth:`Fault.prove` first saw it
    latency_s: float | None = None


A = TypeVar("A", bound=FaultArgs)


class Fault(Generic[A]):
    """One fault on one platform kind; subclasses set the class attributes and implement
    :meth:`inject` and :meth:`prove`."""

    #: what experiments call it, e.g. "lose_node"
    name: ClassVar[str]
    #: the platform kind it needs
    platform: ClassVar[PlatformKind]
    #: its arguments; the target argument first
    args: ClassVar[type[FaultArgs]]
    #: the argument that names what it acts on
    target_arg: ClassVar[str] = "node"
    #: the action (function) that ends it early, e.g. "restore_node"; None: none
    revert_action: ClassVar[str | None] = None
    hold: ClassVar[Hold] = "none"
    #: one line each, for `gpuchaos list`, the docs and the dry run
    summary: ClassVar[str] = ""
    proves: ClassVar[str] = ""
    #: old argument names still accepted -> the argument they mean
    aliases: ClassVar[dict[str, str]] = {}

    def held_open(self, args: A) -> bool:
        """Whether this injection is left in place until its revert action: by default an
        ``open`` fault with ``duration_s: 0``."""
        return self.hold == "open" and float(getattr(args, "duration_s", 1.0)) <= 0

    def pick_target(self, ctx: FaultContext, args: A) -> str:
        """The target when the experiment names none (cluster faults pick the busiest GPU
        node or the first Ready pod); by default the argument is required."""
        raise ChaosError(f"{self.name} needs its {self.target_arg} argument")

    def inject(self, ctx: FaultContext, args: A, target: str) -> Injection:
        raise NotImplementedError

    def prove(self, ctx: FaultContext, args: A, injection: Injection) -> dict[str, Any] | None:
        """What shows the effect took hold (written to ``fault_effect``), None while it does
        not show yet; raise FaultNoEffect when it never will."""
        raise NotImplementedError

    def no_effect(self, ctx: FaultContext, args: A, injection: Injection) -> str:
        """What was checked and never seen, when the proof time-out ran out."""
        return f"not seen: {self.proves}"

    def finish(self, ctx: FaultContext, args: A, injection: Injection) -> dict[str, Any]:
        """Extra output once the fault ended or was left in place (e.g. "restarted")."""
        return {}

    def plan(self, ctx: FaultContext, args: A, target: str) -> dict[str, Any]:
        """What a dry run would do, reading only: ``would`` is the line for the plan (a
        fault that calls the platform's own dry-run methods leaves it out: they add theirs)."""
        return {"would": f"would inject {self.name} on {self.target_arg} {target}"}

    def on_revert_action(self, ctx: FaultContext, target: str | None) -> dict[str, Any] | None:
        """The revert action's own work, instead of ending the held faults of this fault on
        ``target`` (every target when None) with :func:`~harness.faults.lifecycle.release`;
        None: that default."""
        return None


def duration_field(default: float, zero: str | None = None) -> Any:
    """The ``duration_s`` argument every held fault takes. ``zero``: what 0 means, for an
    ``open`` fault (held until its revert action); a ``timed`` fault gives none, and then 0
    is refused: "reverted at once" is no fault at all, and a negative hold once slipped
    through as 0 and scored a 46 ms node loss as PASS."""
    if zero is None:
        return Field(
            default,
            gt=0,
            le=MAX_DURATION_S,
            allow_inf_nan=False,
            description=(
                f"Seconds the fault lasts from its injection, more than 0 and at most "
                f"{MAX_DURATION_S} (7 days)."
            ),
        )
    return Field(
        default,
        ge=0,
        le=MAX_DURATION_S,
        allow_inf_nan=False,
        description=(
            f"Seconds the fault lasts from its injection, at most {MAX_DURATION_S} (7 days); "
            f"{zero}."
        ),
    )


def ttl_field() -> Any:
    """The ``ttl_s`` argument: the reverter's deadline."""
    return Field(
        None,
        gt=0,
        le=MAX_DURATION_S,
        allow_inf_nan=False,
        description=(
            "Seconds after which the fault is reverted even if the harness died or hangs "
            "(default: duration_s + 60, or 600 when held until reverted); at most "
            f"{MAX_DURATION_S} (7 days)."
        ),
    )
