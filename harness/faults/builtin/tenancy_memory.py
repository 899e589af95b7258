"""A noisy neighbour's memory spike: ``spike_neighbour_memory``.

What it teaches: whether one tenant's memory spike can take the other tenants down depends
on how the GPU is shared. Under time-slicing the device's memory is one pool with no
isolation: the neighbour's allocation leaves the others nothing, and their next large
allocation fails (a CUDA OOM). Under MPS (a per-client memory cap) and MIG (a slice with its
own memory), and with a GPU per replica, the spike comes out of the tenant's own share: it
hurts only itself.
"""

from __future__ import annotations

import logging
import re
import time
from typing import Any

from pydantic import Field

from harness.config.base import MAX_MEMORY_MIB, MAX_TOKENS, MAX_WORDS
from harness.errors import ChaosError, FaultNoEffect
from harness.faults import hookclient, injectors
from harness.faults.active import begin
from harness.faults.builtin.memory import (
    OOM_METRICS,
    ExhaustGpuMemory,
    MemoryArgs,
    _oom_count,
    probe_allocations,
)
from harness.faults.builtin.tenancy_common import (
    LAST,
    TenantFault,
    all_replicas,
    declared_mib,
    running,
    tenancy_host,
    tenancy_spec,
    tenant_field,
    umbrella,
    workload_kind,
)
from harness.faults.contract import (
    FaultArgs,
    FaultContext,
    Injection,
    duration_field,
    ttl_field,
)
from harness.faults.hosts import TenancyHost
from harness.faults.policy import ttl_for
from harness.faults.procfs import start_time
from harness.faults.registry import register
from harness.faults.state import Target
from harness.telemetry.nvml import gpu_free_mib

log = logging.getLogger(__name__)

#: The fault hook's allocation in a replica's own CUDA context (workloads/faulthook.py).
HOG_KIND = "hog"
#: What the hook answers a hog its process's cap refused (the allocator's OOM).
HOG_REFUSED_STATUS = 507
#: A spike allocates this much at a time until the cap refuses a piece, so it takes what fits
#: under the cap less at most one piece: a process left with nothing at all cannot even read
#: a socket (asyncio's recv raises MemoryError), so its hog could never be cleared.
HOG_CHUNK_MIB = 64.0


class SpikeMemoryArgs(FaultArgs):
    tenant: str | None = tenant_field(LAST)
    mib: float | None = Field(
        None,
        gt=0,
        le=MAX_MEMORY_MIB,
        allow_inf_nan=False,
        description=(
            "MiB each of the tenant's replicas allocates on its device, above 0 and at most "
            f"{MAX_MEMORY_MIB:,} (1 TiB); unset: all it can (time-slicing: the whole device; "
            "mps, mig, exclusive: its whole cap)."
        ),
    )
    duration_s: float = duration_field(20.0)
    ttl_s: float | None = ttl_field()
    probe_words: int = Field(
        30,
        ge=1,
        le=MAX_WORDS,
        description=(
            f"CPU: words of the completion that proves an allocation fails, 1 to {MAX_WORDS:,}."
        ),
    )
    probe_max_tokens: int = Field(
        32,
        ge=1,
        le=MAX_TOKENS,
        description=f"CPU: max_tokens of that completion, 1 to {MAX_TOKENS:,}.",
    )


def pool_node(view: str, tenant: str) -> str:
    """The pool node of a tenant's view node (``teamb-gpu0`` or ``teamb-gpu0-s1``: ``gpu0``)."""
    name = view.removeprefix(f"{tenant}-")
    return re.sub(r"-s\d+$", "", name)


