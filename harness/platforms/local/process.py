"""Child processes of the local platform: free ports, spawning with a death signal, killing."""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from harness.procs import die_with_parent

log = logging.getLogger(__name__)


def free_port(host: str = "127.0.0.1") -> int:
    """An ephemeral TCP port on ``host`` that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def usable_cpus(wanted: Iterable[int] | None) -> set[int] | None:
    """The cores of ``wanted`` this process may run on; None for no pinning (also when none
    of them exists here, so a node spec written for a bigger machine still runs)."""
    if wanted is None:
        return None
    allowed = os.sched_getaffinity(0)
    cpus = {c for c in wanted if c in allowed}
    if not cpus:
        log.warning("none of cpus %s exists here (have %s): not pinning", list(wanted), allowed)
        return None
    return cpus


def spawn(
    argv: Sequence[str],
    env: Mapping[str, str],
    log_path: Path,
    header: str = "",
    cpus: set[int] | None = None,
) -> subprocess.Popen[bytes]:
    """Start ``argv`` in its own session, output appended to ``log_path``.

    The child gets SIGKILL when the spawning thread exits (PR_SET_PDEATHSIG), so spawn
    from a thread that lives as long as the children. ``cpus`` pins it to those cores.
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as fh:
        if header:
            fh.write(header.encode() + b"\n")
            fh.flush()
        return subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=fh,
            stderr=subprocess.STDOUT,
            env=dict(env),
            start_new_session=True,
            preexec_fn=die_with_parent(os.getpid(), cpus),
            close_fds=True,
        )


def signal_process(proc: subprocess.Popen[bytes], sig: int) -> bool:
    """Send ``sig`` to the process group of an unreaped child; False if it is gone."""
    if proc.returncode is not None:
        return False
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        return False
    except PermissionError:
        try:
            os.kill(proc.pid, sig)
        except ProcessLookupError:
            return False
    return True


def reap(procs: Iterable[subprocess.Popen[bytes]], timeout: float) -> list[subprocess.Popen[bytes]]:
    """Wait up to ``timeout`` seconds in all for the processes; returns those still running."""
    deadline = time.monotonic() + timeout
    left = []
    for proc in procs:
        try:
            proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            left.append(proc)
    return left


def terminate_all(procs: Sequence[subprocess.Popen[bytes]], grace_s: float) -> None:
    """SIGTERM every process, wait up to ``grace_s``, SIGKILL the rest and reap them."""
    for proc in procs:
        if signal_process(proc, signal.SIGTERM):
            signal_process(proc, signal.SIGCONT)  # a stopped (hung) replica must run to exit
    left = reap(procs, grace_s)
    for proc in left:
        log.warning("pid %d ignored SIGTERM for %.1f s, sending SIGKILL", proc.pid, grace_s)
        signal_process(proc, signal.SIGKILL)
    for proc in reap(left, 5.0):
        log.error("pid %d survived SIGKILL", proc.pid)


def kill_all(procs: Sequence[subprocess.Popen[bytes]]) -> None:
    """SIGKILL every process at once, then reap them."""
    for proc in procs:
        signal_process(proc, signal.SIGKILL)
    for proc in reap(procs, 5.0):
        log.error("pid %d survived SIGKILL", proc.pid)


def last_lines(path: Path, n: int = 3, max_bytes: int = 8192) -> list[str]:
    """The last ``n`` non-empty lines of a log file (empty when it is missing)."""
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - max_bytes))
            tail = fh.read().decode("utf-8", errors="replace")
    except OSError:
        return []
    lines = [line.strip() for line in tail.splitlines() if line.strip()]
    return lines[-n:]
