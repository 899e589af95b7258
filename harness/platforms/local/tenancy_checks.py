"""What ``gpuchaos validate`` checks of a fault's target on a tenancy experiment: the
names a tenant pool (:mod:`harness.platforms.local.tenancy`) answers to.

Why apart from :mod:`~harness.platforms.local.checks`: with tenancy the replicas are not
``<node>-<i>`` of ``platform.nodes`` but ``<tenant>-<node>-<i>`` of each tenant's view
(:func:`harness.config.tenancy_layout.layout`), and a fault may name a tenant.
"""

from __future__ import annotations

import re

from harness.config import HarnessSpec, LocalPlatformSpec
from harness.config.tenancy_layout import layout

_INDEXED = re.compile(r"^(?P<view>.+)-(?P<index>\d+)$")


def tenancy_target(spec: HarnessSpec, target_arg: str, name: str) -> str | None:
    """Why ``name`` is not a ``target_arg`` (tenant, node, replica) of the tenant pool;
    None when it is, or when the kind of target is not one the pool names."""
    tenancy, platform = spec.tenancy, spec.platform
    assert tenancy is not None and isinstance(platform, LocalPlatformSpec)
    tenants = tenancy.names()
    views = [s.view for t in layout(tenancy, platform).values() for s in t.slots]
    pool = [n.name for n in platform.nodes]
    if target_arg == "tenant":
        if name in tenants:
            return None
        return f"{name!r} is not a tenant of this experiment (tenants: {', '.join(tenants)})"
    if target_arg == "node":
        if name in pool or name in views:
            return None
        return (
            f"{name!r} is not a node of this pool (pool nodes: {', '.join(pool)}; tenants' "
            f"nodes: {', '.join(views)})"
        )
    if target_arg == "replica":
        m = _INDEXED.match(name)
        if m is not None and m["view"] in views:
            return None
        return f"{name!r} is not a tenant's replica (replicas are TENANT-NODE-N, e.g. {views[0]}-0)"
    return None
