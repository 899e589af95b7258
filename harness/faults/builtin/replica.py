"""Replica faults on the local platform: a crash (SIGKILL) and a hang (SIGSTOP, a stuck
CUDA process that neither serves nor dies).

What they teach: a crash tests the supervisor's restart with back-off and the router's
retry; a hang tests the liveness probe, which must notice a process that is still there.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from harness.errors import FaultNoEffect, PlatformError
from harness.faults import injectors
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
from harness.faults.procfs import proc_state
from harness.faults.registry import register


class CrashArgs(FaultArgs):
    replica: str = Field(description="The replica to kill, e.g. node-a-0.")


@register
class CrashReplica(Fault[CrashArgs]):
    name = "crash_replica"
    platform = "local"
    args = CrashArgs
    target_arg = "replica"
    summary = "Replica crash: SIGKILL of the replica's process; the supervisor restarts it"
    proves = "the replica's pid is gone"

    def inject(self, ctx: FaultContext, args: CrashArgs, target: str) -> Injection:
        host: LocalHost = ctx.platform
        host.replica_node(target)  # unknown replica: a clear error
        try:
            pid = host.kill_replica(target)
        except PlatformError as exc:
            raise FaultNoEffect(f"crash_replica {target}", str(exc)) from None
        return Injection(target, None, {"pid": pid})

    def prove(
        self, ctx: FaultContext, args: CrashArgs, injection: Injection
    ) -> dict[str, Any] | None:
        pid = injection.facts["pid"]
        return None if alive(pid) else {"pid": pid, "checked": "pid gone"}


class HangArgs(FaultArgs):
    replica: str = Field(description="The replica to stop, e.g. node-a-0.")
    duration_s: float = duration_field(30.0, "0 holds it until resume_replica or the run ends")
    ttl_s: float | None = ttl_field()


@register
class HangReplica(Fault[HangArgs]):
    name = "hang_replica"
    platform = "local"
    args = HangArgs
    target_arg = "replica"
    revert_action = "resume_replica"
    hold = "open"
    summary = "Replica hang: SIGSTOP (neither serves nor dies), SIGCONT at the end"
    proves = "the process is stopped ('T' in /proc/PID/stat)"

    def inject(self, ctx: FaultContext, args: HangArgs, target: str) -> Injection:
        host: LocalHost = ctx.platform
        host.replica_node(target)  # unknown replica: a clear error
        pid = host.replica_pids().get(target)
        if pid is None:
            raise FaultNoEffect(f"replica {target}", "it has no running process")
        ttl = ttl_for(args.duration_s, args.ttl_s)
        active, latency = injectors.stop_processes(self.name, target, [pid], ttl, ctx.run_dir)
        return Injection(target, active, {"pid": pid}, latency_s=latency)

    def prove(
        self, ctx: FaultContext, args: HangArgs, injection: Injection
    ) -> dict[str, Any] | None:
        pid = injection.facts["pid"]
        if proc_state(pid) not in ("T", "t"):
            return None
        return {"pid": pid, "checked": "state T"}

    def finish(self, ctx: FaultContext, args: HangArgs, injection: Injection) -> dict[str, Any]:
        host: LocalHost = ctx.platform
        now_pid = host.replica_pids().get(injection.target)
        return {"restarted": now_pid is not None and now_pid != injection.facts["pid"]}
