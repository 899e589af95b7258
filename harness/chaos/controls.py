"""Chaos Toolkit control: writes each fault's start and end, and the experiment's, to the
run's timeline.

Declared in an experiment as::

    controls:
      - name: gpuchaos-timeline
        provider: {type: python, module: harness.chaos.controls}

A fault starts when a fault action begins and ends when it returns, or, when the method is
interrupted, when its revert action (a rollback) has run or the experiment ends.
"""

from __future__ import annotations

import logging
import signal
import threading
from typing import Any

from harness.chaos.actions import FAULT_ACTIONS, REVERT_ACTIONS
from harness.chaos.context import current

log = logging.getLogger(__name__)

_open: dict[str, dict[str, Any]] = {}  # target -> fault_start event details
_lock = threading.Lock()


def _arguments(activity: dict[str, Any], configuration: dict[str, Any] | None) -> dict[str, Any]:
    """The activity's arguments with ``${name}`` resolved, as chaoslib will pass them."""
    from chaoslib import substitute

    args = (activity.get("provider") or {}).get("arguments") or {}
    return dict(substitute(args, configuration or {}, {}) or {})


def _func_and_target(
    activity: dict[str, Any], table: dict[str, str], configuration: dict[str, Any] | None
) -> tuple[str, str] | None:
    provider = activity.get("provider") or {}
    if provider.get("type") != "python" or provider.get("module") != "harness.chaos.actions":
        return None
    func = str(provider.get("func", ""))
    if func not in table:
        return None
    return func, str(_arguments(activity, configuration).get(table[func], ""))


def _close(target: str, how: str) -> None:
    with _lock:
        started = _open.pop(target, None)
    if started is not None:
        current().timeline.emit("fault_end", target, {"fault": started["fault"], "ended_by": how})


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
    found = _func_and_target(context, FAULT_ACTIONS, configuration)
    if found is None:
        return
    func, target = found
    args = _arguments(context, configuration)
    with _lock:
        _open[target] = {"fault": func}
    current().timeline.emit(
        "fault_start", target, {"fault": func, "activity": context.get("name"), "arguments": args}
    )


def after_activity_control(
    context: dict[str, Any],
    state: Any = None,
    configuration: dict[str, Any] | None = None,
    **kwargs: Any,
) -> None:
    fault = _func_and_target(context, FAULT_ACTIONS, configuration)
    if fault is not None:
        _close(fault[1], "action_returned")
        return
    revert = _func_and_target(context, REVERT_ACTIONS, configuration)
    if revert is not None:
        _close(revert[1], "rollback")


def after_experiment_control(context: dict[str, Any], state: Any = None, **kwargs: Any) -> None:
    with _lock:
        targets = list(_open)
    for target in targets:
        _close(target, "experiment_end")
    status = state.get("status") if isinstance(state, dict) else None
    deviated = state.get("deviated") if isinstance(state, dict) else None
    current().timeline.emit(
        "experiment_end", str(context.get("title", "")), {"status": status, "deviated": deviated}
    )
