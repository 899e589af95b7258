"""The Chaos Toolkit side of an experiment as strict models: title, tags, controls, the
steady-state hypothesis, method and rollbacks, their activities and providers.

Why our own models: chaoslib's ``ensure_experiment_is_valid`` checks only some of this and
assumes the rest (a ``method`` that is a mapping, ``pauses`` that are a list or a provider
that is a string end in a Python traceback), and it accepts values the harness would then
run (a pause of ``-5`` or ``.inf`` seconds, ``title: 5``, an activity key misspelt and so
ignored). The models are checked against the document with the configuration substituted,
as chaoslib will run it, so ``pauses: {after: ${fault_delay_s}}`` is checked as the number
it becomes. They mirror the Chaos Toolkit experiment format
(https://chaostoolkit.org/reference/api/experiment/) and reject keys it does not define.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, model_validator

#: The longest pause or activity time-out a run may hold: a week.
MAX_SECONDS = 7 * 24 * 3600


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


Seconds = Annotated[float, Field(ge=0, le=MAX_SECONDS, allow_inf_nan=False)]
Name = Annotated[str, Field(min_length=1, max_length=200)]


class PythonProvider(_Model):
    """Calls ``func`` of Python module ``module``."""

    type: Literal["python"] = Field(description="Provider kind.")
    module: Name = Field(description="Dotted module path, e.g. harness.chaos.actions.")
    func: Name = Field(description="Function of the module to call.")
    arguments: dict[str, Any] = Field(
        default_factory=dict, description="Keyword arguments of the call."
    )
    secrets: list[Name] | Name | None = Field(
        default=None, description="Secret scopes the call is given."
    )


class ProcessProvider(_Model):
    """Runs a program (refused unless allowed: see :mod:`harness.experiment.modules`)."""

    type: Literal["process"] = Field(description="Provider kind.")
    path: Name = Field(description="The program to run.")
    arguments: str | list[Any] | dict[str, Any] | None = Field(
        default=None, description="Its command-line arguments."
    )
    timeout: Seconds | None = Field(default=None, description="Seconds before it is killed.")
    secrets: list[Name] | Name | None = Field(
        default=None, description="Secret scopes the program is given."
    )


class HttpProvider(_Model):
    """Sends an HTTP request."""

    type: Literal["http"] = Field(description="Provider kind.")
    url: Name = Field(description="The URL to call.")
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"] = Field(
        default="GET", description="HTTP method."
    )
    headers: dict[str, str] = Field(default_factory=dict, description="Request headers.")
    arguments: dict[str, Any] | str | None = Field(default=None, description="Request body.")
    timeout: Seconds | list[Seconds] | None = Field(
        default=None, description="Seconds to wait (or [connect, read])."
    )
    expected_status: int = Field(default=200, ge=100, le=599, description="Status expected.")
    verify_tls: bool = Field(default=True, description="Check the server's certificate.")
    secrets: list[Name] | Name | None = Field(
        default=None, description="Secret scopes the call is given."
    )


def _kind(value: Any) -> str:
    return str(value.get("type", "")) if isinstance(value, dict) else ""


Provider = Annotated[
    Annotated[PythonProvider, Tag("python")]
    | Annotated[ProcessProvider, Tag("process")]
    | Annotated[HttpProvider, Tag("http")],
    Discriminator(_kind),
]


class ControlProvider(_Model):
    """A control is a Python module with the Chaos Toolkit's control hooks."""

    type: Literal["python"] = Field(description="Provider kind (controls are Python).")
    module: Name = Field(description="Dotted module path, e.g. harness.chaos.controls.")
    arguments: dict[str, Any] = Field(
        default_factory=dict, description="Keyword arguments of the hooks."
    )
    secrets: list[Name] | Name | None = Field(
        default=None, description="Secret scopes the hooks are given."
    )


class Control(_Model):
    """A control declared on the experiment or on one activity."""

    name: Name = Field(description="Control name.")
    provider: ControlProvider = Field(description="The module that implements it.")
    scope: Literal["before", "after"] | None = Field(
        default=None, description="Only before or only after what it controls."
    )
    automatic: bool = Field(default=True, description="Also applied to every activity.")


class ControlRef(_Model):
    """A control that reuses one declared on the experiment."""

    ref: Name = Field(description="Name of the experiment's control.")


def _ref_or(value: Any) -> str:
    return "ref" if isinstance(value, dict) and "ref" in value else "inline"


AnyControl = Annotated[
    Annotated[ControlRef, Tag("ref")] | Annotated[Control, Tag("inline")],
    Discriminator(_ref_or),
]


