"""Child processes that die with the harness, even when it is SIGKILLed.

Every spawner (replicas, Locust, fault workers) uses :func:`die_with_parent` as its
``preexec_fn``: it asks Linux for SIGKILL when the parent goes (``PR_SET_PDEATHSIG``). The
signal fires when the *thread* that spawned the child exits, so spawn from a thread that
lives as long as the child (the main thread, or a long-lived supervisor thread).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
import sys
from collections.abc import Callable
from typing import Any

_PR_SET_PDEATHSIG = 1


def _load_libc() -> Any:
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    except OSError:
        return None


_LIBC = _load_libc()


def set_parent_death_signal(sig: int = signal.SIGKILL) -> bool:
    """Ask for ``sig`` when this process's parent dies; False where Linux's prctl is absent."""
    if _LIBC is None:
        return False
    return int(_LIBC.prctl(_PR_SET_PDEATHSIG, sig, 0, 0, 0)) == 0


def die_with_parent(parent_pid: int, cpus: set[int] | None = None) -> Callable[[], None]:
    """A ``preexec_fn``: SIGKILL the child when ``parent_pid`` dies; pin it to ``cpus``."""

    def preexec() -> None:
        # runs in the child between fork and exec
        set_parent_death_signal()
        if os.getppid() != parent_pid:  # the parent died before prctl took hold
            os._exit(1)
        if cpus:
            os.sched_setaffinity(0, cpus)

    return preexec


def _sigterm_as_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt("SIGTERM")


def interrupt_on_sigterm() -> Any:
    """Make SIGTERM behave like Ctrl-C in this process (a KeyboardInterrupt in the main
    thread), so every ``finally`` runs: faults reverted, children stopped. Returns the
    handler it replaced (give it back with ``signal.signal(signal.SIGTERM, old)``), or None
    off the main thread, where signals cannot be handled.

    The one SIGTERM handler of the harness: the runner installs it for the whole run, and
    the timeline control again while chaoslib runs the experiment (chaoslib puts its own in
    place, which does not stop an activity that is running)."""
    import threading

    if threading.current_thread() is not threading.main_thread():
        return None
    return signal.signal(signal.SIGTERM, _sigterm_as_interrupt)


def interrupt_on_sigint() -> Any:
    """Make SIGINT raise KeyboardInterrupt in this process even when it was started with
    SIGINT ignored (a shell starts background jobs so: cron scripts, ``cmd &`` in CI), so
    Ctrl-C, ``kill -INT`` and the abort guards (which interrupt the main thread with SIGINT)
    still stop the run. Returns the handler it replaced, or None off the main thread."""
    import threading

    if threading.current_thread() is not threading.main_thread():
        return None
    return signal.signal(signal.SIGINT, signal.default_int_handler)
