"""Where each tenant's replicas go on the pool, per sharing mode, and what each one gets.

Why one pure function: the local platform deploys from it, the tenancy faults read it (which
replicas share a device, what memory cap each has), the scorer bills GPU-seconds from it and
``gpuchaos validate`` refuses a pool too small for the mode, all from the same answer.

Every tenant gets its own view of the pool: a local-platform spec whose nodes are named
``<tenant>-<node>`` (``<tenant>-<node>-s<k>`` for a MIG slice), so replica ids
(``<tenant>-<node>-<i>``) say whose they are. Per mode:

- ``exclusive``: a GPU per replica. The tenants' replicas take pool nodes in order, one
  each; spare nodes are handed round-robin to the tenants as room to grow. Memory: the
  whole GPU, separate for each replica.
- ``time-slicing``: every tenant sees every pool node with its cores (shared cores); its
  replicas are spread round-robin. No memory cap: the device's memory is one pool.
- ``mps``: placed like time-slicing (shared cores), but each replica has its own memory
  cap: ``contract.memory_mib``, else its ``gpu_share`` of the GPU.
- ``mig``: each node is split into ``mig_slices`` slices, each with its share of the memory
  and, when the node has a core per slice, cores of its own; a replica takes a slice.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from harness.config.platform_local import LocalPlatformSpec, NodeSpec
from harness.config.shapes import TraceShape
from harness.config.tenancy import TenancySpec, TenantSpec


class Tenanted(Protocol):
    """What :func:`tenant_document` reads of an experiment's spec (a ``HarnessSpec``)."""

    @property
    def tenancy(self) -> TenancySpec | None: ...

    @property
    def platform(self) -> Any: ...


#: CPU niceness of a tenant's replicas on the local platform, by contract priority.
NICENESS = {"high": 0, "normal": 5, "low": 10}


@dataclass(frozen=True)
class Slot:
    """One node of a tenant's view: a pool node (or a MIG slice of one) and what it gives."""

    view: str  # node name in the tenant's platform
    node: str  # the pool node (the physical GPU)
    device: str  # the pool node's device setting
    slice: int | None  # MIG slice index, None for a whole GPU
    cpus: list[int] | None  # cores the replicas there are pinned to
    replicas: int  # replicas placed there at the start
    capacity: int  # most replicas of this tenant there
    memory_cap_mib: float | None  # enforced per replica; None: the device's shared pool
    share: float  # share of one GPU each replica there is billed for


@dataclass(frozen=True)
class TenantLayout:
    """One tenant's slots and the platform spec its replicas are deployed from."""

    tenant: str
    slots: list[Slot]
    platform: LocalPlatformSpec

    def slot(self, view: str) -> Slot:
        """The slot of a node name of this tenant's view; KeyError when unknown."""
        for s in self.slots:
            if s.view == view:
                return s
        raise KeyError(view)


class LayoutError(ValueError):
    """The pool cannot hold the tenants in the chosen mode (a message for validation)."""


def layout(tenancy: TenancySpec, platform: LocalPlatformSpec) -> dict[str, TenantLayout]:
    """Each tenant's view of ``platform.nodes`` under ``tenancy.sharing``, by tenant name."""
    mode = tenancy.sharing
    if mode == "exclusive":
        slots = _exclusive(tenancy, platform.nodes)
    elif mode == "mig":
        slots = _mig(tenancy, platform.nodes)
    else:
        slots = _shared(tenancy, platform.nodes)
    result = {}
    for tenant in tenancy.tenants:
        mine = slots[tenant.name]
        nodes = [
            NodeSpec(
                name=s.view,
                device=s.device,
                replicas=s.replicas,
                max_replicas=max(s.capacity, s.replicas),
                cpus=s.cpus,
            )
            for s in mine
        ]
        spec = platform.model_copy(update={"nodes": nodes, "autoscaler": tenant.autoscaler})
        result[tenant.name] = TenantLayout(tenant.name, mine, spec)
    return result