class Pauses(_Model):
    """Seconds to wait around an activity."""

    before: Seconds | None = Field(default=None, description="Seconds before it starts.")
    after: Seconds | None = Field(default=None, description="Seconds after it ends.")


class Activity(_Model):
    """A probe (reads) or an action (changes something)."""

    type: Literal["probe", "action"] = Field(description="probe or action.")
    name: Name = Field(description="Activity name, shown in the journal.")
    provider: Provider = Field(description="What it calls.")
    pauses: Pauses | None = Field(default=None, description="Waits around it.")
    background: bool = Field(default=False, description="Run it without waiting for it.")
    timeout: Seconds | None = Field(default=None, description="Seconds it may take.")
    tolerance: Any = Field(
        default=None, description="What a probe must return (steady-state probes only)."
    )
    controls: list[AnyControl] | None = Field(default=None, description="Its own controls.")
    configuration: dict[str, Any] | None = Field(default=None, description="Configuration it adds.")
    secrets: dict[str, Any] | None = Field(default=None, description="Secrets it adds.")


class ActivityRef(_Model):
    """An activity declared elsewhere in the experiment, run again here."""

    ref: Name = Field(description="Name of the activity.")


AnyActivity = Annotated[
    Annotated[ActivityRef, Tag("ref")] | Annotated[Activity, Tag("inline")],
    Discriminator(_ref_or),
]


class Hypothesis(_Model):
    """The steady state: probes and what each must return."""

    title: Name = Field(description="What the steady state is.")
    probes: list[AnyActivity] = Field(default_factory=list, description="Its probes.")
    controls: list[AnyControl] | None = Field(default=None, description="Its own controls.")

    @model_validator(mode="after")
    def _probes_with_tolerance(self) -> Hypothesis:
        for probe in self.probes:
            if isinstance(probe, Activity) and probe.type != "probe":
                raise ValueError(f"{probe.name}: the steady state holds probes, not actions")
            if isinstance(probe, Activity) and "tolerance" not in probe.model_fields_set:
                raise ValueError(f"{probe.name}: a steady-state probe needs a tolerance")
        return self


Contribution = Literal["high", "medium", "low", "none"]


class ChaosDocument(_Model):
    """A Chaos Toolkit experiment, as far as the harness reads or runs it."""

    model_config = ConfigDict(populate_by_name=True)

    version: str | None = Field(default=None, description="Format version, e.g. 1.0.0.")
    title: Name = Field(description="What the experiment shows.")
    description: Annotated[str, Field(min_length=1)] = Field(description="What it teaches.")
    tags: list[Name] = Field(default_factory=list, description="Tags for the catalog.")
    contributions: dict[Name, Contribution] = Field(
        default_factory=dict, description="What it tells about (availability, ...)."
    )
    configuration: dict[Name, Any] = Field(
        default_factory=dict, description="Values ${name} stands for."
    )
    secrets: dict[Name, dict[Name, Any]] = Field(
        default_factory=dict, description="Secrets by scope."
    )
    extensions: list[dict[str, Any]] = Field(description="Extension blocks (gpuchaos's).")
    controls: list[AnyControl] = Field(default_factory=list, description="Controls.")
    hypothesis: Hypothesis | None = Field(
        default=None, alias="steady-state-hypothesis", description="The steady state."
    )
    method: list[AnyActivity] = Field(description="The activities, in order.")
    rollbacks: list[AnyActivity] = Field(
        default_factory=list, description="Actions run at the end, whatever happened."
    )
    runtime: dict[str, Any] | None = Field(
        default=None, description="Chaos Toolkit runtime settings (rollbacks strategy, ...)."
    )

    @model_validator(mode="after")
    def _refs_exist(self) -> ChaosDocument:
        names = {a.name for a in self._activities() if isinstance(a, Activity)}
        for activity in self._activities():
            if isinstance(activity, ActivityRef) and activity.ref not in names:
                raise ValueError(f"ref {activity.ref!r} names no activity of this experiment")
        declared = {c.name for c in self.controls if isinstance(c, Control)}
        for control in self._controls():
            if isinstance(control, ControlRef) and control.ref not in declared:
                raise ValueError(f"control ref {control.ref!r} names no experiment control")
        return self

    def _activities(self) -> list[Activity | ActivityRef]:
        probes = self.hypothesis.probes if self.hypothesis else []
        return [*probes, *self.method, *self.rollbacks]

    def _controls(self) -> list[Control | ControlRef]:
        found: list[Control | ControlRef] = list(self.controls)
        if self.hypothesis and self.hypothesis.controls:
            found += self.hypothesis.controls
        for a in self._activities():
            if isinstance(a, Activity) and a.controls:
                found += a.controls
        return found
