"""GPU memory exhaustion on a node of the local platform.

CUDA node: a hog process on the node's GPU (warm when ``warm_fault_workers`` ran before: a
warm hog fills an H100 in about 50 ms, a cold one needs seconds to import torch) allocates
until only ``leave_free_mib`` is free, or takes ``fraction`` of what is free (default:
leave 256 MiB); proof: ``mem_get_info`` in the hog and NVML. CPU node (the stand-in): the
soft RLIMIT_AS of the node's replicas (or ``replica``) is lowered to their size plus
``headroom_mib``, so their next large allocation fails as a CUDA OOM would; proof: the
limit in /proc/PID/limits, and a large completion sent to each replica fails or its
``gpuchaos_oom_total`` / engine-error counter moves.

What it teaches: GPU memory is not swappable; over-commitment crashes instead of slowing
down. Does the server survive an OOM and shed load, or does it die?
"""

from __future__ import annotations

import logging
import time
from typing import Any

import httpx
from pydantic import Field

from harness.config.base import MAX_MEMORY_MIB, MAX_TOKENS, MAX_WORDS
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
from harness.telemetry.nvml import gpu_free_mib
from harness.telemetry.scrape import scrape

log = logging.getLogger(__name__)

OOM_METRICS = ("gpuchaos_oom_total", "gpuchaos_engine_errors_total")


class MemoryArgs(FaultArgs):
    node: str = Field(description="The node whose GPU (CPU: whose replicas) runs out of memory.")
    leave_free_mib: float | None = Field(
        None, ge=0, le=MAX_MEMORY_MIB, allow_inf_nan=False,
        description=(
            "CUDA: allocate until this much is free, MiB (default 256 unless fraction); at "
            f"most {MAX_MEMORY_MIB:,} (1 TiB)."
        ),
    )  # fmt: skip
    fraction: float | None = Field(
        None,
        gt=0,
        le=1,
        description="CUDA: take this fraction of the free memory instead, above 0 up to 1.",
    )
    duration_s: float = duration_field(30.0, "0 holds it until release_gpu_memory or the end")
    ttl_s: float | None = ttl_field()
    replica: str | None = Field(None, description="CPU: limit only this replica of the node.")
    headroom_mib: float = Field(
        0.0, ge=0, le=MAX_MEMORY_MIB, allow_inf_nan=False,
        description=(
            "CPU: the lowered limit is the replica's size plus this, MiB; at most "
            f"{MAX_MEMORY_MIB:,} (1 TiB)."
        ),
    )  # fmt: skip
    probe_words: int = Field(
        30,
        ge=1,
        le=MAX_WORDS,
        description=f"CPU: words of the proving completion, 1 to {MAX_WORDS:,}.",
    )
    probe_max_tokens: int = Field(
        32,
        ge=1,
        le=MAX_TOKENS,
        description=f"CPU: max_tokens of that completion, 1 to {MAX_TOKENS:,}.",
    )


def _oom_count(port: int | None) -> float:
    if port is None:
        return 0.0
    samples = scrape(port)
    return sum(samples.get(name, 0.0) for name in OOM_METRICS)


def probe_allocations(ports: dict[int, int | None], words: int, max_tokens: int) -> dict[int, str]:
    """Send one completion that needs memory straight to each replica; what failed, by pid.
    Only a server error or no answer counts: a 4xx (a prompt longer than the model's
    context) says nothing about memory, and once made the proof pass with no fault at all.
    The defaults fit the tiny model's 256-token context (one token per byte) and every
    larger one."""
    failed: dict[int, str] = {}
    body = {"prompt": " ".join(["memory"] * words), "max_tokens": max_tokens}
    for pid, port in ports.items():
        if port is None:
            continue
        try:
            resp = httpx.post(f"http://127.0.0.1:{port}/v1/completions", json=body, timeout=10)
        except httpx.HTTPError as exc:
            failed[pid] = type(exc).__name__
            continue
        if resp.status_code >= 500:
            failed[pid] = f"HTTP {resp.status_code} {resp.text[:80]}"
    return failed


