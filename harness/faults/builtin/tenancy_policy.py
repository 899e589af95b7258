"""The contract's enforcement, broken on purpose: ``exhaust_quota``, ``deny_admission`` and
``recreate_replica``.

What they teach: a team's capacity is not only its GPUs but what the platform lets it run.
A replica quota (a ResourceQuota on ``nvidia.com/gpu``) refuses the autoscaler's scale-up
exactly when the load needs it; an admission policy (Kyverno, OPA Gatekeeper, a validating
admission policy) rejects a replica that breaks the contract, so an evicted replica does not
come back; a VPA-style resize recreates a replica, a cold start under load. Each acts through
the tenant pool (the platform's own quota, admission rule and recreate), so the refusals are
the platform's: ``quota_refused`` and ``admission_denied`` events on the timeline,
``replica_recreated`` for the resize.
"""

from __future__ import annotations

import signal
from typing import Any, Literal

from pydantic import Field

from harness.config.base import MAX_MEMORY_MIB, MAX_NODE_REPLICAS
from harness.errors import ChaosError, FaultNoEffect, PlatformError
from harness.faults.builtin._common import alive
from harness.faults.builtin.tenancy_common import (
    FIRST,
    TenantFault,
    check_tenant,
    platform_fault,
    running,
    tenancy_host,
    tenant_field,
)
from harness.faults.contract import (
    FaultArgs,
    FaultContext,
    Injection,
    duration_field,
    ttl_field,
)
from harness.faults.policy import ttl_for
from harness.faults.procfs import address_space_limit
from harness.faults.registry import register

# -- exhaust_quota ----------------------------------------------------------------------------


class QuotaArgs(FaultArgs):
    tenant: str | None = tenant_field(FIRST)
    duration_s: float = duration_field(30.0)
    quota: int | None = Field(
        None,
        ge=1,
        le=MAX_NODE_REPLICAS,
        description=(
            "The quota in force during the fault, 1 to "
            f"{MAX_NODE_REPLICAS}; unset: the replicas the tenant runs now (no room to grow)."
        ),
    )
    ttl_s: float | None = ttl_field()


@register
class ExhaustQuota(TenantFault[QuotaArgs]):
    """Quota exhaustion: the tenant's replica quota is set to what it runs now (or to
    ``quota``), so the autoscaler's next scale-up is refused: the platform records each
    refusal (``quota_refused``: wanted, quota, replicas) and starts nothing. Real on the
    local platform (the tenant pool's quota is what its autoscaler is held to); on
    Kubernetes see ``k8s_exhaust_quota`` (the ResourceQuota patched).
    Proof: the quota in force is at most the running replicas. Revert: the quota before."""

    name = "exhaust_quota"
    args = QuotaArgs
    revert_action = "restore_quota"
    hold = "timed"
    summary = (
        "Quota exhaustion: the tenant's replica quota cut to what it runs, so scale-ups are "
        "refused (quota_refused on the timeline)"
    )
    proves = "the quota in force is at most the tenant's running replicas"

    def inject(self, ctx: FaultContext, args: QuotaArgs, target: str) -> Injection:
        host = tenancy_host(ctx, self.name)
        check_tenant(host, self.name, target)
        now = host.tenant_replicas(target)
        quota = args.quota if args.quota is not None else max(1, len(now))
        ttl = ttl_for(args.duration_s, args.ttl_s)
        before = host.quota(target)
        active = platform_fault(self.name, target, lambda: host.set_quota(target, before), ttl)
        with active.undone_on_error():
            host.set_quota(target, quota)
        facts = {"tenant": target, "quota": quota, "quota_before": before}
        return Injection(target, active, facts, latency_s=0.0)

    def prove(
        self, ctx: FaultContext, args: QuotaArgs, injection: Injection
    ) -> dict[str, Any] | None:
        host = tenancy_host(ctx, self.name)
        tenant = injection.target
        quota, replicas = host.quota(tenant), host.tenant_replicas(tenant)
        if quota != injection.facts["quota"]:
            return None
        if quota > len(replicas):
            raise FaultNoEffect(
                f"{self.name} {tenant}",
                f"quota {quota} leaves room: the tenant runs {len(replicas)} replicas",
            )
        return {
            **injection.facts,
            "affected": sorted(replicas),
            "replicas": len(replicas),
            "in_force": True,
            "checked": "quota(tenant) <= running replicas",
        }