def headrooms(
    ctx: FaultContext, host: TenancyHost, tenant: str, mine: list[str], mib: float | None
) -> dict[str, float]:
    """The device memory (MiB) each affected replica has left once ``tenant``'s replicas
    ``mine`` allocated ``mib`` each (None: all they can).

    time-slicing: one pool per device, shared by every co-resident replica: what is left is
    the GPU's memory less every co-resident replica's declared use and the spike, floor 0,
    for all of them (the neighbours starve). Otherwise each of the tenant's replicas has its
    own cap, and only they lose: their cap less the spike, floor 0."""
    gpu = float(host.gpu_memory_mib)
    out: dict[str, float] = {}
    if host.sharing == "time-slicing":
        for rid in mine:
            group = sorted(set(host.co_resident(rid)) | {rid})
            spikers = [r for r in group if host.tenant_of(r) == tenant]
            spike = (gpu if mib is None else mib) * len(spikers)
            free = max(0.0, gpu - sum(declared_mib(ctx, host, r) for r in group) - spike)
            for r in group:
                out[r] = min(out.get(r, free), free)
        return out
    for rid in mine:
        cap = host.memory_cap_mib(rid)
        own = gpu if cap is None else float(cap)
        out[rid] = max(0.0, own - (own if mib is None else mib))
    return out


def _group(headroom: dict[str, float]) -> dict[float, list[str]]:
    by: dict[float, list[str]] = {}
    for rid, mib in sorted(headroom.items()):
        by.setdefault(round(mib, 3), []).append(rid)
    return by


