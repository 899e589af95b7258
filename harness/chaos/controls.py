"""Chaos Toolkit control: writes each fault's start and end, and the experiment's, to the
run's timeline.

Declared in an experiment as::

    controls:
      - name: gpuchaos-timeline
        provider: {type: python, module: harness.chaos.controls}

A fault starts when a fault action begins and ends when it returns, or, when the method is
interrupted or the action left the fault in place (``duration_s: 0``), when its revert
action has run or the experiment ends. A cluster fault without its target argument (the
action would pick the busiest GPU node, or the first Ready pod) has its target picked here,
when the activity starts, and passed to the action as that argument: ``fault_start`` and
``fault_end`` name the node or pod acted on (``details.picked: true``), and the journal
shows it. A revert action without a target ends every open fault it reverts. Which
activities are faults, which argument names their target and which action reverts which
fault all come from the fault registry (:func:`harness.chaos.adapter.lookup`), for every
fault on every platform.
"""

from __future__ import annotations

import logging
import signal
import threading
from typing import Any

from harness.chaos.adapter import FaultActivity, lookup
from harness.chaos.context import current
from harness.errors import HarnessError
from harness.faults.lifecycle import parse_args
from harness.procs import interrupt_on_sigterm

log = logging.getLogger(__name__)

_open: dict[tuple[str, str], dict[str, Any]] = {}  # (fault, target) -> fault_start details
_lock = threading.Lock()
_chaoslib_sigterm: Any = None  # chaoslib's SIGTERM handler, given back at the end


def _arguments(activity: dict[str, Any], configuration: dict[str, Any] | None) -> dict[str, Any]:
    """The activity's arguments with ``${name}`` resolved, as chaoslib will pass them."""
    from chaoslib import substitute

    args = (activity.get("provider") or {}).get("arguments") or {}
    return dict(substitute(args, configuration or {}, {}) or {})


def _target(found: FaultActivity, activity: dict[str, Any], configuration: Any) -> str:
    """The target argument as the action will see it (an old alias included)."""
    args = _arguments(activity, configuration)
    target = args.get(found.target_arg)
    for old, new in found.fault.aliases.items():
        if new == found.target_arg and not target:
            target = args.get(old)
    return str(target or "")


def _close(fault: str, target: str, how: str, any_target: bool = False) -> None:
    """End the open fault ``(fault, target)``; ``any_target``: every open ``fault``."""
    with _lock:
        keys = [k for k in _open if k[0] == fault] if any_target else [(fault, target)]
        closing = [(k, _open.pop(k)) for k in keys if k in _open]
    for (_, name), started in closing:
        details: dict[str, Any] = {"fault": fault, "ended_by": how}
        if started.get("picked"):
            details["picked"] = True
        current().timeline.emit("fault_end", name, details)


def _pick(found: FaultActivity, activity: dict[str, Any], configuration: Any) -> str:
    """Pick the target of a fault given none, when the fault may pick one, and pass it as
    its argument (chaoslib calls the action with this activity's arguments); "" when none
    can be picked (the action then fails with its own reason)."""
    fault = found.fault
    if fault.args.model_fields[fault.target_arg].is_required():
        return ""
    try:
        ctx = current()
        if getattr(ctx.platform, "kind", None) != fault.platform:
            return ""
        target = fault.pick_target(ctx, parse_args(fault, _arguments(activity, configuration)))
    except HarnessError as exc:
        log.warning("%s: no target to pick: %s", activity.get("name"), exc)
        return ""
    provider = activity["provider"]
    arguments = provider.get("arguments")
    if not isinstance(arguments, dict):
        arguments = provider["arguments"] = {}
    arguments[fault.target_arg] = target
    log.info("%s: picked %s %s", activity.get("name"), fault.target_arg, target)
    return target


def _output(state: Any) -> Any:
    """The activity's output: chaoslib passes its run record (``output`` in it)."""
    if isinstance(state, dict) and "activity" in state and "output" in state:
        return state["output"]
    return state


def before_experiment_control(context: dict[str, Any], **kwargs: Any) -> None:
    # chaoslib's own SIGTERM handler does not stop an activity that is running; make
    # SIGTERM behave like Ctrl-C so the method stops and the rollbacks run.
    global _chaoslib_sigterm
    _chaoslib_sigterm = interrupt_on_sigterm()
    current().timeline.emit("experiment_start", str(context.get("title", "")))


def before_activity_control(
    context: dict[str, Any], configuration: dict[str, Any] | None = None, **kwargs: Any
) -> None:
    found = lookup(context)
    if found is None or found.reverts:
        return
    func = found.fault.name
    target = _target(found, context, configuration)
    picked = False
    if not target:
        target = _pick(found, context, configuration)
        picked = bool(target)
    args = _arguments(context, configuration)
    details: dict[str, Any] = {"fault": func, "activity": context.get("name"), "arguments": args}
    if picked:
        details["picked"] = True
    with _lock:
        _open[(func, target)] = {"fault": func, "picked": picked}
    current().timeline.emit("fault_start", target, details)


def after_activity_control(
    context: dict[str, Any],
    state: Any = None,
    configuration: dict[str, Any] | None = None,
    **kwargs: Any,
) -> None:
    found = lookup(context)
    if found is None:
        return
    target = _target(found, context, configuration)
    if not found.reverts:
        output = _output(state)
        if isinstance(output, dict) and output.get("held"):
            return  # left in place (duration_s 0): it ends when its revert action runs
        _close(found.fault.name, target, "action_returned")
        return
    _close(found.fault.name, target, "revert_action", not target)


def after_experiment_control(context: dict[str, Any], state: Any = None, **kwargs: Any) -> None:
    global _chaoslib_sigterm
    if _chaoslib_sigterm is not None:
        signal.signal(signal.SIGTERM, _chaoslib_sigterm)
        _chaoslib_sigterm = None
    with _lock:
        keys = list(_open)
    for fault, target in keys:
        _close(fault, target, "experiment_end")
    status = state.get("status") if isinstance(state, dict) else None
    deviated = state.get("deviated") if isinstance(state, dict) else None
    current().timeline.emit(
        "experiment_end", str(context.get("title", "")), {"status": status, "deviated": deviated}
    )
