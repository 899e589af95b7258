"""Chaos Toolkit as a thin adapter over the fault registry.

Experiments name Python functions (``module: harness.chaos.actions, func: lose_node``), and
chaoslib checks their arguments against the function's signature (``chaos validate``) and
calls them. Those functions are generated here from the registry
(:mod:`harness.faults.registry`), one per fault and one per revert action, with a real
signature built from the fault's typed arguments; the call goes to the shared lifecycle
(:mod:`harness.faults.lifecycle`) with the active run. So a new fault needs no line here,
and no other module keeps a table of function names: the catalog, ``validate``, the dry-run
planner and the timeline control ask :func:`lookup`.

The modules experiments name, and the platform kind whose faults each one carries, are the
one table of module names (:data:`MODULES`); a platform added later brings a module of its
own that calls :func:`export` with its kind, and joins the table then. A fault registered
after its module was imported (a plugin, a test's toy fault) is added to it at once.
"""

from __future__ import annotations

import importlib
import inspect
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from harness.chaos.context import current
from harness.faults import lifecycle, registry
from harness.faults.contract import Fault
from harness.faults.policy import PlatformKind

#: The Chaos Toolkit modules of the harness's faults, and the platform kind of each.
MODULES: dict[str, PlatformKind] = {
    "harness.chaos.actions": "local",
    "harness.chaos.k8s": "kubernetes",
}
_namespaces: dict[str, dict[str, Any]] = {}  # module -> its globals(), once exported


@dataclass(frozen=True)
class FaultActivity:
    """An activity that injects a registered fault, or runs its revert action."""

    fault: Fault[Any]
    reverts: bool  # the revert action, not the fault

    @property
    def target_arg(self) -> str:
        return self.fault.target_arg


def module_of(platform: PlatformKind) -> str:
    """The Chaos Toolkit module that carries ``platform``'s faults."""
    return next(m for m, kind in MODULES.items() if kind == platform)


def lookup(activity: dict[str, Any]) -> FaultActivity | None:
    """The registered fault an experiment activity injects or reverts; None for anything
    else (a probe, a preparation such as ``warm_fault_workers``, another extension)."""
    provider = activity.get("provider") if isinstance(activity, dict) else None
    if not isinstance(provider, dict) or provider.get("type") != "python":
        return None
    module = str(provider.get("module"))
    if module not in MODULES and module not in sys.modules:
        try:  # a platform's own fault module joins MODULES when it is imported
            importlib.import_module(module)
        except Exception:
            return None
    platform = MODULES.get(module)
    if platform is None:
        return None
    func = str(provider.get("func", ""))
    fault = registry.get(platform, func)
    if fault is not None:
        return FaultActivity(fault, reverts=False)
    fault = registry.reverted_by(platform, func)
    return FaultActivity(fault, reverts=True) if fault is not None else None


def _parameters(fault: Fault[Any]) -> list[inspect.Parameter]:
    fields = fault.args.model_fields
    names = [fault.target_arg] + [n for n in fields if n != fault.target_arg]
    params = []
    for name in names:
        info = fields[name]
        default = inspect.Parameter.empty if info.is_required() else info.default
        kind = inspect.Parameter.POSITIONAL_OR_KEYWORD
        params.append(inspect.Parameter(name, kind, default=default, annotation=info.annotation))
    for old in fault.aliases:
        params.append(inspect.Parameter(old, inspect.Parameter.KEYWORD_ONLY, default=None))
    return params


def _doc(fault: Fault[Any], revert: bool) -> str:
    if revert:
        return (
            f"Revert {fault.name}: end it on ``{fault.target_arg}`` (every target it holds "
            f"when none is given and the fault may pick one) before its time is up."
        )
    lines = [f"{fault.summary}.", "", f"Proof: {fault.proves}.", "", "Arguments:"]
    for name, info in fault.args.model_fields.items():
        lines.append(f"- ``{name}``: {info.description}")
    for old, new in fault.aliases.items():
        lines.append(f"- ``{old}``: the old name of ``{new}``, still accepted")
    return "\n".join(lines)


