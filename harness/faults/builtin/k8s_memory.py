"""GPU memory exhaustion inside a pod: the fault worker runs in the target pod (exec), so it
shares that pod's GPU, and allocates until ``leave_free_mib`` is free.

It exits when the exec stream closes or its own time-to-live runs out, so the memory comes
back even if the harness dies: that is why it needs no state file. What it teaches: the
same as on the local platform (does the server survive an OOM?), on the real deployment.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from pydantic import Field

from harness.config.base import MAX_DURATION_S, MAX_MEMORY_MIB
from harness.errors import ChaosError, FaultNoEffect, PlatformError
from harness.faults.active import in_process
from harness.faults.builtin._kube import pick_pod, read_reply, worker_command
from harness.faults.contract import (
    Fault,
    FaultArgs,
    FaultContext,
    Injection,
    duration_field,
)
from harness.faults.hosts import ClusterHost
from harness.faults.policy import OPEN_TTL_S
from harness.faults.registry import register

log = logging.getLogger(__name__)

_EXEC_READY_TIMEOUT_S = 180.0  # torch import and the CUDA context in the pod
_CONTAINER = "server"


class PodMemoryArgs(FaultArgs):
    replica: str | None = Field(
        None, description="The workload pod whose GPU fills (default: the first Ready by name)."
    )
    leave_free_mib: float = Field(
        1024.0, ge=0, le=MAX_MEMORY_MIB, allow_inf_nan=False,
        description=f"Allocate until this much is free, MiB; at most {MAX_MEMORY_MIB:,} (1 TiB).",
    )  # fmt: skip
    duration_s: float = duration_field(30.0, "0 holds it until release_gpu_memory or the end")
    ttl_s: float | None = Field(
        None, gt=0, le=MAX_DURATION_S, allow_inf_nan=False,
        description=(
            "The worker's own time-to-live in the pod, seconds (default: duration_s + 120); "
            f"at most {MAX_DURATION_S} (7 days)."
        ),
    )  # fmt: skip


def _ttl(args: PodMemoryArgs) -> float:
    if args.ttl_s is not None:
        return args.ttl_s
    return args.duration_s + 120.0 if args.duration_s > 0 else OPEN_TTL_S


@register
class ExhaustPodGpuMemory(Fault[PodMemoryArgs]):
    name = "exhaust_gpu_memory"
    platform = "kubernetes"
    args = PodMemoryArgs
    target_arg = "replica"
    revert_action = "release_gpu_memory"
    hold = "open"
    aliases = {"pod": "replica", "hold_s": "duration_s"}
    mechanism = "exec"
    summary = "GPU memory exhaustion inside a pod: the fault worker (exec) fills its GPU"
    proves = "the worker in the pod reports memory taken"

    def pick_target(self, ctx: FaultContext, args: PodMemoryArgs) -> str:
        return str(pick_pod(ctx.platform, None).metadata.name)

    def plan(self, ctx: FaultContext, args: PodMemoryArgs, target: str) -> dict[str, Any]:
        host: ClusterHost = ctx.platform
        name = pick_pod(host, target).metadata.name
        command = " ".join(worker_command(_ttl(args)))
        return {
            "pod": name,
            "would": f"would exec {command} in {host.namespace}/{name} and fill its GPU to "
            f"{args.leave_free_mib:g} MiB free for {args.duration_s:g} s",
        }

    def inject(self, ctx: FaultContext, args: PodMemoryArgs, target: str) -> Injection:
        from kubernetes.stream import stream

        host: ClusterHost = ctx.platform
        name = pick_pod(host, target).metadata.name
        try:
            resp = stream(
                host.core().connect_get_namespaced_pod_exec,
                name,
                host.namespace,
                container=_CONTAINER,
                command=worker_command(_ttl(args)),
                stdin=True,
                stdout=True,
                stderr=True,
                tty=False,
                _preload_content=False,
            )
        except Exception as exc:
            raise PlatformError(f"cannot exec the fault worker in pod {name}: {exc}") from exc
        injection = Injection(target, None, {"pod": name})

        def free() -> None:
            try:
                resp.write_stdin(json.dumps({"op": "free"}) + "\n")
                injection.scratch["freed"] = read_reply(resp, 30.0)
            finally:
                resp.close()  # stdin closes: the worker exits and whatever it holds is freed
                log.info("pod %s: GPU memory fault over", name)

        try:
            warm = read_reply(resp, _EXEC_READY_TIMEOUT_S)
            if not warm.get("ok"):
                raise ChaosError(f"the fault worker in {name} failed to start: {warm.get('error')}")
            injection.active = in_process(self.name, target, free)
            t0 = time.perf_counter()
            resp.write_stdin(
                json.dumps({"op": "fill", "leave_free_mib": args.leave_free_mib}) + "\n"
            )
            injection.scratch["filled"] = read_reply(resp, 60.0)
            injection.latency_s = time.perf_counter() - t0
        except BaseException:
            if injection.active is not None:
                injection.active.revert()
            else:
                resp.close()
            raise
        return injection

    def prove(
        self, ctx: FaultContext, args: PodMemoryArgs, injection: Injection
    ) -> dict[str, Any] | None:
        filled = injection.scratch["filled"]
        taken = float(filled.get("taken_mib") or 0.0)
        if not filled.get("ok") or taken <= 0:
            raise FaultNoEffect(
                f"{self.name} {injection.facts['pod']}",
                f"no GPU memory taken ({filled.get('error') or filled})",
            )
        free_after = float(filled.get("free_mib_after", -1))
        log.info("pod %s: took %.0f MiB of GPU memory, %.0f MiB free",
                 injection.facts["pod"], taken, free_after)  # fmt: skip
        return {
            "taken_mib": round(taken, 1),
            "free_mib_after": round(free_after, 1),
            "checked": "the worker's report of memory taken",
        }

    def finish(
        self, ctx: FaultContext, args: PodMemoryArgs, injection: Injection
    ) -> dict[str, Any]:
        return {"fill": injection.scratch["filled"], "free": injection.scratch.get("freed")}
