"""What the tenancy faults share (not faults: the registry imports this module like the
others and finds nothing registered in it): the tenant pool they act through, the tenant
they aim at when none is named, who shares a device with whom, and an in-process fault with
a time-to-live.

Why the tenant pool is asked for at run time: a tenancy fault needs a platform with tenants
(an experiment with a ``tenancy`` block); on a single-tenant run it refuses with one line
instead of failing on a missing method half-way through.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, ClassVar, TypeVar

from pydantic import Field

from harness.errors import ChaosError, FaultNoEffect
from harness.faults.active import ActiveFault, in_process
from harness.faults.contract import Fault, FaultArgs, FaultContext
from harness.faults.hosts import TenancyHost

#: What the ``tenant`` argument says, per default pick.
FIRST = "the first tenant of tenancy.tenants (the service under test)"
LAST = "the last tenant of tenancy.tenants (the neighbour)"


def tenant_field(default_pick: str) -> Any:
    """The ``tenant`` argument (the target) of a tenancy fault."""
    return Field(
        None,
        pattern=r"^[a-z][a-z0-9]{0,19}$",
        description=(
            f"The tenant the fault is aimed at (a tenancy.tenants[].name); unset: {default_pick}."
        ),
    )


def tenancy_host(ctx: FaultContext, fault: str) -> TenancyHost:
    """The run's tenant pool; ChaosError when the run has no tenants."""
    host = ctx.platform
    if not callable(getattr(host, "tenant_names", None)):
        raise ChaosError(
            f"{fault} needs tenants: an experiment with a tenancy block (gpuchaos.tenancy), "
            "run on the local platform"
        )
    pool: TenancyHost = host
    return pool


def check_tenant(host: TenancyHost, fault: str, tenant: str) -> None:
    """ChaosError naming the tenants when ``tenant`` is not one of them."""
    names = host.tenant_names()
    if tenant not in names:
        raise ChaosError(f"{fault}: tenant {tenant!r} is not one of {', '.join(names)}")


def pick(ctx: FaultContext, fault: str, last: bool) -> str:
    """The default target: the first tenant (``last``: the last one, the neighbour)."""
    names = tenancy_host(ctx, fault).tenant_names()
    if not names:
        raise ChaosError(f"{fault}: the run has no tenant")
    return names[-1] if last else names[0]


A = TypeVar("A", bound=FaultArgs)


class TenantFault(Fault[A]):
    """Base of the local tenancy faults: aimed at a tenant of the run's pool; without one
    named, the first tenant (quota, admission, recreate: the service's contract) or, with
    ``neighbour``, the last (the spikes and context faults: the neighbour misbehaves)."""

    platform = "local"
    target_arg = "tenant"
    #: the default target is the last tenant (the neighbour) instead of the first
    neighbour: ClassVar[bool] = False

    def pick_target(self, ctx: FaultContext, args: A) -> str:
        return pick(ctx, self.name, last=self.neighbour)


def running(host: TenancyHost, fault: str, tenant: str) -> dict[str, int]:
    """The tenant's running replicas (id -> pid); FaultNoEffect when it runs none."""
    check_tenant(host, fault, tenant)
    mine = host.tenant_replicas(tenant)
    if not mine:
        raise FaultNoEffect(f"{fault} {tenant}", "the tenant has no running replica")
    return dict(mine)


def all_replicas(host: TenancyHost) -> dict[str, int]:
    """Every running replica of every tenant (id -> pid)."""
    out: dict[str, int] = {}
    for name in host.tenant_names():
        out.update(host.tenant_replicas(name))
    return out


def neighbours_on_device(host: TenancyHost, tenant: str, replicas: list[str]) -> list[str]:
    """Replicas of OTHER tenants that share a device with any of ``replicas``, sorted."""
    out: set[str] = set()
    for rid in replicas:
        out.update(r for r in host.co_resident(rid) if host.tenant_of(r) != tenant)
    return sorted(out)


def tenancy_spec(ctx: FaultContext) -> Any:
    """The run's ``tenancy`` block (a TenancySpec): the run's spec's, else the pool's; None
    when neither has one."""
    for holder in (getattr(ctx, "spec", None), ctx.platform):
        tenancy = getattr(holder, "tenancy", None)
        if tenancy is not None:
            return tenancy
    return None


def workload_kind(ctx: FaultContext, host: TenancyHost, replica: str) -> str:
    """The workload kind (llm, classifier) of the tenant ``replica`` belongs to."""
    tenancy = tenancy_spec(ctx)
    if tenancy is None:
        return "llm"
    try:
        return str(tenancy.tenant(host.tenant_of(replica)).workload.kind)
    except KeyError:
        return "llm"


def declared_mib(ctx: FaultContext, host: TenancyHost, replica: str) -> float:
    """The device memory a replica is taken to hold: its enforced cap, else its tenant's
    declared ``contract.memory_mib`` (time-slicing: declared but not enforced), else 0."""
    cap = host.memory_cap_mib(replica)
    if cap is not None:
        return float(cap)
    tenancy = tenancy_spec(ctx)
    if tenancy is None:
        return 0.0
    try:
        declared = tenancy.tenant(host.tenant_of(replica)).contract.memory_mib
    except KeyError:
        return 0.0
    return float(declared or 0.0)


def platform_fault(
    fault: str, target: str, undo: Callable[[], object], ttl_s: float
) -> ActiveFault:
    """A fault held in the platform object (a quota, an admission rule): it dies with the
    harness, so it needs no state file, only ``undo``; a timer reverts it after ``ttl_s``
    even when the hold hangs."""

    def run_undo() -> None:
        undo()

    active = in_process(fault, target, run_undo)
    timer = threading.Timer(ttl_s, active.revert)
    timer.daemon = True
    timer.name = f"gpuchaos-ttl-{fault}"
    timer.start()
    active.undo.append(timer.cancel)
    return active


def umbrella(fault: str, target: str) -> tuple[ActiveFault, list[ActiveFault]]:
    """One in-process fault over several (one per replica or per limit, each with its own
    state file for the reverter): its revert reverts every one appended to the list."""
    done: list[ActiveFault] = []

    def undo() -> None:
        for one in done:
            one.revert()

    return in_process(fault, target, undo), done
