"""The experiment's activities against its harness spec: faults that suit the platform, with
arguments their fault takes, aimed at nodes and replicas the spec declares, and the timeline
control that records them.

Why each check: a fault module of the other platform kind fails only when it is called; a
target the spec lacks failed 50-75 s into a run, after deploy and warm-up; and without the
timeline control a fault runs but the scorecard says "no fault". All of it is known from the
file, so it is refused before anything is deployed.
"""

from __future__ import annotations

import importlib
import inspect
import re
import typing
from pathlib import Path
from typing import Any

from pydantic import ConfigDict, ValidationError, create_model

from harness.chaos.adapter import MODULES, check_arguments, lookup, needs_platform
from harness.config import HarnessSpec, KubernetesPlatformSpec
from harness.errors import ChaosError, ConfigError
from harness.experiment.fields import choices, format_validation_error
from harness.platforms.registry import checks

#: The harness's control: it writes fault_start / fault_end to the timeline.
TIMELINE_CONTROL = "harness.chaos.controls"
_LEFTOVER = re.compile(r"\$\{([^}]*)\}")


def sections(doc: dict[str, Any]) -> list[tuple[str, list[Any]]]:
    """The activity lists of an experiment with their paths as the file writes them."""
    found = [
        (
            "steady-state-hypothesis.probes",
            (doc.get("steady-state-hypothesis") or {}).get("probes"),
        ),
        ("method", doc.get("method")),
        ("rollbacks", doc.get("rollbacks")),
    ]
    return [(where, acts) for where, acts in found if isinstance(acts, list)]


def check_leftovers(path: Path, where: str, value: Any, known: set[str]) -> None:
    """A ``${name}`` still in ``value`` after substitution names nothing it could stand for."""
    if isinstance(value, dict):
        for k, v in value.items():
            check_leftovers(path, f"{where}.{k}", v, known)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            check_leftovers(path, f"{where}[{i}]", v, known)
    elif isinstance(value, str):
        for m in _LEFTOVER.finditer(value):
            if m.group(1) not in known:
                raise ConfigError(
                    str(path),
                    where,
                    f"${{{m.group(1)}}} names no configuration key ({choices(m.group(1), known)})",
                )


def check_external_endpoint(path: Path, doc: dict[str, Any]) -> None:
    """With an external endpoint nothing is deployed: node and replica faults cannot run."""
    for where, activities in sections(doc):
        for i, activity in enumerate(activities):
            if needs_platform(activity):
                func = (activity.get("provider") or {}).get("func")
                raise ConfigError(
                    str(path),
                    f"{where}[{i}]",
                    f"{func} needs a deployed workload (nodes, replicas); it is not available "
                    "with an external endpoint",
                )


def check_load_placement(path: Path, prefix: str, spec: HarnessSpec) -> None:
    """Locust as Kubernetes Jobs runs in the platform's cluster: only with that platform."""
    if spec.load.workers_on != "kubernetes" or isinstance(spec.platform, KubernetesPlatformSpec):
        return
    got = "an external endpoint" if spec.platform is None else f"{spec.platform.kind} platform"
    raise ConfigError(
        str(path),
        f"{prefix}.load.workers_on",
        f"'kubernetes' needs platform.kind: kubernetes (got {got}); use 'local'",
    )