def _spread(count: int, slots: int) -> list[int]:
    """``count`` replicas round-robin over ``slots`` places."""
    return [count // slots + (1 if i < count % slots else 0) for i in range(slots)]


def _shared(tenancy: TenancySpec, nodes: list[NodeSpec]) -> dict[str, list[Slot]]:
    """time-slicing and mps: every tenant on every node, its replicas spread."""
    mps = tenancy.sharing == "mps"
    out: dict[str, list[Slot]] = {}
    for tenant in tenancy.tenants:
        c = tenant.contract
        cap = (c.memory_mib or tenancy.gpu_memory_mib * c.gpu_share) if mps else None
        if cap is not None and cap > tenancy.gpu_memory_mib:
            raise LayoutError(
                f"tenant {tenant.name}: contract.memory_mib ({cap:g}) exceeds the GPU's "
                f"memory ({tenancy.gpu_memory_mib:g} MiB, tenancy.gpu_memory_mib)"
            )
        counts = _spread(c.replicas, len(nodes))
        out[tenant.name] = [
            Slot(
                f"{tenant.name}-{n.name}",
                n.name,
                n.device,
                None,
                n.cpus,
                k,
                c.replica_quota,
                cap,
                c.gpu_share,
            )
            for n, k in zip(nodes, counts, strict=True)
        ]
    return out


#: A place a replica can take: a pool node, its MIG slice (None: the whole GPU), its cores.
Place = tuple[NodeSpec, int | None, list[int] | None]


def _take_in_order(
    tenancy: TenancySpec, places: list[Place], what: str
) -> dict[str, list[tuple[NodeSpec, int | None, list[int] | None, int]]]:
    """One replica per place: each tenant's start replicas take places in order, then spare
    places go round-robin to the tenants (room for their quota)."""
    wanted = sum(t.contract.replicas for t in tenancy.tenants)
    if wanted > len(places):
        raise LayoutError(
            f"sharing {tenancy.sharing} gives each replica {what} of its own: the "
            f"tenants start {wanted} replicas, the pool (platform.nodes) has {len(places)}"
        )
    out: dict[str, list[tuple[NodeSpec, int | None, list[int] | None, int]]] = {
        t.name: [] for t in tenancy.tenants
    }
    i = 0
    for tenant in tenancy.tenants:
        for _ in range(tenant.contract.replicas):
            node, index, cpus = places[i]
            out[tenant.name].append((node, index, cpus, 1))
            i += 1
    for k, (node, index, cpus) in enumerate(places[i:]):
        tenant = tenancy.tenants[k % len(tenancy.tenants)]
        out[tenant.name].append((node, index, cpus, 0))
    return out


def _exclusive(tenancy: TenancySpec, nodes: list[NodeSpec]) -> dict[str, list[Slot]]:
    places: list[Place] = [(n, None, n.cpus) for n in nodes]
    taken = _take_in_order(tenancy, places, "a GPU")
    return {
        name: [
            Slot(
                f"{name}-{n.name}", n.name, n.device, None, cpus, k, 1, tenancy.gpu_memory_mib, 1.0
            )
            for n, _, cpus, k in got
        ]
        for name, got in taken.items()
    }


def _slice_cpus(cpus: list[int] | None, slices: int, k: int) -> list[int] | None:
    """Slice ``k``'s own cores: an even split of the node's, or None (unpinned) when the
    node has fewer cores than slices."""
    if cpus is None or len(cpus) < slices:
        return None
    per = len(cpus) // slices
    return cpus[k * per : (k + 1) * per]


def _mig(tenancy: TenancySpec, nodes: list[NodeSpec]) -> dict[str, list[Slot]]:
    n_slices = tenancy.mig_slices
    slice_mib = tenancy.gpu_memory_mib / n_slices
    for tenant in tenancy.tenants:
        cap = tenant.contract.memory_mib
        if cap is not None and cap > slice_mib:
            raise LayoutError(
                f"tenant {tenant.name}: contract.memory_mib ({cap:g}) exceeds a MIG slice "
                f"({slice_mib:g} MiB: tenancy.gpu_memory_mib / mig_slices)"
            )
    places: list[Place] = [
        (n, k, _slice_cpus(n.cpus, n_slices, k)) for n in nodes for k in range(n_slices)
    ]
    taken = _take_in_order(tenancy, places, "a MIG slice")
    out: dict[str, list[Slot]] = {}
    for t in tenancy.tenants:
        cap = t.contract.memory_mib or slice_mib
        out[t.name] = [
            Slot(
                f"{t.name}-{n.name}-s{index}",
                n.name,
                n.device,
                index,
                cpus,
                k,
                1,
                cap,
                1.0 / n_slices,
            )
            for n, index, cpus, k in taken[t.name]
        ]
    return out


def tenant_of(replica_or_node: str, tenants: list[str]) -> str | None:
    """The tenant a replica id or view node name belongs to (``<tenant>-...``), or None."""
    for name in sorted(tenants, key=len, reverse=True):
        if replica_or_node.startswith(name + "-"):
            return name
    return None


def _span(tenant: TenantSpec) -> float:
    shape = tenant.load.shape
    return float(shape.length_s if isinstance(shape, TraceShape) else shape.duration_s)


def check_tenants(tenancy: TenancySpec, tenants: list[TenantSpec]) -> None:
    """Tenants' loads must last as long: the run scores one span for all of them."""
    spans = {t.name: _span(t) for t in tenants}
    if len(set(spans.values())) > 1:
        listed = ", ".join(f"{n} {s:g} s" for n, s in spans.items())
        raise LayoutError(
            f"tenants' loads must last as long (one run, one span to score): {listed}"
        )


def _as_written(model: Any) -> dict[str, Any]:
    dumped: dict[str, Any] = model.model_dump(mode="json", exclude_unset=True, by_alias=True)
    return dumped


def tenant_document(doc: Mapping[str, Any], spec: Tenanted, name: str) -> dict[str, Any]:
    """The single-tenant experiment of tenant ``name`` derived from a tenancy experiment's
    document: the same document with ``tenancy`` removed from the gpuchaos block, and its
    workload, load, slos and platform the tenant's (the platform is its view of the pool).
    Why: each tenant's folder of a run is then a run folder of its own, scored and
    reported by the single-workload code, and the run writes it where the scorer reads it.
    Blocks are written as the experiment wrote them (unset fields left out): a default
    written next to its alternative (an autoscaler's single-rule fields next to ``rules``)
    would not validate again."""
    tenancy, platform = spec.tenancy, spec.platform
    assert tenancy is not None and isinstance(platform, LocalPlatformSpec)
    tenant = tenancy.tenant(name)
    view = layout(tenancy, platform)[name].platform
    out = copy.deepcopy(dict(doc))
    for ext in out.get("extensions") or []:
        if isinstance(ext, dict) and ext.get("name") == "gpuchaos":
            ext.pop("tenancy", None)
            ext["workload"] = _as_written(tenant.workload)
            ext["load"] = _as_written(tenant.load)
            ext["slos"] = _as_written(tenant.slos)
            ext["platform"] = _as_written(view)
    return out