# -- deny_admission ---------------------------------------------------------------------------


class AdmissionArgs(FaultArgs):
    tenant: str | None = tenant_field(FIRST)
    rule: Literal["memory-cap", "all"] = Field(
        "memory-cap",
        description=(
            "memory-cap: deny replicas of a tenant whose contract sets no memory_mib (a "
            "policy that requires a memory limit); all: deny every new replica of the tenant."
        ),
    )
    duration_s: float = duration_field(30.0)
    evict: bool = Field(
        True,
        description=(
            "Evict one of the tenant's replicas (SIGTERM) once the rule holds, so its "
            "relaunch meets the policy (admission_denied on the timeline)."
        ),
    )
    ttl_s: float | None = ttl_field()


def _denials(ctx: FaultContext, tenant: str, mark: int) -> list[dict[str, Any]]:
    return [
        e
        for e in ctx.timeline.events[mark:]
        if e["kind"] == "admission_denied" and (e.get("details") or {}).get("tenant") == tenant
    ]


@register
class DenyAdmission(TenantFault[AdmissionArgs]):
    """Admission denial: an admission rule for the tenant (like a Kyverno or OPA Gatekeeper
    policy) that rejects new replicas that break the contract (``memory-cap``: a tenant with
    no memory cap) or every new replica (``all``); with ``evict`` one replica is evicted
    (SIGTERM), and its relaunch is denied while the rule holds (the supervisor retries with
    its back-off, denied again each time). Real on the local platform (the tenant pool's
    admission check); on Kubernetes see ``k8s_deny_admission``.
    Proof: the pool's dry run says the tenant's next replica would be denied, and with
    ``evict`` an ``admission_denied`` event for the tenant is on the timeline. Revert: the
    rule lifted (the evicted replica is admitted at its next try)."""

    name = "deny_admission"
    args = AdmissionArgs
    revert_action = "allow_admission"
    hold = "timed"
    summary = (
        "Admission denial: a policy rejects the tenant's new replicas (no memory cap, or all); "
        "an evicted replica's relaunch is denied (admission_denied on the timeline)"
    )
    proves = "the pool's dry run denies the tenant's next replica; an evicted one is denied"

    def inject(self, ctx: FaultContext, args: AdmissionArgs, target: str) -> Injection:
        host = tenancy_host(ctx, self.name)
        mine = running(host, self.name, target) if args.evict else {}
        ttl = ttl_for(args.duration_s, args.ttl_s)
        mark = len(ctx.timeline.events)
        active = platform_fault(self.name, target, lambda: host.set_admission(target, None), ttl)
        evicted: dict[str, int] = {}
        with active.undone_on_error():
            host.set_admission(target, args.rule)
            reason = host.admission_would_deny(target)
            if reason is None:
                raise FaultNoEffect(
                    f"{self.name} {target}",
                    f"rule {args.rule} admits the tenant's replicas (it declares a memory "
                    "cap): use rule all",
                )
            if args.evict:
                rid = sorted(mine)[0]
                try:
                    evicted[rid] = host.kill_replica(rid, signal.SIGTERM)
                except PlatformError as exc:
                    raise FaultNoEffect(f"{self.name} {target}", str(exc)) from None
        facts = {"tenant": target, "rule": args.rule, "reason": reason, "evicted": evicted}
        injection = Injection(target, active, facts, latency_s=0.0)
        injection.scratch["mark"] = mark
        return injection

    def prove(
        self, ctx: FaultContext, args: AdmissionArgs, injection: Injection
    ) -> dict[str, Any] | None:
        host = tenancy_host(ctx, self.name)
        tenant = injection.target
        reason = host.admission_would_deny(tenant)
        if reason is None:
            return None
        evicted = injection.facts["evicted"]
        denied = _denials(ctx, tenant, injection.scratch["mark"])
        if evicted and not denied:
            return None
        return {
            **injection.facts,
            "reason": reason,
            "affected": sorted(evicted),
            "denied": [e["target"] for e in denied],
            "checked": "admission dry run"
            + (" and admission_denied on relaunch" if evicted else ""),
        }

    def no_effect(self, ctx: FaultContext, args: AdmissionArgs, injection: Injection) -> str:
        return (
            f"not seen: {self.proves} (evicted {injection.facts['evicted']}; no "
            "admission_denied event for the tenant yet)"
        )


