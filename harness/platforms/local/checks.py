"""What the local platform checks before a run: that this machine has the cores and GPUs
the nodes name, and that faults target nodes and replicas the spec declares.

Why before the run: without these a node pinned to core 9 of a 2-core machine ran unpinned
(and shared cores the experiment meant to keep apart), ``device: cuda:7`` failed only when
the replica started, and ``lose_node: node-z`` failed 50-75 s in, after the workload was
deployed and loaded.
"""

from __future__ import annotations

import os
import re

from harness.config import HarnessSpec, LocalPlatformSpec
from harness.platforms.local.devices import gpu_count
from harness.platforms.local.tenancy_checks import tenancy_target

_REPLICA = re.compile(r"^(?P<node>[a-z0-9-]+)-(?P<index>\d+)$")


def _cores() -> set[int]:
    try:
        return set(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux: every core the machine has
        return set(range(os.cpu_count() or 1))


def _span(cores: set[int]) -> str:
    return f"{min(cores)}-{max(cores)}" if len(cores) > 1 else str(min(cores))


class LocalChecks:
    """:class:`~harness.platforms.registry.PlatformChecks` of the local platform."""

    def machine(self, spec: HarnessSpec) -> list[tuple[str, str]]:
        platform = spec.platform
        assert isinstance(platform, LocalPlatformSpec)
        problems: list[tuple[str, str]] = []
        cores = _cores()
        for i, node in enumerate(platform.nodes):
            missing = sorted(set(node.cpus or []) - cores)
            if missing:
                problems.append(
                    (
                        f"nodes[{i}].cpus",
                        f"core {missing[0]} is not one this machine lets the harness use "
                        f"(cores {_span(cores)})",
                    )
                )
            if node.device.startswith("cuda") and node.replicas + (node.max_replicas or 0) > 0:
                index = int(node.device.partition(":")[2] or 0)
                gpus = gpu_count()
                if index >= gpus:
                    have = f"{gpus} GPU{'s' if gpus != 1 else ''}" if gpus else "no GPU"
                    hint = "; use device: auto (cuda:0 when there is a GPU, else cpu)"
                    problems.append(
                        (f"nodes[{i}].device", f"{node.device}: this machine has {have}{hint}")
                    )
        return problems

    def target(self, spec: HarnessSpec, target_arg: str, name: str) -> str | None:
        if spec.tenancy is not None:  # tenants' replicas and views, pool nodes
            return tenancy_target(spec, target_arg, name)
        platform = spec.platform
        assert isinstance(platform, LocalPlatformSpec)
        nodes = {n.name: n for n in platform.nodes}
        if target_arg == "node":
            if name in nodes:
                return None
            return f"{name!r} is not a node of this platform (nodes: {', '.join(nodes)})"
        if target_arg == "replica":
            m = _REPLICA.match(name)
            node = nodes.get(m["node"]) if m else None
            if m is None or node is None:
                return (
                    f"{name!r} is not a replica of this platform (replicas are NODE-N, "
                    f"e.g. {next(iter(nodes))}-0)"
                )
            if int(m["index"]) >= max(node.capacity, 1):
                return (
                    f"{name!r}: node {node.name} runs at most {node.capacity} "
                    f"replica{'s' if node.capacity != 1 else ''} ({node.name}-0"
                    f"{f' to {node.name}-{node.capacity - 1}' if node.capacity > 1 else ''})"
                )
            return None
        return None
