"""What happens to every fault, the same way on every platform: check the arguments, pick
the target, inject, prove within the policy's time-out, write ``fault_effect``, hold, revert.

Why shared: each fault used to do these steps itself, and the copies drifted (cluster
faults wrote no ``fault_effect`` and could not be left in place). A fault now only says how
to inject and how to see the effect (:mod:`harness.faults.contract`); this module is the one
place that decides how long to wait for the proof, how a hold ends early, and which held
faults a revert action ends.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from pydantic import ValidationError

from harness.errors import ChaosError, FaultNoEffect
from harness.faults.active import ActiveFault, active_faults
from harness.faults.contract import Fault, FaultArgs, FaultContext, Injection
from harness.faults.injectors import shutdown
from harness.faults.policy import hold, poll, proof_timeout_s

log = logging.getLogger(__name__)

_held_lock = threading.Lock()
_held: dict[tuple[str, str], list[ActiveFault]] = {}  # (fault, target) -> active faults


def parse_args(fault: Fault[Any], raw: dict[str, Any]) -> FaultArgs:
    """The fault's typed arguments from what an experiment (or a caller) passed; old names
    in :attr:`Fault.aliases` are accepted. Raises ChaosError naming the argument."""
    given = {k: v for k, v in raw.items() if v is not None or k not in fault.aliases}
    for old, new in fault.aliases.items():
        if old in given:
            value = given.pop(old)
            if value is not None and given.get(new) is None:
                given[new] = value
    try:
        return fault.args.model_validate(given)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or "arguments"
        msg = "unknown argument" if err["type"] == "extra_forbidden" else err["msg"]
        got = f" (got {err['input']!r})" if "input" in err and err["type"] != "missing" else ""
        raise ChaosError(f"{fault.name}: {where}: {msg}{got}") from None


def _check_platform(fault: Fault[Any], ctx: FaultContext) -> None:
    kind = getattr(ctx.platform, "kind", None)
    if kind != fault.platform:
        raise ChaosError(
            f"{fault.name} needs the {fault.platform} platform (platform.kind: "
            f"{fault.platform}); this run is on {kind or 'no platform'}"
        )


def target_of(fault: Fault[Any], ctx: FaultContext, args: FaultArgs) -> str:
    """The target the arguments name, else the one the fault picks now."""
    named = getattr(args, fault.target_arg, None)
    return str(named) if named else fault.pick_target(ctx, args)


def run(fault: Fault[Any], ctx: FaultContext, raw: dict[str, Any]) -> dict[str, Any]:
    """Inject ``fault``, prove it, record its effect, hold and revert it; returns the
    activity's output (``held: true`` when it was left in place)."""
    args = parse_args(fault, raw)
    _check_platform(fault, ctx)
    target = target_of(fault, ctx, args)
    if getattr(ctx.platform, "dry_run", False):
        plan = dict(fault.plan(ctx, args, target))
        would = plan.pop("would", None)
        lines = getattr(ctx.platform, "plan", None)
        if would and isinstance(lines, list):
            lines.append(would)
        return {fault.target_arg: target, "dry_run": True, **plan}
    started = time.monotonic()
    t0 = time.perf_counter()
    injection = fault.inject(ctx, args, target)
    try:
        timeout = proof_timeout_s(fault.platform)
        proof = poll(lambda: fault.prove(ctx, args, injection), timeout)
        if proof is None:
            why = fault.no_effect(ctx, args, injection)
            raise FaultNoEffect(f"{fault.name} {target}", f"{why} (within {timeout:g} s)")
    except BaseException:
        if injection.active is not None:
            injection.active.revert()
        raise
    latency = injection.latency_s
    if latency is None:
        latency = time.perf_counter() - t0
    details = {"fault": fault.name, "injection_latency_s": round(latency, 6), **proof}
    ctx.timeline.emit("fault_effect", target, details)
    log.info("%s %s took effect in %.1f ms: %s", fault.name, target, latency * 1000, proof)
    out = {fault.target_arg: target, **injection.facts, **proof, "injection_latency_s": latency}
    out.update(_hold(fault, args, injection, started))
    out.update(fault.finish(ctx, args, injection))
    return out


def _hold(
    fault: Fault[Any], args: FaultArgs, injection: Injection, started: float
) -> dict[str, Any]:
    """Hold a fault for ``duration_s`` from its injection and revert it (also when
    interrupted); with 0 leave an ``open`` fault in place for its revert action."""
    active = injection.active
    if fault.hold == "none" or active is None:
        return {}
    duration = float(getattr(args, "duration_s", 0.0))
    key = (fault.name, injection.target)
    with _held_lock:
        _held.setdefault(key, []).append(active)
    if fault.held_open(args):
        return {"held": True}
    try:
        hold(max(0.0, started + duration - time.monotonic()), lambda: active.reverted)
    finally:
        with _held_lock:
            if active in _held.get(key, []):
                _held[key].remove(active)
        active.revert()
    return {"held": False}


def release(fault: str, target: str | None) -> int:
    """Revert the held faults ``fault`` on ``target`` (every target when None); returns
    how many were still held."""
    with _held_lock:
        keys = [k for k in _held if k[0] == fault and target in (None, k[1])]
        active = [a for k in keys for a in _held.pop(k)]
    for one in active:
        one.revert()
    return len(active)


def revert_action(fault: Fault[Any], ctx: FaultContext, target: str | None) -> dict[str, Any]:
    """Run ``fault``'s revert action: the fault's own (:meth:`Fault.on_revert_action`), else
    end its held faults on ``target`` (every target when None)."""
    _check_platform(fault, ctx)
    own = fault.on_revert_action(ctx, target)
    if own is not None:
        return own
    return {fault.target_arg: target, "reverted": release(fault.name, target)}


def revert_everything() -> int:
    """Revert every fault still held or active and end the warm fault workers (the
    runner's last word); returns how many faults were still in place."""
    with _held_lock:
        _held.clear()
    left = len(active_faults())
    shutdown()
    return left