# -- recreate_replica -------------------------------------------------------------------------


class RecreateArgs(FaultArgs):
    tenant: str | None = tenant_field(FIRST)
    replica: str | None = Field(
        None, description="The tenant's replica to recreate; unset: its first running one."
    )
    memory_mib: float | None = Field(
        None,
        gt=0,
        le=MAX_MEMORY_MIB,
        allow_inf_nan=False,
        description=(
            "The new memory cap of the replica, MiB, above 0 and at most "
            f"{MAX_MEMORY_MIB:,} (1 TiB); unset: the cap it has."
        ),
    )


@register
class RecreateReplica(TenantFault[RecreateArgs]):
    """VPA-style recreate: a replica of the tenant stopped gracefully and started again
    (same id) with a new memory cap, as the Vertical Pod Autoscaler's updater evicts a pod to
    resize it: a cold start under load (``replica_recreated`` on the timeline). The memory
    cap is the platform's (mps, mig: the per-process limit; time-slicing: declared, not
    enforced); the restart is real everywhere. CPU stand-in of the cap: the soft RLIMIT_AS
    the pool sets once the replica is Ready (CUDA: the memory fraction). Instant: nothing to
    revert; the run measures the cold start.
    Proof: the replica's pid changed and the new process runs, with the new cap in force
    (the pool's memory cap; the soft RLIMIT_AS in /proc/PID/limits where it is set)."""

    name = "recreate_replica"
    args = RecreateArgs
    summary = (
        "VPA-style recreate: a tenant's replica restarted with a new memory cap (a cold start "
        "under load)"
    )
    proves = "the replica's pid changed and the new one runs with the new cap"

    def inject(self, ctx: FaultContext, args: RecreateArgs, target: str) -> Injection:
        host = tenancy_host(ctx, self.name)
        mine = running(host, self.name, target)
        rid = args.replica or sorted(mine)[0]
        if rid not in mine:
            raise ChaosError(
                f"{self.name}: {rid!r} is not a running replica of tenant {target} "
                f"({', '.join(sorted(mine))})"
            )
        try:
            old, new = host.recreate_replica(rid, args.memory_mib)
        except PlatformError as exc:
            raise FaultNoEffect(f"{self.name} {target}", str(exc)) from None
        facts = {"tenant": target, "replica": rid, "old_pid": old, "new_pid": new}
        return Injection(target, None, facts)

    def prove(
        self, ctx: FaultContext, args: RecreateArgs, injection: Injection
    ) -> dict[str, Any] | None:
        host = tenancy_host(ctx, self.name)
        f = injection.facts
        if f["new_pid"] == f["old_pid"] or alive(f["old_pid"]) or not alive(f["new_pid"]):
            return None
        cap = host.memory_cap_mib(f["replica"])
        if args.memory_mib is not None and cap is not None and abs(cap - args.memory_mib) > 0.5:
            return None
        limit = address_space_limit(f["new_pid"])
        soft = None if limit is None or limit[0] is None else round(limit[0] / (1 << 20), 1)
        return {
            **f,
            "affected": [f["replica"]],
            "memory_cap_mib": cap,
            "soft_limit_mib": soft,
            "checked": "pid changed, the new process runs with the pool's new cap",
        }