@register
class SpikeNeighbourMemory(TenantFault[SpikeMemoryArgs]):
    """Noisy neighbour, memory: the tenant's replicas allocate ``mib`` each on their device.
    Under time-slicing the device's memory is one pool, so every replica that shares the
    device (any tenant) is left what the spike leaves free; under mps, mig and exclusive the
    spike comes out of the tenant's own cap and only its replicas are short.

    CPU stand-in: the soft RLIMIT_AS of each affected replica is lowered to its size plus
    what it has left (time-slicing: ``gpu_memory_mib`` less the co-resident replicas'
    declared use, less the spike, floor 0; otherwise its cap less the spike, floor 0), so its
    next large allocation fails as a CUDA OOM would. Under mps, mig and exclusive, on CPU as
    on CUDA, each of the tenant's replicas is asked (fault hook ``hog``) to allocate inside
    its own capped process (CPU: the soft RLIMIT_AS the platform set at Ready; CUDA: its
    memory fraction), so its cap takes the hit. CUDA time-slicing: a hog worker fills the
    device (as exhaust_gpu_memory does).
    Proof: time-slicing on CPU, the limits in /proc/PID/limits and a large completion failing
    on an affected replica (or its OOM counter moving); otherwise the hook's answer (memory
    held, or refused by the cap: HTTP 507), and on a CUDA time-sliced GPU the hog's and
    NVML's free memory. Revert: the limits restored, the hog freed, the hook cleared."""

    name = "spike_neighbour_memory"
    neighbour = True
    args = SpikeMemoryArgs
    revert_action = "release_neighbour_memory"
    hold = "timed"
    summary = (
        "Noisy neighbour, memory: a tenant's replicas allocate on their device; time-slicing "
        "starves every co-resident tenant (CPU stand-in: their RLIMIT_AS lowered to what the "
        "spike leaves), mps/mig/exclusive only the tenant itself (its hog meets its own cap)"
    )
    proves = (
        "time-slicing: the lowered limits in /proc/PID/limits and a large completion failing "
        "(CUDA: memory taken); otherwise the tenant's own hog held or refused by its cap"
    )

    def plan(self, ctx: FaultContext, args: SpikeMemoryArgs, target: str) -> dict[str, Any]:
        tenancy = tenancy_spec(ctx)
        sharing = str(getattr(tenancy, "sharing", "unknown"))
        reach = (
            "every replica on its GPUs, of any tenant (one memory pool)"
            if sharing == "time-slicing"
            else "only its own replicas (its cap, slice or GPU)"
        )
        size = "all it can" if args.mib is None else f"{args.mib:g} MiB"
        return {
            "would": (
                f"would spike tenant {target}'s memory ({size} a replica) for "
                f"{args.duration_s:g} s under {sharing}: it reaches {reach}"
            ),
            "sharing": sharing,
        }

    def inject(self, ctx: FaultContext, args: SpikeMemoryArgs, target: str) -> Injection:
        host = tenancy_host(ctx, self.name)
        mine = running(host, self.name, target)
        ttl = ttl_for(args.duration_s, args.ttl_s)
        device = host.node_device(host.replica_node(next(iter(mine))))
        if host.sharing != "time-slicing":  # CPU too: its cap is the RLIMIT_AS set at Ready
            return self._hook_hog(ctx, host, args, target, mine, ttl)
        if device.startswith("cuda"):
            return self._fill(ctx, host, args, target, mine, device, ttl)
        pids = all_replicas(host)
        room = {
            r: m for r, m in headrooms(ctx, host, target, list(mine), args.mib).items() if r in pids
        }
        active, done = umbrella(self.name, target)
        limits: dict[int, int] = {}
        t0 = time.perf_counter()
        with active.undone_on_error():
            for mib, rids in _group(room).items():
                one, _, got = injectors.limit_address_space(
                    self.name, target, [pids[r] for r in rids], mib, ttl, ctx.run_dir
                )
                done.append(one)
                limits.update(got)
        latency = time.perf_counter() - t0
        ports = {pids[r]: host.replica_port(r) for r in room}
        probed = {pids[r]: ports[pids[r]] for r in room if workload_kind(ctx, host, r) == "llm"}
        facts = {
            "tenant": target,
            "sharing": host.sharing,
            "device": device,
            "affected": sorted(room),
        }
        injection = Injection(target, active, facts, latency_s=latency)
        injection.scratch.update(
            room=room,
            pids={r: pids[r] for r in room},
            limits=limits,
            probed=probed,
            before={pid: _oom_count(port) for pid, port in probed.items()},
        )
        return injection

    # -- CUDA -------------------------------------------------------------------------------

    def _fill(
        self,
        ctx: FaultContext,
        host: TenancyHost,
        args: SpikeMemoryArgs,
        target: str,
        mine: dict[str, int],
        device: str,
        ttl: float,
    ) -> Injection:
        """time-slicing on a GPU: a hog worker takes ``mib`` (or all but 256 MiB) of it; a
        worker warmed for the pool node (``warm_fault_workers`` on ``gpu0``) is used."""
        rid = next(iter(mine))
        node = pool_node(host.replica_node(rid), target)
        free = gpu_free_mib(device)
        leave = 256.0 if args.mib is None or free is None else max(0.0, free - args.mib)
        mem_args = MemoryArgs.model_validate(
            {"node": node, "leave_free_mib": leave, "duration_s": args.duration_s}
        )
        hog = ExhaustGpuMemory()
        injection = hog._fill(ctx, mem_args, node, device, ttl)
        affected = sorted(set(host.co_resident(rid)) | {rid})
        injection.target = target
        injection.facts.update(tenant=target, sharing=host.sharing, affected=affected)
        injection.scratch["mem_args"] = mem_args
        return injection

    def _hook_hog(
        self,
        ctx: FaultContext,
        host: TenancyHost,
        args: SpikeMemoryArgs,
        target: str,
        mine: dict[str, int],
        ttl: float,
    ) -> Injection:
        """mps, mig and exclusive (CPU and CUDA): each of the tenant's replicas allocates
        inside its own capped process (the hook's ``hog``), so the cap, not the neighbours,
        takes the hit."""
        active, done = umbrella(self.name, target)
        replies: dict[str, Any] = {}
        t0 = time.perf_counter()
        with active.undone_on_error():
            for rid, pid in mine.items():
                port, token = host.replica_port(rid), host.fault_token(rid)
                if port is None or token is None:
                    raise FaultNoEffect(f"{self.name} {target}", f"{rid} has no fault hook")
                cap = host.memory_cap_mib(rid) or host.gpu_memory_mib
                mib = float(args.mib if args.mib is not None else cap)
                hook = {"host": "127.0.0.1", "port": str(port), "token": token}
                one = begin(
                    "hook",
                    self.name,
                    rid,
                    [Target(pid, start_time(pid))],
                    ttl,
                    ctx.run_dir,
                    hook=hook,
                )
                done.append(one)
                replies[rid] = self._take(port, token, mib, f"{self.name} {target}", rid)
        facts = {"tenant": target, "sharing": host.sharing, "affected": sorted(mine)}
        injection = Injection(target, active, facts, latency_s=time.perf_counter() - t0)
        injection.scratch["hog"] = replies
        return injection

    @staticmethod
    def _take(port: int, token: str, mib: float, where: str, rid: str) -> dict[str, Any]:
        """Allocate ``mib`` in the replica's own process, :data:`HOG_CHUNK_MIB` at a time,
        until it holds them all or its cap refuses a piece (HTTP 507, the allocator's own
        OOM): a spike takes what fits under the cap and leaves the tenant short, as an
        allocation loop in a capped MPS client or MIG slice does."""
        taken, refused = 0.0, ""
        while taken < mib:
            size = min(HOG_CHUNK_MIB, mib - taken)
            try:
                hookclient.call(port, token, {"kind": HOG_KIND, "mib": size})
            except ChaosError as exc:
                if f"HTTP {HOG_REFUSED_STATUS}" not in str(exc):
                    raise FaultNoEffect(where, f"{rid}: {exc}") from None
                refused = str(exc)[:200]  # the cap: what is left is less than a piece
                break
            taken += size
        return {"taken_mib": round(taken, 1), "wanted_mib": round(mib, 1), "capped": refused}

    # -- proof ------------------------------------------------------------------------------

    def prove(
        self, ctx: FaultContext, args: SpikeMemoryArgs, injection: Injection
    ) -> dict[str, Any] | None:
        base = {
            "tenant": injection.facts["tenant"],
            "sharing": injection.facts["sharing"],
            "affected": injection.facts["affected"],
        }
        if "hog" in injection.scratch:
            return {**base, "hog": injection.scratch["hog"], "checked": "the hook's hog answer"}
        if "mem_args" in injection.scratch:
            proof = ExhaustGpuMemory()._prove_cuda(injection.scratch["mem_args"], injection)
            return {**base, **proof}
        s = injection.scratch
        if "failed" not in s:  # once: a completion that needs memory to each affected replica
            s["failed"] = probe_allocations(s["probed"], args.probe_words, args.probe_max_tokens)
        moved = {pid for pid, port in s["probed"].items() if _oom_count(port) > s["before"][pid]}
        if not (set(s["failed"]) or moved):  # a server that preallocated all it needs may
            return None  # not notice; the spike took hold once any allocation fails
        host = tenancy_host(ctx, self.name)
        tenant = injection.facts["tenant"]
        return {
            **base,
            "neighbours_affected": sorted(r for r in s["room"] if host.tenant_of(r) != tenant),
            "headroom_mib": {r: round(m, 1) for r, m in s["room"].items()},
            "soft_limit_mib": {
                r: round(s["limits"][pid] / (1 << 20), 1)
                for r, pid in s["pids"].items()
                if pid in s["limits"]
            },
            "failed_allocations": {
                r: s["failed"][pid] for r, pid in s["pids"].items() if pid in s["failed"]
            },
            "oom_metric_moved": sorted(moved),
            "checked": "/proc/PID/limits and a large completion failing on an affected replica",
        }

    def no_effect(self, ctx: FaultContext, args: SpikeMemoryArgs, injection: Injection) -> str:
        s = injection.scratch
        return (
            f"limits set with headroom {s.get('room')} MiB (seen in /proc/PID/limits), but no "
            f"affected replica failed a {args.probe_words}-word completion nor moved "
            f"{'/'.join(OOM_METRICS)}; a spike smaller than what is free leaves room (raise mib "
            "or leave it unset), and a server that preallocated its memory does not notice"
        )
