"""Several tenants on one pool of local nodes (issue #20): a :class:`TenantPool` of one
:class:`~harness.platforms.local.tenancy_view.TenantPlatform` per tenant.

Why a pool of platforms and not one platform with tenants inside: each tenant keeps its
own router (endpoint), autoscaler and replica ids, so every local fault, the autoscaler and
the scorer work on a tenant as they do on a single-tenant run. The pool is the run's
platform: it answers the Platform protocol and :class:`~harness.faults.hosts.LocalHost`
by handing each call to the tenant the replica or node belongs to (ids and view node names
start with the tenant's name), and a POOL node name (``platform.nodes``) in ``node_down``,
``node_up`` or ``set_gpu_healthy`` acts on every tenant's view of that node: the GPU is
lost for all of them. It also answers :class:`~harness.faults.hosts.TenancyHost`, what
the tenancy faults and the scorer need: which replicas share a device, memory caps,
quotas, admission rules, a VPA-style recreate.

What each sharing mode shares on the CPU stand-in (the layout decides the cores and caps):
``exclusive`` a node per replica; ``time-slicing`` the node's cores and no memory cap;
``mps`` the cores, a cap per replica; ``mig`` a slice with its own cores and cap.
"""

from __future__ import annotations

import logging
import signal
import threading
from pathlib import Path

from harness.config import HarnessSpec, LocalPlatformSpec, NodeSpec
from harness.config.tenancy_layout import TenantLayout, layout, tenant_of
from harness.errors import HarnessError, PlatformError
from harness.faults.hosts import TenancyHost
from harness.platforms.base import Platform, ReplicaInfo
from harness.platforms.local.devices import resolve_device
from harness.platforms.local.process import usable_cpus
from harness.platforms.local.tenancy_view import TenantPlatform
from harness.timeline import Timeline

log = logging.getLogger(__name__)


