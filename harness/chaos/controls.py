"""Chaos Toolkit control: writes each fault's start and end, and the experiment's, to the
run's timeline.

Declared in an experiment as::

    controls:
      - name: gpuchaos-timeline
        provider: {type: python, module: harness.chaos.controls}

A fault starts when a fault action begins and ends when it returns, or, when the method is
interrupted or the action left the fault in place (``duration_s: 0``), when its revert
action has run or the experiment ends.
"""

from __future__ import annotations

import logging
import signal
import threading
from typing import Any

from harness.chaos import k8s
from harness.chaos.actions import FAULT_ACTIONS, REVERT_ACTIONS, REVERTS
from harness.chaos.context import current

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


def _close(fault: str, target: str, how: str) -> None:
    with _lock:
        started = _open.pop((fault, target), None)
    if started is not None:
        current().timeline.emit("fault_end", target, {"fault": fault, "ended_by": how})


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
    args = _arguments(context, configuration)
    with _lock:
        _open[(func, target)] = {"fault": func}
    current().timeline.emit(
        "fault_start", target, {"fault": func, "activity": context.get("name"), "arguments": args}
    )


def after_activity_control(
    context: dict[str, Any],
    state: Any = None,
    configuration: dict[str, Any] | None = None,
    **kwargs: Any,
) -> None:
    fault = _func_and_target(context, 0, configuration)
    if fault is not None:
        if isinstance(state, dict) and state.get("held"):
            return  # left in place (duration_s 0): it ends when its revert action runs
        _close(fault[0], fault[1], "action_returned")
        return
    revert = _func_and_target(context, 1, configuration)
    if revert is not None:
        module = str((context.get("provider") or {}).get("module"))
        _close(MODULES[module][2][revert[0]], revert[1], "revert_action")


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