def fault_function(fault: Fault[Any], module: str) -> Callable[..., dict[str, Any]]:
    """The Chaos Toolkit action that injects ``fault`` in the active run."""
    signature = inspect.Signature(_parameters(fault))

    def action(*args: Any, **kwargs: Any) -> dict[str, Any]:
        given = signature.bind(*args, **kwargs).arguments
        return lifecycle.run(fault, current(), dict(given))

    return _named(action, fault.name, module, signature, _doc(fault, revert=False))


def revert_function(fault: Fault[Any], module: str) -> Callable[..., dict[str, Any]]:
    """The Chaos Toolkit action that ends ``fault`` (its ``revert_action``)."""
    required = fault.args.model_fields[fault.target_arg].is_required()
    default = inspect.Parameter.empty if required else None
    param = inspect.Parameter(
        fault.target_arg, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=default,
        annotation=str if required else str | None,
    )  # fmt: skip
    signature = inspect.Signature([param])

    def revert(*args: Any, **kwargs: Any) -> dict[str, Any]:
        given = signature.bind(*args, **kwargs)
        given.apply_defaults()
        target = given.arguments[fault.target_arg]
        return lifecycle.revert_action(fault, current(), target)

    assert fault.revert_action is not None
    return _named(revert, fault.revert_action, module, signature, _doc(fault, revert=True))


def _named(
    func: Callable[..., dict[str, Any]], name: str, module: str, sig: inspect.Signature, doc: str
) -> Callable[..., dict[str, Any]]:
    func.__name__ = func.__qualname__ = name
    func.__module__ = module
    func.__doc__ = doc
    func.__signature__ = sig  # type: ignore[attr-defined]
    return func


def _add(namespace: dict[str, Any], fault: Fault[Any], module: str) -> list[str]:
    namespace[fault.name] = fault_function(fault, module)
    if fault.revert_action is None:
        return [fault.name]
    namespace[fault.revert_action] = revert_function(fault, module)
    return [fault.name, fault.revert_action]


def export(
    namespace: dict[str, Any], module: str, platform: PlatformKind | None = None
) -> list[str]:
    """Put the actions of ``platform``'s faults (default: ``module``'s kind in
    :data:`MODULES`) into ``namespace`` (a module's ``globals()``), now and whenever another
    fault of that kind is registered; returns their names."""
    kind = platform or MODULES[module]
    MODULES[module] = kind
    _namespaces[module] = namespace
    return [name for fault in registry.faults(kind) for name in _add(namespace, fault, module)]


def _registered(fault: Fault[Any]) -> None:
    for module, namespace in list(_namespaces.items()):
        if MODULES.get(module) == fault.platform:
            _add(namespace, fault, module)


registry.subscribe(_registered)


#: Probes of the harness that need a deployed workload (every action of :data:`MODULES` does).
PLATFORM_PROBES = frozenset({("harness.chaos.probes", "ready_replicas")})


def needs_platform(activity: dict[str, Any]) -> bool:
    """Whether ``activity`` needs a deployed workload (nodes, replicas, pods): every
    activity of a fault module, and the platform probes. An external endpoint has none."""
    provider = activity.get("provider") if isinstance(activity, dict) else None
    if not isinstance(provider, dict):
        return False
    module, func = str(provider.get("module")), str(provider.get("func"))
    return module in MODULES or (module, func) in PLATFORM_PROBES


def check_arguments(found: FaultActivity, arguments: dict[str, Any]) -> None:
    """Check a fault activity's arguments (``${...}`` resolved) against the fault's typed
    arguments; raises ChaosError naming the argument."""
    if found.reverts:
        return
    lifecycle.parse_args(found.fault, arguments)