@register
class ExhaustGpuMemory(Fault[MemoryArgs]):
    name = "exhaust_gpu_memory"
    platform = "local"
    args = MemoryArgs
    target_arg = "node"
    revert_action = "release_gpu_memory"
    hold = "open"
    summary = "GPU memory exhaustion: a hog fills the GPU (CPU: the replicas' RLIMIT_AS lowered)"
    proves = "memory taken (mem_get_info, NVML); CPU: the limit set and an allocation failing"

    def inject(self, ctx: FaultContext, args: MemoryArgs, target: str) -> Injection:
        host: LocalHost = ctx.platform
        device = host.node_device(target)
        ttl = ttl_for(args.duration_s, args.ttl_s)
        if device.startswith("cuda"):
            return self._fill(ctx, args, target, device, ttl)
        pids = host.replica_pids(target)
        if args.replica is not None:
            pids = {k: v for k, v in pids.items() if k == args.replica}
        if not pids:
            raise FaultNoEffect(f"{self.name} {target}", "no running replica to limit")
        ports = {pid: host.replica_port(rid) for rid, pid in pids.items()}
        before = {pid: _oom_count(port) for pid, port in ports.items()}
        active, latency, limits = injectors.limit_address_space(
            self.name, target, list(pids.values()), args.headroom_mib, ttl, ctx.run_dir
        )
        facts = {"device": device, "pids": sorted(limits)}
        injection = Injection(target, active, facts, latency_s=latency)
        injection.scratch["cpu"] = {"ports": ports, "before": before, "limits": limits}
        return injection

    def _fill(
        self, ctx: FaultContext, args: MemoryArgs, target: str, device: str, ttl: float
    ) -> Injection:
        warm = injectors.take_workers(target, device)
        for extra in warm[1:]:
            extra.close()
        if warm:
            workers = warm[:1]
        else:
            log.warning("no warm fault worker on %s: starting one cold (seconds, not ms)", target)
            log_path = RunDir(ctx.run_dir).worker_log
            workers = [injectors.WorkerProcess(device, None, OPEN_TTL_S * 2, log_path)]
        active = injectors.worker_fault(self.name, target, workers, ttl, ctx.run_dir)
        leave = args.leave_free_mib
        if leave is None and args.fraction is None:
            leave = 256.0
        t0 = time.perf_counter()
        with active.undone_on_error():
            reply = workers[0].request({"op": "fill", "leave_free_mib": leave,
                                        "fraction": args.fraction})  # fmt: skip
        latency = time.perf_counter() - t0
        facts = {"device": device, "hog_pid": workers[0].pid, "warm": bool(warm)}
        injection = Injection(target, active, facts, latency_s=latency)
        injection.scratch["cuda"] = {"reply": reply, "leave": leave}
        return injection

    def prove(
        self, ctx: FaultContext, args: MemoryArgs, injection: Injection
    ) -> dict[str, Any] | None:
        if "cuda" in injection.scratch:
            return self._prove_cuda(args, injection)
        cpu = injection.scratch["cpu"]
        ports, before, limits = cpu["ports"], cpu["before"], cpu["limits"]
        if "failed" not in cpu:  # once: a large completion to each replica
            failed = probe_allocations(ports, args.probe_words, args.probe_max_tokens)
            cpu["failed"] = [f"pid {pid}: {what}" for pid, what in failed.items()]
        moved = {pid for pid, port in ports.items() if _oom_count(port) > before[pid]}
        if not cpu["failed"] and not moved:
            return None
        return {
            "device": injection.facts["device"],
            "pids": sorted(limits),
            "soft_limit_mib": {pid: round(v / (1 << 20), 1) for pid, v in limits.items()},
            "failed_allocations": cpu["failed"],
            "oom_metric_moved": sorted(moved),
            "checked": "/proc/PID/limits and a failing allocation",
        }

    def _prove_cuda(self, args: MemoryArgs, injection: Injection) -> dict[str, Any]:
        reply, leave = injection.scratch["cuda"]["reply"], injection.scratch["cuda"]["leave"]
        device = injection.facts["device"]
        nvml_free = gpu_free_mib(device)
        total = float(reply.get("total_mib") or 0.0)
        slack = max(512.0, 0.02 * total)
        if leave is not None:
            want_free = leave + slack
            taken_ok = float(reply.get("free_mib_after", 1e12)) <= want_free
            nvml_ok = nvml_free is None or nvml_free <= want_free
        else:
            wanted = float(reply.get("free_mib_before", 0.0)) * float(args.fraction or 0.0)
            taken_ok = float(reply.get("taken_mib", 0.0)) >= 0.9 * wanted - slack
            nvml_ok = True
        if not (reply.get("ok") and taken_ok and nvml_ok):
            raise FaultNoEffect(
                f"{self.name} {injection.target}",
                f"memory not taken: hog said {reply}, NVML free {nvml_free} MiB",
            )
        return {
            "device": device,
            "hog_pid": injection.facts["hog_pid"],
            "warm": injection.facts["warm"],
            "hog_latency_s": reply.get("latency_s"),
            "taken_mib": round(float(reply.get("taken_mib", 0.0)), 1),
            "free_mib_after": round(float(reply.get("free_mib_after", 0.0)), 1),
            "nvml_free_mib": nvml_free,
            "checked": "mem_get_info and NVML free memory",
        }

    def no_effect(self, ctx: FaultContext, args: MemoryArgs, injection: Injection) -> str:
        cpu = injection.scratch.get("cpu", {})
        return (
            f"soft RLIMIT_AS set to {cpu.get('limits')} (seen in /proc/PID/limits) but no "
            f"allocation failed: {args.probe_words}-word completions succeeded and "
            f"{'/'.join(OOM_METRICS)} did not move"
        )
