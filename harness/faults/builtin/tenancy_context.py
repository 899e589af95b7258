"""A neighbour's context fault: ``fault_neighbour_context``.

What it teaches: a fatal fault in one CUDA context (an XID, an illegal memory access, a
crashed process mid-kernel) stays in that context only where the GPU is partitioned. On a
time-sliced GPU it reaches every context on the device, and a fatal fault of one MPS client
reaches every client of that MPS server (NVIDIA's MPS documentation, Volta and later); a MIG
slice or a GPU of its own keeps it out. So a batch job's crash can take the other team's
inference down with it, unless the sharing mode draws a line.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, Literal

from pydantic import Field

from harness.errors import ChaosError, FaultNoEffect, PlatformError
from harness.faults import hookclient
from harness.faults.builtin._common import alive
from harness.faults.builtin.gpu import FAILURES_METRIC, _poison_proof, _xid_field, poison_process
from harness.faults.builtin.tenancy_common import (
    LAST,
    TenantFault,
    all_replicas,
    neighbours_on_device,
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
from harness.faults.registry import register

#: The sharing modes in which a fatal context fault reaches the other contexts on the GPU.
SHARED_FAULT_DOMAIN = ("time-slicing", "mps")


class ContextArgs(FaultArgs):
    tenant: str | None = tenant_field(LAST)
    kind: Literal["poison", "crash"] = Field(
        "poison",
        description=(
            "poison: the tenant's replicas' contexts are poisoned (they live, every inference "
            "fails until a restart); crash: its replicas are killed (SIGKILL)."
        ),
    )
    xid: int = _xid_field()
    duration_s: float = duration_field(20.0)
    ttl_s: float | None = ttl_field()


def blast(host: TenancyHost, tenant: str, mine: list[str]) -> list[str]:
    """The other tenants' replicas the fault reaches: those sharing a device with the
    tenant's under time-slicing and mps; none under mig and exclusive."""
    if host.sharing not in SHARED_FAULT_DOMAIN:
        return []
    return neighbours_on_device(host, tenant, mine)


def _as_kind(ctx: FaultContext, kind: str) -> Any:
    """``ctx`` as the poison proof reads it, with the platform's workload kind a given
    replica's (the proof probes with the request that replica's workload serves)."""
    platform = SimpleNamespace(workload=SimpleNamespace(kind=kind))
    return SimpleNamespace(platform=platform, timeline=ctx.timeline, run_dir=ctx.run_dir)


