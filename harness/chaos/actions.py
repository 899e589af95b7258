"""Chaos Toolkit actions: the faults.

Each fault injects, proves that it took hold (else ``FaultNoEffect``: "fault had no
effect: ..." naming what was checked), writes a ``fault_effect`` event with its injection
latency, holds for ``duration_s``, and reverts, also when it is interrupted. Faults that
change a process (hang, memory, contention) are written to a state file first and watched
by a detached reverter (see :mod:`harness.faults`), so they are undone even when the harness
is SIGKILLed, at the latest after ``ttl_s``. ``duration_s: 0`` leaves a fault in place
until its revert action (in the method or the rollbacks), the end of the run, or its
time-to-live: that is how faults overlap in a cascade. Every fault has a revert action for
the experiment's rollbacks.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import httpx
import psutil

from harness.chaos.context import RunContext, current
from harness.errors import ChaosError, FaultNoEffect, PlatformError
from harness.faults import injectors
from harness.faults.injectors import ActiveFault, WorkerProcess
from harness.platforms.local import LocalPlatform
from harness.platforms.local.autoscaler import scrape
from harness.rundir import RunDir

log = logging.getLogger(__name__)

#: Actions that inject a fault, and the argument naming the fault's target.
FAULT_ACTIONS: dict[str, str] = {
    "lose_node": "node",
    "crash_replica": "replica",
    "hang_replica": "replica",
    "exhaust_gpu_memory": "node",
    "contend_compute": "node",
}
#: Actions that revert a fault, and the argument naming the target they revert.
REVERT_ACTIONS: dict[str, str] = {
    "restore_node": "node",
    "resume_replica": "replica",
    "release_gpu_memory": "node",
    "stop_contention": "node",
}
#: The fault each revert action undoes.
REVERTS: dict[str, str] = {
    "restore_node": "lose_node",
    "resume_replica": "hang_replica",
    "release_gpu_memory": "exhaust_gpu_memory",
    "stop_contention": "contend_compute",
}

_PROOF_TIMEOUT_S = 5.0
#: a held fault's time-to-live is its duration plus this (a hold never overruns that much)
TTL_MARGIN_S = 60.0
#: time-to-live of a fault left in place (duration_s 0) when none is given
OPEN_TTL_S = 600.0
OOM_METRICS = ("gpuchaos_oom_total", "gpuchaos_engine_errors_total")

_held_lock = threading.Lock()
_held: dict[tuple[str, str], list[ActiveFault]] = {}  # (fault, target) -> active faults


def _local(ctx: RunContext) -> LocalPlatform:
    if not isinstance(ctx.platform, LocalPlatform):
        raise ChaosError("this fault needs the local platform (platform.kind: local)")
    return ctx.platform


def _ttl(duration_s: float, ttl_s: float | None) -> float:
    if ttl_s is not None:
        return ttl_s
    return duration_s + TTL_MARGIN_S if duration_s > 0 else OPEN_TTL_S


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _wait_gone(pids: list[int], timeout: float = _PROOF_TIMEOUT_S) -> list[int]:
    deadline = time.monotonic() + timeout
    survivors = [p for p in pids if _alive(p)]
    while survivors and time.monotonic() < deadline:
        time.sleep(0.005)
        survivors = [p for p in survivors if _alive(p)]
    return survivors


def _effect(
    ctx: RunContext, fault: str, target: str, latency_s: float, proof: dict[str, Any]
) -> None:
    details = {"fault": fault, "injection_latency_s": round(latency_s, 6), **proof}
    ctx.timeline.emit("fault_effect", target, details)
    log.info("%s %s took effect in %.1f ms: %s", fault, target, latency_s * 1000, proof)


def _hold(seconds: float, done: Any = None) -> None:
    """Sleep ``seconds`` in short steps (Ctrl-C and abort guards interrupt it); stop early
    when ``done()`` says the fault was reverted from elsewhere."""
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        if done is not None and done():
            return
        time.sleep(min(0.1, left))


def _keep(fault: str, target: str, active: ActiveFault) -> None:
    with _held_lock:
        _held.setdefault((fault, target), []).append(active)


def _release(fault: str, target: str) -> int:
    with _held_lock:
        faults = _held.pop((fault, target), [])
    for active in faults:
        active.revert()
    return len(faults)


def _held_then_revert(
    fault: str, target: str, active: ActiveFault, duration_s: float
) -> dict[str, Any]:
    """Hold a fault for ``duration_s`` and revert it (also when interrupted); with 0 leave
    it in place for its revert action."""
    _keep(fault, target, active)
    if duration_s <= 0:
        return {"held": True}
    try:
        _hold(duration_s, lambda: active.reverted)
    finally:
        _release(fault, target)
    return {"held": False}


# -- node loss ------------------------------------------------------------------------


def lose_node(node: str, down_for_s: float = 30.0) -> dict[str, Any]:
    """GPU node loss: kill every replica on ``node`` at once and keep the node down.

    The node's replicas are rescheduled onto surviving nodes with room (``max_replicas``),
    else they wait for it. Blocks for ``down_for_s`` seconds (returns early when a
    ``restore_node`` brought it back), then brings the node back; when interrupted, the
    ``restore_node`` rollback brings it back instead.
    """
    ctx = current()
    started = time.time()
    t0 = time.perf_counter()
    pids = ctx.platform.node_down(node)
    if not pids:
        raise FaultNoEffect(f"lose_node {node}", "the node had no running replica to kill")
    survivors = _wait_gone(pids)
    if survivors:
        raise FaultNoEffect(f"lose_node {node}", f"pids still alive after kill: {survivors}")
    latency = time.perf_counter() - t0
    _effect(ctx, "lose_node", node, latency, {"killed_pids": pids, "checked": "pids gone"})
    platform = ctx.platform
    up = getattr(platform, "node_is_up", None)
    _hold(max(0.0, started + down_for_s - time.time()), (lambda: up(node)) if up else None)
    platform.node_up(node)
    return {
        "node": node,
        "killed_pids": pids,
        "down_for_s": down_for_s,
        "injection_latency_s": latency,
    }


def restore_node(node: str) -> dict[str, Any]:
    """Revert node loss: bring ``node`` back (a no-op when it is up)."""
    ctx = current()
    ctx.platform.node_up(node)
    return {"node": node}


# -- replica crash and hang -----------------------------------------------------------


def _replica_pid(platform: LocalPlatform, replica: str) -> int:
    platform.replica_node(replica)  # unknown replica: a clear error
    pid = platform.replica_pids().get(replica)
    if pid is None:
        raise FaultNoEffect(f"replica {replica}", "it has no running process")
    return pid


def crash_replica(replica: str) -> dict[str, Any]:
    """Replica crash: SIGKILL the replica's process and prove it is gone; the supervisor
    restarts it with back-off."""
    ctx = current()
    platform = _local(ctx)
    platform.replica_node(replica)  # unknown replica: a clear error
    t0 = time.perf_counter()
    try:
        pid = platform.kill_replica(replica)
    except PlatformError as exc:
        raise FaultNoEffect(f"crash_replica {replica}", str(exc)) from None
    if _wait_gone([pid]):
        raise FaultNoEffect(f"crash_replica {replica}", f"pid {pid} still alive after SIGKILL")
    latency = time.perf_counter() - t0
    _effect(ctx, "crash_replica", replica, latency, {"pid": pid, "checked": "pid gone"})
    return {"replica": replica, "pid": pid, "injection_latency_s": latency}


def hang_replica(
    replica: str, duration_s: float = 30.0, ttl_s: float | None = None
) -> dict[str, Any]:
    """Replica hang: SIGSTOP the replica (a stuck process that neither serves nor dies),
    prove it stopped ('T' in /proc/PID/stat), hold, then SIGCONT. The supervisor's liveness
    probe is expected to notice and restart it before that."""
    ctx = current()
    platform = _local(ctx)
    pid = _replica_pid(platform, replica)
    active, latency = injectors.stop_processes(
        "hang_replica", replica, [pid], _ttl(duration_s, ttl_s), ctx.run_dir
    )
    _effect(ctx, "hang_replica", replica, latency, {"pid": pid, "checked": "state T"})
    result = _held_then_revert("hang_replica", replica, active, duration_s)
    now_pid = platform.replica_pids().get(replica)
    return {
        "replica": replica,
        "pid": pid,
        "injection_latency_s": latency,
        "restarted": now_pid is not None and now_pid != pid,
        **result,
    }


def resume_replica(replica: str) -> dict[str, Any]:
    """Revert a hang: SIGCONT the stopped replica (a no-op when it runs or was replaced)."""
    return {"replica": replica, "reverted": _release("hang_replica", replica)}


# -- GPU memory exhaustion ------------------------------------------------------------


def _oom_count(port: int | None) -> float:
    if port is None:
        return 0.0
    samples = scrape(port)
    return sum(samples.get(name, 0.0) for name in OOM_METRICS)


def _probe_allocation(ports: dict[int, int | None], words: int, max_tokens: int) -> list[str]:
    """Send one large completion straight to each replica; what failed, per pid."""
    failed = []
    body = {"prompt": " ".join(["memory"] * words), "max_tokens": max_tokens}
    for pid, port in ports.items():
        if port is None:
            continue
        try:
            resp = httpx.post(f"http://127.0.0.1:{port}/v1/completions", json=body, timeout=10)
        except httpx.HTTPError as exc:
            failed.append(f"pid {pid}: {type(exc).__name__}")
            continue
        if resp.status_code != 200:
            failed.append(f"pid {pid}: HTTP {resp.status_code} {resp.text[:80]}")
    return failed


def _hog_workers(ctx: RunContext, node: str, device: str) -> tuple[list[WorkerProcess], bool]:
    warm = injectors.take_workers(node, device)
    for extra in warm[1:]:
        extra.close()
    if warm:
        return warm[:1], True
    log.warning("no warm fault worker on %s: starting one cold (seconds, not ms)", node)
    return [WorkerProcess(device, None, OPEN_TTL_S * 2, RunDir(ctx.run_dir).worker_log)], False


def exhaust_gpu_memory(
    node: str,
    leave_free_mib: float | None = None,
    fraction: float | None = None,
    duration_s: float = 30.0,
    ttl_s: float | None = None,
    replica: str | None = None,
    headroom_mib: float = 0.0,
    probe_words: int = 200,
    probe_max_tokens: int = 64,
) -> dict[str, Any]:
    """GPU memory exhaustion on ``node``.

    CUDA node: a hog process on the node's GPU (warm when ``warm_fault_workers`` ran
    before) allocates until only ``leave_free_mib`` is free, or takes ``fraction`` of what
    is free (default: leave 256 MiB); proof: ``mem_get_info`` in the hog and NVML.
    CPU node (the stand-in): the soft RLIMIT_AS of the node's replicas (or ``replica``) is
    lowered to their size plus ``headroom_mib``, so their next large allocation fails;
    proof: the limit in /proc/PID/limits and a large completion sent to each replica fails
    or its ``gpuchaos_oom_total`` / engine-error counter moves. Holds ``duration_s``, then
    frees (or lifts the limit).
    """
    ctx = current()
    platform = _local(ctx)
    device = platform.node_device(node)
    ttl = _ttl(duration_s, ttl_s)
    fault = f"exhaust_gpu_memory {node}"
    if leave_free_mib is None and fraction is None:
        leave_free_mib = 256.0
    if device.startswith("cuda"):
        workers, warm = _hog_workers(ctx, node, device)
        active = injectors.worker_fault("exhaust_gpu_memory", node, workers, ttl, ctx.run_dir)
        t0 = time.perf_counter()
        try:
            reply = workers[0].request(
                {"op": "fill", "leave_free_mib": leave_free_mib, "fraction": fraction}
            )
        except ChaosError:
            active.revert()
            raise
        latency = time.perf_counter() - t0
        nvml_free = injectors.gpu_free_mib(device)
        total = float(reply.get("total_mib") or 0.0)
        slack = max(512.0, 0.02 * total)
        if leave_free_mib is not None:
            want_free = leave_free_mib + slack
            taken_ok = float(reply.get("free_mib_after", 1e12)) <= want_free
            nvml_ok = nvml_free is None or nvml_free <= want_free
        else:
            wanted = float(reply.get("free_mib_before", 0.0)) * float(fraction or 0.0)
            taken_ok = float(reply.get("taken_mib", 0.0)) >= 0.9 * wanted - slack
            nvml_ok = True
        if not (reply.get("ok") and taken_ok and nvml_ok):
            active.revert()
            raise FaultNoEffect(
                fault, f"memory not taken: hog said {reply}, NVML free {nvml_free} MiB"
            )
        proof = {
            "device": device,
            "hog_pid": workers[0].pid,
            "warm": warm,
            "hog_latency_s": reply.get("latency_s"),
            "taken_mib": round(float(reply.get("taken_mib", 0.0)), 1),
            "free_mib_after": round(float(reply.get("free_mib_after", 0.0)), 1),
            "nvml_free_mib": nvml_free,
            "checked": "mem_get_info and NVML free memory",
        }
    else:
        pids = platform.replica_pids(node)
        if replica is not None:
            pids = {k: v for k, v in pids.items() if k == replica}
        if not pids:
            raise FaultNoEffect(fault, "no running replica to limit")
        ports = {pid: platform.replica_port(rid) for rid, pid in pids.items()}
        before = {pid: _oom_count(port) for pid, port in ports.items()}
        active, latency, limits = injectors.limit_address_space(
            "exhaust_gpu_memory", node, list(pids.values()), headroom_mib, ttl, ctx.run_dir
        )
        failed = _probe_allocation(ports, probe_words, probe_max_tokens)
        deadline = time.monotonic() + _PROOF_TIMEOUT_S
        moved = {pid for pid, port in ports.items() if _oom_count(port) > before[pid]}
        while not failed and not moved and time.monotonic() < deadline:
            time.sleep(0.25)
            moved = {pid for pid, port in ports.items() if _oom_count(port) > before[pid]}
        if not failed and not moved:
            active.revert()
            raise FaultNoEffect(
                fault,
                f"soft RLIMIT_AS set to {limits} (seen in /proc/PID/limits) but no allocation "
                f"failed: {probe_words}-word completions succeeded and "
                f"{'/'.join(OOM_METRICS)} did not move",
            )
        proof = {
            "device": device,
            "pids": sorted(limits),
            "soft_limit_mib": {pid: round(v / (1 << 20), 1) for pid, v in limits.items()},
            "failed_allocations": failed,
            "oom_metric_moved": sorted(moved),
            "checked": "/proc/PID/limits and a failing allocation",
        }
    _effect(ctx, "exhaust_gpu_memory", node, latency, proof)
    result = _held_then_revert("exhaust_gpu_memory", node, active, duration_s)
    return {"node": node, "injection_latency_s": latency, **proof, **result}


def release_gpu_memory(node: str) -> dict[str, Any]:
    """Revert memory exhaustion: the hog frees and exits, or the limit is lifted."""
    return {"node": node, "reverted": _release("exhaust_gpu_memory", node)}


# -- compute contention ---------------------------------------------------------------


def _burn_proof(workers: list[WorkerProcess]) -> dict[str, Any]:
    first = [w.request({"op": "status"}).get("iterations", 0) for w in workers]
    cpu0 = [w.cpu_seconds() for w in workers]
    time.sleep(0.5)
    last = [w.request({"op": "status"}).get("iterations", 0) for w in workers]
    cpu = [w.cpu_seconds() - c for w, c in zip(workers, cpu0, strict=True)]
    return {"iterations": [b - a for a, b in zip(first, last, strict=True)], "cpu_s": cpu}


def contend_compute(
    node: str, duration_s: float = 30.0, workers: int | None = None, ttl_s: float | None = None
) -> dict[str, Any]:
    """GPU compute contention on ``node``: a co-located loop on the node's device (CUDA:
    bf16 matmuls; CPU: a busy loop per core, pinned to the node's cores), warm when
    ``warm_fault_workers`` ran before. Proof: every loop advances and burns CPU time.
    Holds ``duration_s``, then stops the loops."""
    ctx = current()
    platform = _local(ctx)
    device = platform.node_device(node)
    cpus = platform.node_cpus(node)
    count = workers or (1 if device.startswith("cuda") or not cpus else len(cpus))
    pool = injectors.take_workers(node, device)
    warm = len(pool) >= count
    if not warm:
        pool += injectors.warm_workers(
            f"{node}-cold", device, cpus, count - len(pool), OPEN_TTL_S * 2,
            RunDir(ctx.run_dir).worker_log,
        )  # fmt: skip
        pool += injectors.take_workers(f"{node}-cold", device)
    active = injectors.worker_fault("contend_compute", node, pool, _ttl(duration_s, ttl_s),
                                    ctx.run_dir)  # fmt: skip
    t0 = time.perf_counter()
    try:
        for w in pool:
            w.request({"op": "burn"})
        latency = time.perf_counter() - t0
        proof = _burn_proof(pool)
    except ChaosError:
        active.revert()
        raise
    if not all(i > 0 for i in proof["iterations"]) or not all(c >= 0.02 for c in proof["cpu_s"]):
        active.revert()
        raise FaultNoEffect(
            f"contend_compute {node}", f"the loops are not running and busy over 0.5 s: {proof}"
        )
    details = {
        "device": device,
        "pids": [w.pid for w in pool],
        "cpus": sorted(cpus) if cpus else None,
        "warm": warm,
        **proof,
        "checked": "loops advancing and busy",
    }
    _effect(ctx, "contend_compute", node, latency, details)
    result = _held_then_revert("contend_compute", node, active, duration_s)
    return {"node": node, "injection_latency_s": latency, **details, **result}


def stop_contention(node: str) -> dict[str, Any]:
    """Revert compute contention: the loops stop and their processes exit."""
    return {"node": node, "reverted": _release("contend_compute", node)}


# -- preparation ----------------------------------------------------------------------


def warm_fault_workers(
    node: str, workers: int | None = None, ttl_s: float = 900.0
) -> dict[str, Any]:
    """Start and warm the fault workers of ``node`` before the fault (CUDA: torch
    imported and the context created, ~5 s) so the fault itself takes milliseconds. Not
    a fault: the workers idle until a memory or contention fault uses them. They exit with
    the harness, or after ``ttl_s``."""
    ctx = current()
    platform = _local(ctx)
    device = platform.node_device(node)
    cpus = platform.node_cpus(node)
    count = workers or (1 if device.startswith("cuda") or not cpus else len(cpus))
    t0 = time.perf_counter()
    pool = injectors.warm_workers(node, device, cpus, count, ttl_s, RunDir(ctx.run_dir).worker_log)
    took = time.perf_counter() - t0
    log.info("%d fault worker(s) warm on %s (%s) in %.2f s", len(pool), node, device, took)
    return {"node": node, "device": device, "pids": [w.pid for w in pool], "warm_s": took}


def revert_everything() -> int:
    """Revert every fault still held and end the warm workers (the runner's last word);
    returns how many faults were still in place."""
    with _held_lock:
        _held.clear()
    left = len(injectors.active_faults())
    injectors.shutdown()
    return left
