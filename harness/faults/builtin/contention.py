"""GPU compute contention on a node of the local platform: a co-located loop on the node's
device (CUDA: bf16 matmuls; CPU: a busy loop per core, pinned to the node's cores), warm
when ``warm_fault_workers`` ran before.

What it teaches: a noisy neighbour slows every step without failing anything; does the
latency SLO notice, and does the autoscaler react to a slower replica?
"""

from __future__ import annotations

import time
from typing import Any

from pydantic import Field

from harness.config.base import MAX_THREADS
from harness.errors import FaultNoEffect
from harness.faults import injectors
from harness.faults.contract import (
    Fault,
    FaultArgs,
    FaultContext,
    Injection,
    duration_field,
    ttl_field,
)
from harness.faults.hosts import LocalHost
from harness.faults.policy import OPEN_TTL_S, ttl_for
from harness.faults.registry import register
from harness.rundir import RunDir


class ContentionArgs(FaultArgs):
    node: str = Field(description="The node whose device gets a co-located loop.")
    duration_s: float = duration_field(30.0, "0 holds it until stop_contention or the end")
    workers: int | None = Field(
        None,
        ge=1,
        le=MAX_THREADS,
        description=(
            f"Loops to run, 1 to {MAX_THREADS} (default: 1 on CUDA, one per core of the node)."
        ),
    )
    ttl_s: float | None = ttl_field()


def worker_count(host: LocalHost, node: str, workers: int | None) -> int:
    """How many loops: as asked, else 1 on CUDA or a node without cores, else one a core."""
    device, cpus = host.node_device(node), host.node_cpus(node)
    return workers or (1 if device.startswith("cuda") or not cpus else len(cpus))


def _burn_proof(workers: list[injectors.WorkerProcess]) -> dict[str, Any]:
    first = [w.request({"op": "status"}).get("iterations", 0) for w in workers]
    cpu0 = [w.cpu_seconds() for w in workers]
    time.sleep(0.5)
    last = [w.request({"op": "status"}).get("iterations", 0) for w in workers]
    cpu = [w.cpu_seconds() - c for w, c in zip(workers, cpu0, strict=True)]
    return {"iterations": [b - a for a, b in zip(first, last, strict=True)], "cpu_s": cpu}


@register
class ContendCompute(Fault[ContentionArgs]):
    name = "contend_compute"
    platform = "local"
    args = ContentionArgs
    target_arg = "node"
    revert_action = "stop_contention"
    hold = "open"
    summary = "Compute contention: a co-located matmul loop (CPU: a busy loop per core)"
    proves = "every loop advances and burns CPU time over 0.5 s"

    def inject(self, ctx: FaultContext, args: ContentionArgs, target: str) -> Injection:
        host: LocalHost = ctx.platform
        device, cpus = host.node_device(target), host.node_cpus(target)
        count = worker_count(host, target, args.workers)
        pool = injectors.take_workers(target, device)
        warm = len(pool) >= count
        if not warm:
            log_path = RunDir(ctx.run_dir).worker_log
            pool += injectors.warm_workers(
                f"{target}-cold", device, cpus, count - len(pool), OPEN_TTL_S * 2, log_path
            )
            pool += injectors.take_workers(f"{target}-cold", device)
        ttl = ttl_for(args.duration_s, args.ttl_s)
        active = injectors.worker_fault(self.name, target, pool, ttl, ctx.run_dir)
        t0 = time.perf_counter()
        with active.undone_on_error():
            for w in pool:
                w.request({"op": "burn"})
        facts = {
            "device": device,
            "pids": [w.pid for w in pool],
            "cpus": sorted(cpus) if cpus else None,
            "warm": warm,
        }
        injection = Injection(target, active, facts, latency_s=time.perf_counter() - t0)
        injection.scratch["pool"] = pool
        return injection

    def prove(
        self, ctx: FaultContext, args: ContentionArgs, injection: Injection
    ) -> dict[str, Any] | None:
        proof = _burn_proof(injection.scratch["pool"])
        if not all(i > 0 for i in proof["iterations"]) or not all(
            c >= 0.02 for c in proof["cpu_s"]
        ):
            raise FaultNoEffect(
                f"{self.name} {injection.target}",
                f"the loops are not running and busy over 0.5 s: {proof}",
            )
        return {**injection.facts, **proof, "checked": "loops advancing and busy"}
