"""Child processes for tests: start one, wait until it is ready (failing at once, with its
output, when it exits first), and always stop it together with its process group.

Why one module: a process a test leaves behind breaks the tests after it (a port taken, a
CPU busy, a GPU full), and a readiness loop that only watches a deadline turns a child that
crashed at start-up into a minute-long wait with no reason given. Every child starts in a
session of its own (so it leads its own process group) unless a test needs it inside the
test's group; :func:`stop` signals that whole group, so whatever the child started without
a session of its own goes with it. Children that do start their own sessions (replicas,
Locust, fault reverters) are what the tests under test must clean up, so nothing here
reaches them.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
import weakref
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

#: Seconds a child gets to exit after the stop signal before it is SIGKILLed.
GRACE_S = 10.0

#: Children started by :func:`spawn` in a process group of their own.
_GROUP_LEADERS: weakref.WeakSet[subprocess.Popen[Any]] = weakref.WeakSet()

Log = Path | Callable[[], str] | None


def spawn(
    cmd: Sequence[str],
    *,
    own_group: bool = True,
    log_path: Path | None = None,
    **popen: Any,
) -> subprocess.Popen[Any]:
    """Start ``cmd``; with ``log_path`` its stdout and stderr go to that file. ``own_group``
    False keeps it in the test's process group (a fault victim that must not lead a group)."""
    if log_path is not None:
        with log_path.open("wb") as log:
            proc = subprocess.Popen(
                cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=own_group, **popen
            )
    else:
        proc = subprocess.Popen(cmd, start_new_session=own_group, **popen)
    if own_group:
        _GROUP_LEADERS.add(proc)
    return proc


def _signal(proc: subprocess.Popen[Any], sig: int, group: bool) -> None:
    with contextlib.suppress(ProcessLookupError):
        if group:
            os.killpg(proc.pid, sig)
        else:
            os.kill(proc.pid, sig)


def stop(
    proc: subprocess.Popen[Any], *, sig: int | None = signal.SIGTERM, grace_s: float = GRACE_S
) -> int:
    """Stop ``proc`` and its process group; returns its exit code. ``sig`` goes to the group
    (followed by SIGCONT, so a stopped process acts on it; None: give it ``grace_s`` to exit by
    itself), SIGKILL after ``grace_s``; then SIGKILL to whatever is left in the group, even
    when the child itself had exited already. Linux hands out no pid that a live group still
    uses as its id, so the group is the child's while its pid is free; once another process
    holds that pid (pids wrap around), the group is someone else's and is left alone. Safe to
    call twice."""
    group = proc in _GROUP_LEADERS
    if proc.poll() is None:
        if sig is not None:
            _signal(proc, sig, group)
            _signal(proc, signal.SIGCONT, group)
        try:
            proc.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            _signal(proc, signal.SIGKILL, group)
            proc.wait(timeout=grace_s)
    if group and not psutil.pid_exists(proc.pid):
        _signal(proc, signal.SIGKILL, group)
    return proc.returncode


@contextmanager
def running(
    cmd: Sequence[str],
    *,
    own_group: bool = True,
    log_path: Path | None = None,
    **popen: Any,
) -> Iterator[subprocess.Popen[Any]]:
    """:func:`spawn` for the length of a ``with`` block, then :func:`stop` (on error too)."""
    proc = spawn(cmd, own_group=own_group, log_path=log_path, **popen)
    try:
        yield proc
    finally:
        stop(proc)


class Processes:
    """The children of one test (the ``processes`` fixture of tests/conftest.py): each is
    stopped, last started first, when the test has ended, after its assertions ran."""

    def __init__(self) -> None:
        self._procs: list[subprocess.Popen[Any]] = []

    def start(
        self,
        cmd: Sequence[str],
        *,
        own_group: bool = True,
        log_path: Path | None = None,
        **popen: Any,
    ) -> subprocess.Popen[Any]:
        """:func:`spawn`, stopped when the test ends."""
        proc = spawn(cmd, own_group=own_group, log_path=log_path, **popen)
        self._procs.append(proc)
        return proc

    def stop_all(self) -> None:
        while self._procs:
            stop(self._procs.pop())


def _output(proc: subprocess.Popen[Any], log: Log, exited: bool) -> str:
    """What the child wrote: ``log`` (a file or a callable), else its stdout pipe once it
    has exited (reading a live child's pipe would block)."""
    if isinstance(log, Path):
        return log.read_text(errors="replace") if log.is_file() else ""
    if log is not None:
        return log()
    if exited and proc.stdout is not None:
        out = proc.stdout.read()
        return out.decode(errors="replace") if isinstance(out, bytes) else str(out)
    return ""


def wait_ready(
    proc: subprocess.Popen[Any],
    ready: Callable[[], bool],
    *,
    timeout_s: float,
    name: str,
    until: str,
    log: Log = None,
    interval_s: float = 0.05,
) -> None:
    """Poll ``ready`` until it holds; fail the test at once, with the child's output, when
    ``proc`` exits first, and after ``timeout_s``. ``name`` names the child, ``until`` what
    is awaited (both only for the failure message)."""
    deadline = time.monotonic() + timeout_s
    while True:
        code = proc.poll()
        if code is not None:
            output = _output(proc, log, exited=True)
            pytest.fail(f"{name} exited with {code} before {until}:\n{output}")
        if ready():
            return
        if time.monotonic() > deadline:
            output = _output(proc, log, exited=False)
            pytest.fail(f"{name}: no {until} after {timeout_s} s:\n{output}")
        time.sleep(interval_s)


def wait_http_ready(
    proc: subprocess.Popen[Any],
    url: str,
    *,
    timeout_s: float,
    name: str = "server",
    log: Log = None,
    interval_s: float = 0.05,
) -> None:
    """:func:`wait_ready` until GET ``url`` answers 200 (a refused or timed-out connection
    is not ready yet)."""
    with httpx.Client(timeout=2.0) as client:

        def answers() -> bool:
            try:
                return client.get(url).status_code == 200
            except httpx.TransportError:
                return False

        wait_ready(
            proc,
            answers,
            timeout_s=timeout_s,
            name=name,
            until=f"200 from {url}",
            log=log,
            interval_s=interval_s,
        )


def wait_for(cond: Callable[[], bool], timeout: float, what: str, interval_s: float = 0.05) -> None:
    """Poll ``cond`` until it holds; AssertionError naming ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(interval_s)


def alive(pid: int) -> bool:
    """``pid`` runs (or is stopped); a zombie is not alive."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def gone(pid: int) -> bool:
    """``pid`` has exited (a zombie counts as gone)."""
    return not alive(pid)
