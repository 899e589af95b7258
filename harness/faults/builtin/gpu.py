"""GPU failure modes real fleets see, on the local platform, through the reference
workloads' fault hook (``workloads/faulthook.py``, reached with each replica's own token):
a poisoned CUDA context, a GPU lost under running replicas, a throttled GPU.

What they teach:

- ``poison_replica``: after an XID or an illegal memory access the process stays up, its
  shallow liveness answers 200, and every inference fails until it restarts. With shallow
  liveness the replica is a black hole until someone acts; with deep liveness (a tiny
  computation on the device) the supervisor restarts it.
- ``lose_gpu``: the node stays, its GPU is gone (XID 79, "fallen off the bus"): its replicas
  are poisoned and the node takes no replica for ``unhealthy_s`` (the device plugin marks
  the GPU unhealthy; Kubernetes does not evict, it only stops scheduling there). A replica
  that restarts goes elsewhere only if another node has room.
- ``throttle_gpu``: thermal or power throttling; nothing fails, every step is slower, TTFT
  and TPOT degrade; a latency-based autoscaler reacts while a queue-based one may not.

Reverts: a poisoned context goes away only with a restart, as on a real GPU, so the revert of
a poison is a SIGKILL of the poisoned process if it still runs (the supervisor starts a fresh
one); its state file (kind ``process``) lets the detached reverter do the same when the
harness was SIGKILLed or the time-to-live ran out. A throttle is undone by the hook's
``clear`` (state file of kind ``hook``, with the replica's port and token).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from typing import Any

from pydantic import Field

from harness.config.base import MAX_MULTIPLIER
from harness.errors import ChaosError, FaultNoEffect
from harness.faults import hookclient
from harness.faults.active import ActiveFault, begin, in_process
from harness.faults.builtin._common import alive
from harness.faults.contract import (
    Fault,
    FaultArgs,
    FaultContext,
    Injection,
    duration_field,
    ttl_field,
)
from harness.faults.hosts import LocalHost
from harness.faults.policy import ttl_for
from harness.faults.procfs import start_time
from harness.faults.registry import register
from harness.faults.state import Target

DEFAULT_XID = 79
MAX_XID = 9999
FAILURES_METRIC = "gpuchaos_request_failures_total"


def _xid_field() -> Any:
    return Field(
        DEFAULT_XID,
        ge=0,
        le=MAX_XID,
        description=(
            "The XID the fault stands for, written to its events (79: GPU fallen off the bus; "
            f"48: double-bit ECC; 94/95: contained/uncontained ECC), 0 to {MAX_XID}."
        ),
    )


def _group_leader(pid: int) -> bool:
    try:
        return os.getpgid(pid) == pid
    except ProcessLookupError:
        return False


# -- the mechanisms (also what a stand-in harness in the tests calls) -----------------------


def poison_process(
    fault: str,
    target: str,
    port: int,
    token: str,
    pid: int,
    xid: int,
    ttl_s: float,
    run_dir: Any = None,
) -> ActiveFault:
    """Poison the context of the server on ``port`` (process ``pid``). Its revert (and the
    reverter's, after ``ttl_s`` or the harness's death) is a SIGKILL of that process if it
    still runs: the restart that clears a poisoned context."""
    t = Target(pid, start_time(pid), group=_group_leader(pid))
    active = begin("process", fault, target, [t], ttl_s, run_dir)
    try:
        hookclient.call(port, token, {"kind": "poison", "xid": xid})
    except BaseException:
        if active.record is not None:
            active.record.targets = []  # not poisoned: nothing to restart
        active.revert()
        raise
    return active


def throttle_process(
    fault: str,
    target: str,
    port: int,
    token: str,
    pid: int,
    factor: float,
    ttl_s: float,
    run_dir: Any = None,
) -> ActiveFault:
    """Stretch every step of the server on ``port`` by ``factor``; reverted by a ``clear``
    (by the reverter too, after ``ttl_s`` or the harness's death)."""
    hook = {"host": "127.0.0.1", "port": str(port), "token": token}
    active = begin("hook", fault, target, [Target(pid, start_time(pid))], ttl_s, run_dir, hook=hook)
    with active.undone_on_error():
        hookclient.call(port, token, {"kind": "throttle", "factor": factor})
    return active


def _replica_door(host: LocalHost, replica: str) -> tuple[int, int, str]:
    """The pid, port and fault token of a running replica; FaultNoEffect when it has none."""
    host.replica_node(replica)  # unknown replica: a clear error
    pid = host.replica_pids().get(replica)
    port = host.replica_port(replica)
    token = host.fault_token(replica)
    if pid is None or port is None:
        raise FaultNoEffect(f"replica {replica}", "it has no running process")
    if token is None:
        raise FaultNoEffect(f"replica {replica}", "it was started without a fault hook token")
    return pid, port, token


Door = tuple[int, int, str]  # a running replica's pid, port and fault-hook token


def _node_doors(host: LocalHost, fault: str, node: str) -> dict[str, Door]:
    """The door of every running replica of ``node``; FaultNoEffect when it runs none."""
    doors = {rid: _replica_door(host, rid) for rid in host.replica_pids(node)}
    if not doors:
        raise FaultNoEffect(f"{fault} {node}", "the node has no running replica")
    return doors


def _on_each_replica(
    fault: str,
    node: str,
    doors: dict[str, Door],
    apply: Callable[[str, Door], ActiveFault],
    first: tuple[Callable[[], object], Callable[[], object]] | None = None,
) -> ActiveFault:
    """A node-wide fault made of one fault per replica (each with its own state file for
    the reverter): one in-process ActiveFault whose revert undoes ``first`` (a do/undo pair
    acted on the node before the replicas) and every replica's fault; a replica that
    refuses is FaultNoEffect, and what was done so far is undone."""
    done: list[ActiveFault] = []

    def undo() -> None:
        if first is not None:
            first[1]()
        for one in done:
            one.revert()

    active = in_process(fault, node, undo)
    with active.undone_on_error():
        if first is not None:
            first[0]()
        for rid, door in doors.items():
            try:
                done.append(apply(rid, door))
            except ChaosError as exc:
                raise FaultNoEffect(f"{fault} {node}", f"{rid}: {exc}") from None
    return active


def _workload_kind(ctx: FaultContext) -> str:
    workload = getattr(ctx.platform, "workload", None)
    return str(getattr(workload, "kind", "llm"))


def _poison_proof(ctx: FaultContext, pid: int, port: int, before: float | None) -> dict[str, Any]:
    """What shows a poisoned replica: a probe request fails with the CUDA error and its
    failure counter moved; its liveness is asked too (shallow still answers 200)."""
    status, body = hookclient.probe_request(port, _workload_kind(ctx))
    after = hookclient.metric_total(port, FAILURES_METRIC)
    live = hookclient.probe_live(port)
    return {
        "pid": pid,
        "probe_status": status,
        "probe_error": body[:160],
        "failures_before": before,
        "failures_after": after,
        "live_status": live,
        "poisoned": status >= 500
        and "CUDA error" in body
        and after is not None
        and after > (before or 0.0),
    }


# -- poison_replica -------------------------------------------------------------------------


class PoisonArgs(FaultArgs):
    replica: str = Field(description="The replica whose CUDA context to poison, e.g. node-a-0.")
    xid: int = _xid_field()
    duration_s: float = duration_field(
        30.0, "0 leaves it poisoned until restart_poisoned_replica or the run ends"
    )
    ttl_s: float | None = ttl_field()


@register
class PoisonReplica(Fault[PoisonArgs]):
    """Poisoned CUDA context: the replica stays up and every inference fails with the CUDA
    error until it restarts. CUDA: a real device-side assert (an out-of-range index on the
    GPU) in the server's own context; CPU stand-in: every forward raises the same text.
    Proof: a probe request fails with "CUDA error" and the replica's failure counter moves;
    /health/live still answers (200 with shallow liveness). Revert: the replica is
    restarted (SIGKILL if the poisoned process still runs; the supervisor starts it again)."""

    name = "poison_replica"
    platform = "local"
    args = PoisonArgs
    target_arg = "replica"
    revert_action = "restart_poisoned_replica"
    hold = "open"
    summary = (
        "Poisoned CUDA context (XID): the process lives, every inference fails until restart "
        "(CUDA: a real device-side assert; CPU: the hook raises the same error)"
    )
    proves = "a probe request fails with 'CUDA error' and the replica's failure counter moves"

    def inject(self, ctx: FaultContext, args: PoisonArgs, target: str) -> Injection:
        host: LocalHost = ctx.platform
        pid, port, token = _replica_door(host, target)
        before = hookclient.metric_total(port, FAILURES_METRIC)
        ttl = ttl_for(args.duration_s, args.ttl_s)
        try:
            active = poison_process(self.name, target, port, token, pid, args.xid, ttl, ctx.run_dir)
        except ChaosError as exc:
            raise FaultNoEffect(f"{self.name} {target}", str(exc)) from None
        facts = {"pid": pid, "xid": args.xid, "port": port}
        injection = Injection(target, active, facts)
        injection.scratch["before"] = before
        return injection

    def prove(
        self, ctx: FaultContext, args: PoisonArgs, injection: Injection
    ) -> dict[str, Any] | None:
        pid, port = injection.facts["pid"], injection.facts["port"]
        if not alive(pid):
            return None
        proof = _poison_proof(ctx, pid, port, injection.scratch["before"])
        if not proof.pop("poisoned"):
            injection.scratch["last"] = proof
            return None
        return {**proof, "xid": args.xid, "checked": "probe failed with CUDA error"}

    def no_effect(self, ctx: FaultContext, args: PoisonArgs, injection: Injection) -> str:
        return f"not seen: {self.proves}; last probe: {injection.scratch.get('last')}"

    def finish(self, ctx: FaultContext, args: PoisonArgs, injection: Injection) -> dict[str, Any]:
        host: LocalHost = ctx.platform
        now_pid = host.replica_pids().get(injection.target)
        return {"restarted": now_pid is not None and now_pid != injection.facts["pid"]}


# -- lose_gpu -------------------------------------------------------------------------------


class LoseGpuArgs(FaultArgs):
    node: str = Field(description="The node whose GPU is lost (a name from platform.nodes).")
    duration_s: float = duration_field(30.0)
    xid: int = _xid_field()
    ttl_s: float | None = ttl_field()


@register
class LoseGpu(Fault[LoseGpuArgs]):
    """GPU lost under running replicas (XID 79): the node stays up, its replicas' contexts
    are poisoned, and the node takes no replica for ``unhealthy_s`` (``duration_s``): a
    replica that restarts (deep liveness) goes to another node with room, else waits.
    CPU stand-in: the hook's poison on each replica and the platform's GPU mask.
    Proof: every replica of the node fails a probe with "CUDA error" (or already
    restarted) and the node has no room. Revert: the GPU healthy again, and each replica
    still running with its poisoned context restarted."""

    name = "lose_gpu"
    platform = "local"
    args = LoseGpuArgs
    target_arg = "node"
    revert_action = "restore_gpu"
    hold = "timed"
    aliases = {"unhealthy_s": "duration_s"}
    summary = (
        "GPU lost under running replicas (XID 79): replicas poisoned, the node takes no "
        "replica for unhealthy_s; restarts go elsewhere only if there is room"
    )
    proves = "every replica of the node fails a probe with 'CUDA error' or has restarted"

    def inject(self, ctx: FaultContext, args: LoseGpuArgs, target: str) -> Injection:
        host: LocalHost = ctx.platform
        doors = _node_doors(host, self.name, target)
        ttl = ttl_for(args.duration_s, args.ttl_s)
        before: dict[str, float | None] = {}

        def poison(rid: str, door: Door) -> ActiveFault:
            pid, port, token = door
            before[rid] = hookclient.metric_total(port, FAILURES_METRIC)
            return poison_process(self.name, rid, port, token, pid, args.xid, ttl, ctx.run_dir)

        gpu = (lambda: host.set_gpu_healthy(target, False, args.xid),
               lambda: host.set_gpu_healthy(target, True))  # fmt: skip
        active = _on_each_replica(self.name, target, doors, poison, first=gpu)
        facts = {
            "xid": args.xid,
            "replicas": {rid: pid for rid, (pid, _, _) in doors.items()},
            "unhealthy_s": args.duration_s,
        }
        injection = Injection(target, active, facts)
        injection.scratch.update(doors=doors, before=before)
        return injection

    def prove(
        self, ctx: FaultContext, args: LoseGpuArgs, injection: Injection
    ) -> dict[str, Any] | None:
        seen: dict[str, str] = {}
        for rid, (pid, port, _) in injection.scratch["doors"].items():
            if not alive(pid):
                seen[rid] = "restarted"
                continue
            proof = _poison_proof(ctx, pid, port, injection.scratch["before"][rid])
            if not proof["poisoned"]:
                injection.scratch["last"] = {rid: proof}
                return None
            seen[rid] = f"probe {proof['probe_status']}: {proof['probe_error'][:60]}"
        return {"xid": args.xid, "replicas": seen, "checked": "probes failed with CUDA error"}

    def finish(self, ctx: FaultContext, args: LoseGpuArgs, injection: Injection) -> dict[str, Any]:
        return {"unhealthy_s": args.duration_s}

    def on_revert_action(self, ctx: FaultContext, target: str | None) -> dict[str, Any] | None:
        return None  # the default: end the held faults (their undo makes the GPU healthy)


# -- throttle_gpu ---------------------------------------------------------------------------


class ThrottleArgs(FaultArgs):
    node: str = Field(description="The node whose GPU is throttled (a name from platform.nodes).")
    factor: float = Field(
        3.0,
        gt=1,
        le=MAX_MULTIPLIER,
        description=(
            "How much longer each model step takes (2: twice as long), more than 1 and at "
            f"most {MAX_MULTIPLIER}."
        ),
    )
    duration_s: float = duration_field(30.0, "0 holds it until unthrottle_gpu or the end")
    ttl_s: float | None = ttl_field()


@register
class ThrottleGpu(Fault[ThrottleArgs]):
    """Throttled GPU (thermal or power): every model step of the node's replicas takes
    ``factor`` times as long, through the fault hook (never by changing the device's real
    clocks or power limit); nothing fails. On a real GPU NVML's throttle reasons are still
    sampled. CPU stand-in: the same stretch. Proof: each replica's hook reports the factor
    and a probe request still succeeds. Revert: the hook's clear."""

    name = "throttle_gpu"
    platform = "local"
    args = ThrottleArgs
    target_arg = "node"
    revert_action = "unthrottle_gpu"
    hold = "open"
    summary = (
        "Throttled GPU: every step of the node's replicas stretched by a factor through the "
        "fault hook; nothing fails, TTFT and TPOT degrade"
    )
    proves = "every replica's hook reports the factor and a probe request still succeeds"

    def inject(self, ctx: FaultContext, args: ThrottleArgs, target: str) -> Injection:
        host: LocalHost = ctx.platform
        doors = _node_doors(host, self.name, target)
        ttl = ttl_for(args.duration_s, args.ttl_s)

        def throttle(rid: str, door: Door) -> ActiveFault:
            pid, port, token = door
            return throttle_process(self.name, rid, port, token, pid, args.factor, ttl, ctx.run_dir)

        active = _on_each_replica(self.name, target, doors, throttle)
        facts = {"factor": args.factor, "replicas": {rid: d[0] for rid, d in doors.items()}}
        injection = Injection(target, active, facts)
        injection.scratch["doors"] = doors
        return injection

    def prove(
        self, ctx: FaultContext, args: ThrottleArgs, injection: Injection
    ) -> dict[str, Any] | None:
        seen: dict[str, Any] = {}
        for rid, (_pid, port, token) in injection.scratch["doors"].items():
            with contextlib.suppress(ChaosError):
                state = hookclient.call(port, token)
                if state.get("throttle") != args.factor:
                    return None
                status, _ = hookclient.probe_request(port, _workload_kind(ctx))
                if status != 200:
                    return None
                seen[rid] = {"throttle": state["throttle"], "probe_status": status}
        if len(seen) != len(injection.scratch["doors"]):
            return None
        return {"factor": args.factor, "replicas": seen, "checked": "hook state and a probe"}
