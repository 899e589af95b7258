"""The fault registry: every fault, keyed by name and platform kind.

Why a registry: the catalog, ``gpuchaos validate``, the dry-run planner, the timeline
control and the Chaos Toolkit adapter all need to know which functions are faults, which
argument names their target and which action reverts them. They used to keep their own
tables of module and function names, and the tables drifted. Now a fault says it once, with
:func:`register`, and every one of them asks here.

Adding a fault is one module in :mod:`harness.faults.builtin` (found by :func:`faults`, no
list to edit) and an experiment that calls it; a package of your own can register faults
through the ``gpuchaos.faults`` entry-point group instead. The same name may be registered once per
platform kind (``exhaust_gpu_memory`` exists on both, with the same argument names); a
second registration of a name on one kind is an error.
"""

from __future__ import annotations

import importlib
import pkgutil
import threading
from collections.abc import Callable
from importlib.metadata import entry_points
from typing import Any, TypeVar

from harness.faults.contract import Fault
from harness.faults.policy import PlatformKind

_lock = threading.Lock()
_faults: dict[tuple[PlatformKind, str], Fault[Any]] = {}
_loaded = False
_listeners: list[Callable[[Fault[Any]], None]] = []

F = TypeVar("F", bound=type[Fault[Any]])


class DuplicateFault(ValueError):
    """A fault name registered twice on one platform kind (a programming error)."""


def register(cls: F) -> F:
    """Class decorator: register one instance of the fault ``cls``."""
    key = (cls.platform, cls.name)
    with _lock:
        if key in _faults and type(_faults[key]) is not cls:
            raise DuplicateFault(
                f"fault {cls.name!r} on {cls.platform} is registered twice: "
                f"{type(_faults[key]).__module__} and {cls.__module__}"
            )
        fault = _faults[key] = cls()
        listeners = list(_listeners)
    for listener in listeners:
        listener(fault)
    return cls


def subscribe(listener: Callable[[Fault[Any]], None]) -> None:
    """Call ``listener`` with every fault registered from now on (the Chaos Toolkit
    adapter adds its function to the module of the fault's platform)."""
    with _lock:
        _listeners.append(listener)


def unregister(platform: PlatformKind, name: str) -> None:
    """Forget a fault (tests that register a toy fault clean up with this)."""
    with _lock:
        _faults.pop((platform, name), None)


#: Packages outside the harness register faults through this entry-point group: each
#: entry point names a module that registers its faults when imported.
ENTRY_POINT_GROUP = "gpuchaos.faults"


def _load_builtin() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    import harness.faults.builtin as package

    for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda m: m.name):
        importlib.import_module(f"{package.__name__}.{info.name}")
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        importlib.import_module(entry.value)


def faults(platform: PlatformKind | None = None) -> list[Fault[Any]]:
    """Every registered fault (of ``platform``), by platform then name."""
    _load_builtin()
    with _lock:
        found = [f for (kind, _), f in _faults.items() if platform in (None, kind)]
    return sorted(found, key=lambda f: (f.platform, f.name))


def get(platform: PlatformKind, name: str) -> Fault[Any] | None:
    """The fault ``name`` on ``platform``, or None."""
    _load_builtin()
    with _lock:
        return _faults.get((platform, name))


def reverted_by(platform: PlatformKind, action: str) -> Fault[Any] | None:
    """The fault whose revert action is ``action`` on ``platform``, or None."""
    for fault in faults(platform):
        if fault.revert_action == action:
            return fault
    return None