@register
class FaultNeighbourContext(TenantFault[ContextArgs]):
    """Neighbour context fault: the tenant's replicas are poisoned (as poison_replica does:
    the process lives, every inference fails with the CUDA error) or crashed (SIGKILL).
    Under time-slicing and mps the replicas of OTHER tenants on the same GPU are poisoned
    too (a fatal fault reaches every context on a time-sliced GPU and every client of an MPS
    server); under mig and exclusive it stays in the tenant.
    CPU stand-in: the fault hook's poison (every forward raises the CUDA error text) on each
    affected replica; CUDA: a real device-side assert in each affected replica's context.
    Proof: each poisoned replica fails a probe with "CUDA error" and its failure counter
    moves (or it has already restarted); each crashed one's pid is gone. Revert: the poisoned
    replicas are restarted (SIGKILL; the supervisor starts them again), as a poisoned
    context clears only with a restart; the detached reverter does the same after the
    time-to-live."""

    name = "fault_neighbour_context"
    neighbour = True
    args = ContextArgs
    revert_action = "clear_neighbour_context"
    hold = "timed"
    summary = (
        "Neighbour context fault: a tenant's replicas poisoned or crashed; on a time-sliced "
        "or MPS-shared GPU the other tenants' replicas there are poisoned too, under mig and "
        "exclusive not"
    )
    proves = "every affected replica fails a probe with 'CUDA error' (or restarted) or is gone"

    def plan(self, ctx: FaultContext, args: ContextArgs, target: str) -> dict[str, Any]:
        sharing = str(getattr(tenancy_spec(ctx), "sharing", "unknown"))
        reach = (
            "its replicas and every other tenant's on the same GPU (one fault domain)"
            if sharing in SHARED_FAULT_DOMAIN
            else "its replicas only (a slice or GPU of their own)"
        )
        return {
            "would": (
                f"would {args.kind} tenant {target}'s replicas for {args.duration_s:g} s "
                f"under {sharing}: it reaches {reach}"
            ),
            "sharing": sharing,
        }

    def inject(self, ctx: FaultContext, args: ContextArgs, target: str) -> Injection:
        host = tenancy_host(ctx, self.name)
        mine = running(host, self.name, target)
        others = blast(host, target, sorted(mine))
        pids = all_replicas(host)
        poisoned = [r for r in others if r in pids]
        crashed: dict[str, int] = {}
        if args.kind == "poison":
            poisoned = sorted(mine) + poisoned
        ttl = ttl_for(args.duration_s, args.ttl_s)
        active, done = umbrella(self.name, target)
        before: dict[str, float | None] = {}
        doors: dict[str, tuple[int, int]] = {}
        with active.undone_on_error():
            for rid in poisoned:  # the neighbours first: a crash must not race their poison
                pid, port, token = pids[rid], host.replica_port(rid), host.fault_token(rid)
                if port is None or token is None:
                    raise FaultNoEffect(f"{self.name} {target}", f"{rid} has no fault hook")
                before[rid] = hookclient.metric_total(port, FAILURES_METRIC)
                try:
                    done.append(
                        poison_process(self.name, rid, port, token, pid, args.xid, ttl, ctx.run_dir)
                    )
                except ChaosError as exc:
                    raise FaultNoEffect(f"{self.name} {target}", f"{rid}: {exc}") from None
                doors[rid] = (pid, port)
            if args.kind == "crash":
                for rid in sorted(mine):
                    try:
                        crashed[rid] = host.kill_replica(rid)
                    except PlatformError as exc:
                        raise FaultNoEffect(f"{self.name} {target}", str(exc)) from None
        facts = {
            "tenant": target,
            "sharing": host.sharing,
            "kind": args.kind,
            "xid": args.xid,
            "affected": sorted(set(poisoned) | set(crashed)),
        }
        injection = Injection(target, active, facts)
        injection.scratch.update(doors=doors, before=before, crashed=crashed)
        return injection

    def prove(
        self, ctx: FaultContext, args: ContextArgs, injection: Injection
    ) -> dict[str, Any] | None:
        host = tenancy_host(ctx, self.name)
        s = injection.scratch
        seen: dict[str, str] = {}
        for rid, pid in s["crashed"].items():
            if alive(pid):
                return None
            seen[rid] = f"crashed (pid {pid} gone)"
        for rid, (pid, port) in s["doors"].items():
            if not alive(pid):
                seen[rid] = "poisoned, already restarted"
                continue
            kind_ctx = _as_kind(ctx, workload_kind(ctx, host, rid))
            proof = _poison_proof(kind_ctx, pid, port, s["before"][rid])
            if not proof["poisoned"]:
                s["last"] = {rid: proof}
                return None
            seen[rid] = f"poisoned: probe {proof['probe_status']} {proof['probe_error'][:60]}"
        tenant = injection.facts["tenant"]
        neighbours = sorted(r for r in seen if host.tenant_of(r) != tenant)
        return {
            **injection.facts,
            "replicas": seen,
            "neighbours_affected": neighbours,
            "contained": not neighbours,
            "checked": "probes failed with CUDA error / pids gone",
        }

    def no_effect(self, ctx: FaultContext, args: ContextArgs, injection: Injection) -> str:
        return f"not seen: {self.proves}; last probe: {injection.scratch.get('last')}"

    def finish(self, ctx: FaultContext, args: ContextArgs, injection: Injection) -> dict[str, Any]:
        host = tenancy_host(ctx, self.name)
        now = all_replicas(host)
        was = {
            **{r: p for r, (p, _) in injection.scratch["doors"].items()},
            **injection.scratch["crashed"],
        }
        return {"restarted": sorted(r for r, p in was.items() if now.get(r) not in (None, p))}
