"""In-process side of the faults: inject with a state file and a detached reverter, prove,
and revert.

Each injected fault is an :class:`ActiveFault`: its state file is written and its reverter
started *before* the fault takes effect, so there is no moment at which a dead harness
would leave it behind. :func:`revert_all` (called by the runner on every exit path) undoes
whatever is still active; :func:`shutdown` also ends the pre-warmed workers.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import queue
import resource
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import psutil

from harness.errors import ChaosError, FaultNoEffect
from harness.faults.active import ActiveFault, begin, revert_all
from harness.faults.active import active_faults as active_faults  # re-exported
from harness.faults.policy import PROOF_TIMEOUT_S as _PROOF_TIMEOUTS
from harness.faults.procfs import address_space_limit, proc_state, start_time, vm_size
from harness.faults.state import Target
from harness.procs import die_with_parent

log = logging.getLogger(__name__)

MIB = 1 << 20
PROOF_TIMEOUT_S = _PROOF_TIMEOUTS["local"]


def _group_leader(pid: int) -> bool:
    try:
        return os.getpgid(pid) == pid
    except ProcessLookupError:
        return False


# -- process stop (hang) ----------------------------------------------------------------


def stop_processes(
    fault: str, target: str, pids: list[int], ttl_s: float, run_dir: Path | None = None
) -> tuple[ActiveFault, float]:
    """SIGSTOP ``pids`` (their process groups when they lead one) and prove they stopped
    ('T' in /proc/PID/stat); returns the fault and the injection latency."""
    targets = [Target(pid, start_time(pid), group=_group_leader(pid)) for pid in pids]
    active = begin("stop", fault, target, targets, ttl_s, run_dir)
    t0 = time.perf_counter()
    for t in targets:
        with contextlib.suppress(ProcessLookupError):
            if t.group:
                os.killpg(t.pid, signal.SIGSTOP)
            else:
                os.kill(t.pid, signal.SIGSTOP)
    deadline = time.monotonic() + PROOF_TIMEOUT_S
    states = {t.pid: proc_state(t.pid) for t in targets}
    while any(s not in ("T", "t") for s in states.values()) and time.monotonic() < deadline:
        time.sleep(0.002)
        states = {t.pid: proc_state(t.pid) for t in targets}
    latency = time.perf_counter() - t0
    if any(s not in ("T", "t") for s in states.values()):
        active.revert()
        raise FaultNoEffect(f"{fault} {target}", f"process states after SIGSTOP: {states}")
    return active, latency


# -- address-space limit (CPU stand-in for GPU memory exhaustion) -----------------------


def cap_address_space(pid: int, headroom_mib: float) -> int | None:
    """Set the soft RLIMIT_AS of ``pid`` to its current size plus ``headroom_mib`` (never
    above the hard limit, which is left alone); returns the new soft limit in bytes, None
    when the process is gone. Also the tenancy memory cap's CPU stand-in."""
    size = vm_size(pid)
    if size is None:
        return None
    new_soft = size + int(headroom_mib * MIB)
    _, hard = resource.prlimit(pid, resource.RLIMIT_AS)
    if hard != resource.RLIM_INFINITY:
        new_soft = min(new_soft, hard)
    resource.prlimit(pid, resource.RLIMIT_AS, (new_soft, hard))
    return new_soft


def limit_address_space(
    fault: str,
    target: str,
    pids: list[int],
    headroom_mib: float,
    ttl_s: float,
    run_dir: Path | None = None,
) -> tuple[ActiveFault, float, dict[int, int]]:
    """Lower the soft RLIMIT_AS of ``pids`` to their current size plus ``headroom_mib``
    (the hard limit is never touched, so this is undone exactly); prove it in
    /proc/PID/limits. Returns the fault, the injection latency and the new limits."""
    targets = []
    for pid in pids:
        soft, _ = resource.prlimit(pid, resource.RLIMIT_AS)
        targets.append(
            Target(pid, start_time(pid), soft=None if soft == resource.RLIM_INFINITY else soft)
        )
    active = begin("rlimit", fault, target, targets, ttl_s, run_dir)
    t0 = time.perf_counter()
    limits: dict[int, int] = {}
    try:
        for t in targets:
            new_soft = cap_address_space(t.pid, headroom_mib)
            if new_soft is not None:
                limits[t.pid] = new_soft
    except (ProcessLookupError, PermissionError) as exc:
        active.revert()
        raise FaultNoEffect(f"{fault} {target}", f"prlimit failed: {exc}") from None
    latency = time.perf_counter() - t0
    seen = {pid: address_space_limit(pid) for pid in limits}
    wrong = {pid: s for pid, s in seen.items() if s is None or s[0] != limits[pid]}
    if not limits or wrong:
        active.revert()
        raise FaultNoEffect(
            f"{fault} {target}",
            f"/proc/PID/limits 'Max address space' is {wrong or 'unreadable'}, expected {limits}",
        )
    return active, latency, limits