def check_faults(path: Path, resolved: dict[str, Any], spec: HarnessSpec) -> None:
    """Every activity of a fault module suits the platform kind; every fault's arguments
    are ones it takes; every target is declared; faults come with the timeline control.
    ``resolved``: the document with the configuration substituted, as it will run."""
    kind = spec.platform.kind if spec.platform is not None else None
    platform_checks = checks(str(kind)) if kind is not None else None
    faults: list[str] = []
    for where, activities in sections(resolved):
        for i, activity in enumerate(activities):
            provider = activity.get("provider") or {}
            module = provider.get("module")
            at = f"{where}[{i}].provider"
            if kind is not None and module in MODULES and MODULES[module] != kind:
                raise ConfigError(
                    str(path),
                    f"{at}.module",
                    f"{provider.get('func')} is a {MODULES[module]} activity ({module}); "
                    f"this experiment runs on platform.kind: {kind}",
                )
            found = lookup(activity)
            if found is None and isinstance(module, str) and module.startswith("harness.chaos"):
                _check_call(path, at, spec, platform_checks, module, provider)
            if found is None or kind is None:
                continue
            faults.append(f"{at}.func")
            arguments = dict(provider.get("arguments") or {})
            try:
                if found.reverts:
                    _check_revert_arguments(found.target_arg, arguments)
                else:
                    check_arguments(found, arguments)
            except ChaosError as exc:
                raise ConfigError(str(path), f"{at}.arguments", str(exc)) from None
            target = arguments.get(found.target_arg)
            if isinstance(target, str) and platform_checks is not None:
                problem = platform_checks.target(spec, found.target_arg, target)
                if problem:
                    raise ConfigError(str(path), f"{at}.arguments.{found.target_arg}", problem)
    if faults and not _has_timeline_control(resolved):
        raise ConfigError(
            str(path),
            "controls",
            f"faults need the timeline control ({{name: gpuchaos-timeline, provider: "
            f"{{type: python, module: {TIMELINE_CONTROL}}}}}): without it the scorecard "
            "sees no fault",
        )


#: Activity arguments are native YAML values: no "5" for 5, no true for 1.
_CALL_CONFIG = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)


def _check_call(
    path: Path,
    at: str,
    spec: HarnessSpec,
    platform_checks: Any,
    module: str,
    provider: dict[str, Any],
) -> None:
    """A harness function that is not a fault (a probe, a preparation): its arguments
    against its signature's types and bounds (``Annotated[float, Field(gt=0)]``), and a
    ``node`` or ``replica`` argument against the spec."""
    func = getattr(importlib.import_module(module), str(provider.get("func")), None)
    if not inspect.isfunction(func):
        return
    hints = typing.get_type_hints(func, include_extras=True)
    fields: dict[str, Any] = {}
    for name, param in inspect.signature(func).parameters.items():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            return  # takes anything: chaoslib's own check is all there is
        default = ... if param.default is param.empty else param.default
        fields[name] = (hints.get(name, Any), default)
    model = create_model(f"{func.__name__}_arguments", __config__=_CALL_CONFIG, **fields)
    arguments = dict(provider.get("arguments") or {})
    try:
        model.model_validate(arguments)
    except ValidationError as exc:
        raise format_validation_error(path, f"{at}.arguments", exc, arguments) from None
    for arg in ("node", "replica"):
        value = arguments.get(arg)
        if isinstance(value, str) and platform_checks is not None and spec.platform is not None:
            problem = platform_checks.target(spec, arg, value)
            if problem:
                raise ConfigError(str(path), f"{at}.arguments.{arg}", problem)


def _check_revert_arguments(target_arg: str, arguments: dict[str, Any]) -> None:
    unknown = sorted(set(arguments) - {target_arg})
    if unknown:
        raise ChaosError(f"{unknown[0]}: unknown argument (a revert action takes {target_arg})")
    value = arguments.get(target_arg)
    if value is not None and (not isinstance(value, str) or not value):
        raise ChaosError(f"{target_arg}: expected a name (got {value!r})")


def _has_timeline_control(doc: dict[str, Any]) -> bool:
    return any(
        isinstance(c, dict) and (c.get("provider") or {}).get("module") == TIMELINE_CONTROL
        for c in doc.get("controls") or []
    )


def check_machine(path: Path, prefix: str, spec: HarnessSpec) -> None:
    """The platform's own checks of this machine (cores, GPUs) before anything is deployed."""
    if spec.platform is None:
        return
    platform_checks = checks(str(spec.platform.kind))
    if platform_checks is None:
        return
    for field, problem in platform_checks.machine(spec):
        raise ConfigError(str(path), f"{prefix}.platform.{field}", problem)