class TenantPool:
    """The tenants' platforms on one pool of nodes, seen as one local platform."""

    kind = "local"

    def __init__(self, spec: HarnessSpec, timeline: Timeline, run_dir: Path) -> None:
        tenancy = spec.tenancy
        platform = spec.platform
        if tenancy is None or not isinstance(platform, LocalPlatformSpec):
            raise PlatformError("a tenant pool needs a tenancy block on the local platform")
        self.spec = spec
        self.tenancy = tenancy
        self.sharing: str = tenancy.sharing
        self.gpu_memory_mib: float = tenancy.gpu_memory_mib
        self.pool = platform
        self.layouts: dict[str, TenantLayout] = layout(tenancy, platform)
        self.timeline = timeline
        self.run_dir = Path(run_dir)
        self._tenants: dict[str, TenantPlatform] = {
            t.name: TenantPlatform(tenancy, t, self.layouts[t.name], timeline, self.run_dir)
            for t in tenancy.tenants
        }

    # -- Platform protocol ------------------------------------------------------------

    @property
    def endpoint(self) -> str:
        """The first tenant's endpoint (where single-endpoint code sends traffic)."""
        return self.tenant(self.tenant_names()[0]).endpoint

    def start(self) -> None:
        """Start every tenant at once (each its router, replicas and autoscaler) and wait
        until all are Ready; when one cannot start, every tenant is stopped and its error
        raised. The replicas are spawned by the tenants' supervisor threads, so starting
        from helper threads ties no child to a thread that ends."""
        errors: dict[str, HarnessError] = {}

        def start(name: str) -> None:
            try:
                self._tenants[name].start()
            except HarnessError as exc:
                errors[name] = exc

        threads = [
            threading.Thread(target=start, args=(n,), name=f"gpuchaos-tenant-{n}", daemon=True)
            for n in self._tenants
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if errors:
            self.stop()
            name, exc = next(iter(errors.items()))
            raise type(exc)(f"tenant {name}: {exc}")
        log.info("tenant pool (%s) ready: %s", self.sharing, ", ".join(self._tenants))

    def stop(self) -> None:
        for p in self._tenants.values():
            try:
                p.stop()
            except Exception:
                log.exception("stopping tenant %s failed", p.tenant)

    def attach(self, timeline: Timeline, run_dir: Path) -> None:
        self.timeline = timeline
        self.run_dir = Path(run_dir)
        for p in self._tenants.values():
            p.attach(timeline, run_dir)

    def nodes(self) -> list[str]:
        """Every tenant's view node names (what the replicas' ``node`` says)."""
        return [n for p in self._tenants.values() for n in p.nodes()]

    def replicas(self) -> list[ReplicaInfo]:
        return [r for p in self._tenants.values() for r in p.replicas()]

    def node_down(self, node: str) -> list[int]:
        """Down ``node``: a view node, or a pool node (every tenant's view of it)."""
        return [pid for p, view in self._views(node) for pid in p.node_down(view)]

    def node_up(self, node: str) -> None:
        for p, view in self._views(node):
            p.node_up(view)

    # -- LocalHost ----------------------------------------------------------------------

    def node_device(self, node: str) -> str:
        if node in self._pool_nodes():
            return resolve_device(self._pool_node(node).device)
        p, view = self._views(node)[0]
        return p.node_device(view)

    def node_cpus(self, node: str) -> set[int] | None:
        if node in self._pool_nodes():
            return usable_cpus(self._pool_node(node).cpus)
        p, view = self._views(node)[0]
        return p.node_cpus(view)

    def replica_node(self, replica_id: str) -> str:
        return self._owner(replica_id).replica_node(replica_id)

    def replica_pids(self, node: str | None = None) -> dict[str, int]:
        if node is None:
            return {r: pid for p in self._tenants.values() for r, pid in p.replica_pids().items()}
        return {r: pid for p, view in self._views(node) for r, pid in p.replica_pids(view).items()}

    def replica_port(self, replica_id: str) -> int | None:
        return self._owner(replica_id).replica_port(replica_id)

    def kill_replica(self, replica_id: str, sig: int = signal.SIGKILL) -> int:
        return self._owner(replica_id).kill_replica(replica_id, sig)

    def fault_token(self, replica_id: str) -> str | None:
        return self._owner(replica_id).fault_token(replica_id)

    def set_gpu_healthy(self, node: str, healthy: bool, xid: int | None = None) -> bool:
        changed = [p.set_gpu_healthy(view, healthy, xid) for p, view in self._views(node)]
        return any(changed)

    def gpu_healthy(self, node: str) -> bool:
        return all(p.gpu_healthy(view) for p, view in self._views(node))

    # -- what tests, the live view and the autoscaler-like callers use ----------------------

    def wait_ready(self, timeout: float) -> bool:
        return all(p.wait_ready(timeout) for p in self._tenants.values())

    def log_path(self, replica_id: str) -> Path:
        return self._owner(replica_id).log_path(replica_id)

    def replica_count(self) -> int:
        return sum(p.replica_count() for p in self._tenants.values())

    def pending_replicas(self) -> list[str]:
        return [r for p in self._tenants.values() for r in p.pending_replicas()]

    def node_is_up(self, node: str) -> bool:
        return all(p.node_is_up(view) for p, view in self._views(node))

    def add_replica(self, node: str) -> str | None:
        """One more replica of the tenant whose view ``node`` is (its quota applies)."""
        p, view = self._views(node)[0]
        return p.add_replica(view)

    def remove_replica(self, replica_id: str) -> None:
        self._owner(replica_id).remove_replica(replica_id)

    def eject(self, replica_id: str, out: bool = True) -> None:
        self._owner(replica_id).eject(replica_id, out)

    # -- TenancyHost ----------------------------------------------------------------------

    def tenant_names(self) -> list[str]:
        return list(self._tenants)

    def tenant(self, name: str) -> TenantPlatform:
        """The tenant's platform; PlatformError naming the tenants when unknown."""
        p = self._tenants.get(name)
        if p is None:
            raise PlatformError(f"unknown tenant {name!r}; tenants: {', '.join(self._tenants)}")
        return p

    def tenant_endpoint(self, tenant: str) -> str:
        return self.tenant(tenant).endpoint

    def tenant_dir(self, tenant: str) -> Path:
        return self.tenant(tenant).tenant_dir()

    def tenant_replicas(self, tenant: str) -> dict[str, int]:
        """The tenant's running replicas: id -> pid."""
        return self.tenant(tenant).replica_pids()

    def tenant_of(self, replica_id: str) -> str:
        """The tenant a replica id (or view node name) belongs to; PlatformError if none."""
        name = tenant_of(replica_id, self.tenant_names())
        if name is None:
            raise PlatformError(
                f"{replica_id!r} belongs to no tenant (ids start with one of: "
                f"{', '.join(self._tenants)})"
            )
        return name

    def co_resident(self, replica_id: str) -> list[str]:
        """Replica ids (any tenant, itself included) on the replica's device: the same pool
        node (exclusive: only itself), the same node and slice under mig."""
        slot = self._owner(replica_id).slot_of(replica_id)
        if self.sharing == "exclusive":
            return [replica_id]
        out = []
        for p in self._tenants.values():
            for r in p.replicas():
                try:
                    s = p.view.slot(r.node)
                except KeyError:
                    continue
                if s.node == slot.node and (self.sharing != "mig" or s.slice == slot.slice):
                    out.append(r.id)
        return sorted(out)

    def memory_cap_mib(self, replica_id: str) -> float | None:
        return self._owner(replica_id).memory_cap_mib(replica_id)

    def quota(self, tenant: str) -> int:
        return self.tenant(tenant).quota()

    def set_quota(self, tenant: str, quota: int | None) -> int:
        return self.tenant(tenant).set_quota(quota)

    def set_admission(self, tenant: str, rule: str | None) -> None:
        self.tenant(tenant).set_admission(rule)

    def admission_would_deny(self, tenant: str) -> str | None:
        return self.tenant(tenant).admission_reason()

    def recreate_replica(self, replica_id: str, memory_mib: float | None) -> tuple[int, int]:
        return self._owner(replica_id).recreate_replica(replica_id, memory_mib)

    # -- helpers ------------------------------------------------------------------------

    def _owner(self, replica_id: str) -> TenantPlatform:
        name = tenant_of(replica_id, self.tenant_names())
        if name is None:
            known = ", ".join(r.id for r in self.replicas())
            raise PlatformError(f"unknown replica {replica_id!r}; known replicas: {known}")
        return self._tenants[name]

    def _pool_nodes(self) -> list[str]:
        return [n.name for n in self.pool.nodes]

    def _pool_node(self, name: str) -> NodeSpec:
        return next(n for n in self.pool.nodes if n.name == name)

    def _views(self, node: str) -> list[tuple[TenantPlatform, str]]:
        """(tenant platform, view node) for a pool node (each tenant's views of it) or one
        tenant's view node; PlatformError naming both kinds when neither."""
        if node in self._pool_nodes():
            return [
                (p, s.view) for p in self._tenants.values() for s in p.view.slots if s.node == node
            ]
        name = tenant_of(node, self.tenant_names())
        if name is not None and node in self._tenants[name].view.platform.all_node_names():
            return [(self._tenants[name], node)]
        views = [s.view for p in self._tenants.values() for s in p.view.slots]
        raise PlatformError(
            f"unknown node {node!r}; pool nodes: {', '.join(self._pool_nodes())}; tenants' "
            f"nodes: {', '.join(views)}"
        )


def _conforms(pool: TenantPool) -> tuple[TenancyHost, Platform]:
    """Never called: mypy checks here that the pool is a TenancyHost and a Platform."""
    return pool, pool