# -- the fault worker: GPU memory hog, matmul or busy loop ------------------------------


class WorkerProcess:
    """A ``harness.faults.worker`` child, talked to over JSON lines."""

    def __init__(
        self,
        device: str,
        cpus: set[int] | None = None,
        ttl_s: float = 900.0,
        log_path: Path | None = None,
    ) -> None:
        self.device = device
        self.cpus = cpus
        t0 = time.perf_counter()
        stderr: Any = subprocess.DEVNULL
        if log_path is not None:
            log_path.parent.mkdir(parents=True, exist_ok=True)
            stderr = open(log_path, "ab")  # noqa: SIM115 - handed to the child
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "harness.faults.worker", "--device", device,
                 "--ttl-s", str(ttl_s)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=stderr,
                start_new_session=True,
                preexec_fn=die_with_parent(os.getpid(), cpus),
                close_fds=True,
            )  # fmt: skip
        finally:
            if stderr is not subprocess.DEVNULL:
                stderr.close()
        self._replies: queue.Queue[dict[str, Any] | None] = queue.Queue()
        threading.Thread(target=self._read, name="gpuchaos-worker-reader", daemon=True).start()
        hello = self._reply(180.0, "warm-up")
        if not hello.get("ok"):
            self.close()
            raise ChaosError(f"fault worker on {device} failed to start: {hello.get('error')}")
        self.warm_s = time.perf_counter() - t0
        self.start = start_time(self.proc.pid)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            try:
                self._replies.put(json.loads(line))
            except ValueError:
                log.debug("fault worker said: %r", line)
        self._replies.put(None)

    def _reply(self, timeout: float, what: str) -> dict[str, Any]:
        try:
            reply = self._replies.get(timeout=timeout)
        except queue.Empty:
            raise ChaosError(
                f"fault worker pid {self.pid}: no answer to {what} in {timeout:g} s"
            ) from None
        if reply is None:
            raise ChaosError(f"fault worker pid {self.pid} exited ({what})")
        return reply

    def request(self, cmd: dict[str, Any], timeout: float = 60.0) -> dict[str, Any]:
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write((json.dumps(cmd) + "\n").encode())
            self.proc.stdin.flush()
        except (BrokenPipeError, ValueError):
            raise ChaosError(f"fault worker pid {self.pid} is gone") from None
        return self._reply(timeout, str(cmd.get("op")))

    def cpu_seconds(self) -> float:
        try:
            t = psutil.Process(self.pid).cpu_times()
            return float(t.user + t.system)
        except psutil.NoSuchProcess:
            return 0.0

    def close(self) -> None:
        """End the worker: close its stdin (it exits), then make sure."""
        with contextlib.suppress(OSError, ValueError):
            if self.proc.stdin is not None:
                self.proc.stdin.close()
        try:
            self.proc.wait(timeout=3.0)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


_workers_lock = threading.Lock()
_workers: dict[tuple[str, str], list[WorkerProcess]] = {}  # (key, device) -> warm workers


def warm_workers(
    key: str,
    device: str,
    cpus: set[int] | None,
    count: int = 1,
    ttl_s: float = 900.0,
    log_path: Path | None = None,
) -> list[WorkerProcess]:
    """Start ``count`` workers for ``key`` (a node) ahead of a fault; reuse warm ones."""
    with _workers_lock:
        pool = [w for w in _workers.get((key, device), []) if w.alive()]
    per_cpu: list[set[int] | None] = [cpus]
    if cpus is not None and count > 1:
        per_cpu = [{c} for c in sorted(cpus)]
    while len(pool) < count:
        pool.append(WorkerProcess(device, per_cpu[len(pool) % len(per_cpu)], ttl_s, log_path))
    with _workers_lock:
        _workers[(key, device)] = pool
    return pool


def take_workers(key: str, device: str) -> list[WorkerProcess]:
    """Hand over the warm workers of ``key`` (they leave the pool); empty when none."""
    with _workers_lock:
        pool = _workers.pop((key, device), [])
    return [w for w in pool if w.alive()]


def shutdown() -> None:
    """Revert every active fault and end every warm worker (the runner's last word)."""
    revert_all()
    with _workers_lock:
        pools = list(_workers.values())
        _workers.clear()
    for pool in pools:
        for w in pool:
            w.close()


def worker_fault(
    fault: str,
    target: str,
    workers: list[WorkerProcess],
    ttl_s: float,
    run_dir: Path | None = None,
) -> ActiveFault:
    """Register ``workers`` as one fault: the reverter kills them when the harness dies or
    the time-to-live runs out; reverting closes them."""
    targets = [Target(w.pid, w.start, group=True) for w in workers]
    active = begin("process", fault, target, targets, ttl_s, run_dir)
    for w in workers:
        active.undo.append(w.close)
    return active
