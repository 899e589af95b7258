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
shows it. A revert action without a target ends every open fault it reverts.
"""

from __future__ import annotations

import logging
import signal
import threading
from typing import Any

from harness.chaos import k8s
from harness.chaos.actions import FAULT_ACTIONS, REVERT_ACTIONS, REVERTS
from harness.chaos.context import current
from harness.errors import HarnessError

log = logging.getLogger(__name__)

#: Module -> (fault actions, revert actions, revert -> fault), each keyed by function name.
MODULES: dict[str, tuple[dict[str, str], dict[str, str], dict[str, str]]] = {
    "harness.chaos.actions": (FAULT_ACTIONS, REVERT_ACTIONS, REVERTS),
    "harness.chaos.k8s": (k8s.FAULT_ACTIONS, k8s.REVERT_ACTIONS, k8s.REVERTS),
}

_open: dict[tuple[str, str], dict[str, Any]] = {}  # (fault, target) -> fault_start details
_lock = threading.Lock()


def _arguments(activity: dict[str, Any], configuration: dict[str, Any] | None) -> dict[str, Any]:
    """The activity's arguments with ``${name}`` resolved, as chaoslib will pass them."""
    from chaoslib import substitute

    args = (activity.get("provider") or {}).get("arguments") or {}
    return dict(substitute(args, configuration or {}, {}) or {})


def _func_and_target(
    activity: dict[str, Any], which: int, configuration: dict[str, Any] | None
) -> tuple[str, str] | None:
    """(function, target) of a fault (``which`` 0) or revert (1) action, else None."""
    provider = activity.get("provider") or {}
    tables = MODULES.get(str(provider.get("module")))
    if provider.get("type") != "python" or tables is None:
        return None
    table = tables[which]
    func = str(provider.get("func", ""))
    if func not in table:
        return None
    return func, str(_arguments(activity, configuration).get(table[func], ""))


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


def _pick(activity: dict[str, Any], func: str) -> str:
    """Pick the target of a cluster fault action given none, and pass it as its argument
    (chaoslib calls the action with this activity's arguments); "" when none can be
    picked (the action then fails with its own reason)."""
    provider = activity.get("provider") or {}
    if provider.get("module") != "harness.chaos.k8s":
        return ""
    try:
        target = k8s.pick_target(func)
    except HarnessError as exc:
        log.warning("%s: no target to pick: %s", activity.get("name"), exc)
        return ""
    arguments = provider.get("arguments")
    if not isinstance(arguments, dict):
        arguments = provider["arguments"] = {}
    arguments[k8s.FAULT_ACTIONS[func]] = target
    log.info("%s: picked %s %s", activity.get("name"), k8s.FAULT_ACTIONS[func], target)
    return target


def _output(state: Any) -> Any:
    """The activity's output: chaoslib passes its run record (``output`` in it)."""
    if isinstance(state, dict) and "activity" in state and "output" in state:
        return state["output"]
    return state


def _raise_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def before_experiment_control(context: dict[str, Any], **kwargs: Any) -> None:
    # chaoslib's own SIGTERM handler does not stop an activity that is running; make
    # SIGTERM behave like Ctrl-C so the method stops and the rollbacks run.
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _raise_interrupt)
    current().timeline.emit("experiment_start", str(context.get("title", "")))


def before_activity_control(
    context: dict[str, Any], configuration: dict[str, Any] | None = None, **kwargs: Any
) -> None:
    found = _func_and_target(context, 0, configuration)
    if found is None:
        return
    func, target = found
    picked = False
    if not target:
        target = _pick(context, func)
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
    fault = _func_and_target(context, 0, configuration)
    if fault is not None:
        output = _output(state)
        if isinstance(output, dict) and output.get("held"):
            return  # left in place (duration_s 0): it ends when its revert action runs
        _close(fault[0], fault[1], "action_returned")
        return
    revert = _func_and_target(context, 1, configuration)
    if revert is not None:
        module = str((context.get("provider") or {}).get("module"))
        _close(MODULES[module][2][revert[0]], revert[1], "revert_action", not revert[1])


def after_experiment_control(context: dict[str, Any], state: Any = None, **kwargs: Any) -> None:
    with _lock:
        keys = list(_open)
    for fault, target in keys:
        _close(fault, target, "experiment_end")
    status = state.get("status") if isinstance(state, dict) else None
    deviated = state.get("deviated") if isinstance(state, dict) else None
    current().timeline.emit(
        "experiment_end", str(context.get("title", "")), {"status": status, "deviated": deviated}
    )
