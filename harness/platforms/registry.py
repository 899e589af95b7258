"""The platform registry: which class brings up the workload for each ``platform.kind``.

Why a registry: the runner and the dry run must not know the list of platforms. A platform
registers a factory under its kind in its own package (``harness/platforms/<kind>``), and
:func:`make` imports that package only when an experiment names the kind, so a run on the
local platform never imports the Kubernetes client. Adding a platform is its config block
(a spec module in :mod:`harness.config` and its place in the ``platform`` union), its
package here, and a Chaos Toolkit module for its faults (see docs/extending.md).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from harness.config import HarnessSpec
from harness.errors import PlatformError
from harness.platforms.base import Platform
from harness.timeline import Timeline

#: (spec, timeline, run folder, kube context override) -> the platform, not started yet
Factory = Callable[[HarnessSpec, Timeline, Path, "str | None"], Platform]

_factories: dict[str, Factory] = {}


class PlatformChecks(Protocol):
    """What a platform kind checks before anything is deployed (``gpuchaos validate`` and
    the first step of a run): the spec against the machine or cluster it will run on, and
    the targets experiments name. Why here and not in the config models: the models say
    what a valid spec is anywhere; these say whether it can run here (cores, GPUs) and
    whether a fault's target is one the spec declares."""

    def machine(self, spec: HarnessSpec) -> list[tuple[str, str]]:
        """(field under ``platform``, problem) for each part this machine cannot give."""
        ...

    def target(self, spec: HarnessSpec, target_arg: str, name: str) -> str | None:
        """Why ``name`` is not a ``target_arg`` ("node", "replica") of the spec; None: it is
        (or cannot be known before the run, as pods of a cluster)."""
        ...


_checks: dict[str, PlatformChecks] = {}


def register_checks(kind: str, checks: PlatformChecks) -> None:
    """The checks of ``platform.kind: <kind>`` (optional: a kind without any is not checked
    beyond its config model)."""
    _checks[kind] = checks


def _import_kind(kind: str) -> None:
    if kind not in _factories:
        try:
            importlib.import_module(f"harness.platforms.{kind}")
        except ImportError as exc:
            raise PlatformError(f"no platform of kind {kind!r}: {exc}") from None


def checks(kind: str) -> PlatformChecks | None:
    """The checks a kind registered, importing its package on first use."""
    _import_kind(kind)
    return _checks.get(kind)


def register_platform(kind: str) -> Callable[[Factory], Factory]:
    """Decorator: ``factory`` makes the platform of ``platform.kind: <kind>``; a second
    factory for one kind is an error."""

    def add(factory: Factory) -> Factory:
        old = _factories.get(kind)
        if old is not None and old is not factory:
            raise ValueError(f"platform kind {kind!r} is registered twice")
        _factories[kind] = factory
        return factory

    return add


def unregister_platform(kind: str) -> None:
    """Forget a kind (tests that register a toy platform clean up with this)."""
    _factories.pop(kind, None)
    _checks.pop(kind, None)


def kinds() -> list[str]:
    """The kinds registered so far (a kind's package registers when it is imported)."""
    return sorted(_factories)


def make(spec: HarnessSpec, timeline: Timeline, run_dir: Path, kube_context: str | None) -> Any:
    """The platform ``spec.platform`` names; imports its package on first use."""
    assert spec.platform is not None  # HarnessSpec requires a platform or an endpoint
    kind = str(spec.platform.kind)
    _import_kind(kind)
    factory = _factories.get(kind)
    if factory is None:
        raise PlatformError(f"harness.platforms.{kind} registers no platform of kind {kind!r}")
    return factory(spec, timeline, run_dir, kube_context)
