"""Which code an experiment may run: its activities and controls come only from the
harness's own extension (``harness.chaos``) and chaostoolkit-kubernetes (``chaosk8s``),
unless the user names another module (``--allow-module NAME``, or a game-day plan's
``allow_modules``).

Why: an experiment is a file people share, and Chaos Toolkit imports and calls whatever
module and function it names. ``module: os, func: system`` in a shared experiment would run
a shell command on the machine that validates or runs it; even importing a module runs its
code. So the allowlist is checked before any module is imported, a process provider (a
command) is refused outright, and every allowed module must import and have the function
(or, for a control, the hooks) the experiment names, so a misspelt control can no longer
drop the timeline silently.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Iterator
from pathlib import Path

from harness.errors import ConfigError
from harness.experiment.chaos_model import (
    Activity,
    ChaosDocument,
    Control,
    ControlProvider,
    HttpProvider,
    ProcessProvider,
    PythonProvider,
)
from harness.experiment.fields import choices

Provider = PythonProvider | ProcessProvider | HttpProvider | ControlProvider

#: Packages whose modules every experiment may name.
ALLOWED: tuple[str, ...] = ("harness.chaos", "chaosk8s")


def _allowed(module: str, extra: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in (*ALLOWED, *extra))


def _providers(doc: ChaosDocument) -> Iterator[tuple[str, Provider, bool]]:
    """(field path, provider, is a control) of every activity and control, in file order."""
    for i, control in enumerate(doc.controls):
        if isinstance(control, Control):
            yield f"controls[{i}].provider", control.provider, True
    sections: list[tuple[str, list[object]]] = [
        ("steady-state-hypothesis.probes", list(doc.hypothesis.probes if doc.hypothesis else [])),
        ("method", list(doc.method)),
        ("rollbacks", list(doc.rollbacks)),
    ]
    if doc.hypothesis and doc.hypothesis.controls:
        for i, control in enumerate(doc.hypothesis.controls):
            if isinstance(control, Control):
                where = f"steady-state-hypothesis.controls[{i}].provider"
                yield where, control.provider, True
    for section, activities in sections:
        for i, activity in enumerate(activities):
            if not isinstance(activity, Activity):
                continue
            yield f"{section}[{i}].provider", activity.provider, False
            for j, control in enumerate(activity.controls or []):
                if isinstance(control, Control):
                    where = f"{section}[{i}].controls[{j}].provider"
                    yield where, control.provider, True


def _functions(module: object) -> list[str]:
    return sorted(
        name
        for name, obj in vars(module).items()
        if not name.startswith("_") and inspect.isfunction(obj)
    )


def check_modules(path: Path, doc: ChaosDocument, allow: tuple[str, ...] = ()) -> list[str]:
    """Refuse modules outside the allowlist and process providers, then import each allowed
    module and check the function or control hooks it must have; returns the modules the
    run will import."""
    used: list[str] = []
    for where, provider, is_control in _providers(doc):
        if isinstance(provider, ProcessProvider):
            raise ConfigError(
                str(path),
                f"{where}.path",
                f"a process provider runs a command ({provider.path}); experiments run only "
                "Python activities of allowed modules",
            )
        if isinstance(provider, HttpProvider):
            continue  # an HTTP call: no code of ours or theirs is imported
        module_name = provider.module
        if not _allowed(module_name, allow):
            raise ConfigError(
                str(path),
                f"{where}.module",
                f"{module_name} is not an allowed module (allowed: {', '.join(ALLOWED)}.*); "
                f"pass --allow-module {module_name.split('.')[0]} to run it",
            )
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError:
            raise ConfigError(str(path), f"{where}.module", f"no module {module_name}") from None
        except Exception as exc:
            problem = f"{module_name} failed to import: {type(exc).__name__}: {exc}"
            raise ConfigError(str(path), f"{where}.module", problem[:150]) from None
        if is_control:
            if not any(n.endswith("_control") for n in _functions(module)):
                raise ConfigError(
                    str(path),
                    f"{where}.module",
                    f"{module_name} is not a Chaos Toolkit control (no *_control hooks)",
                )
        elif isinstance(provider, PythonProvider):
            func = provider.func
            if not callable(getattr(module, func, None)) or func.startswith("_"):
                names = list(getattr(module, "__all__", None) or _functions(module))
                problem = f"{module_name} has no function {func} ({choices(func, names)})"
                raise ConfigError(str(path), f"{where}.func", problem)
        if module_name not in used:
            used.append(module_name)
    return used
