"""Chaos Toolkit actions and probes for the ``kubernetes`` platform.

The fault functions (``drain_gpu_node``, ``delete_gpu_node``, ``terminate_replica``,
``disrupt_device_plugin``, ``exhaust_gpu_memory``) and their revert actions
(``uncordon_gpu_node``, ``recreate_gpu_node``, ``release_gpu_memory``) are generated from
the fault registry (:mod:`harness.chaos.adapter`), with the same argument names as on the
local platform (``node``, ``replica``, ``duration_s``, ``ttl_s``; the old ``pod``,
``down_for_s`` and ``hold_s`` are still accepted). What each does and proves is in
:mod:`harness.faults.builtin` (``k8s_nodes``, ``k8s_pods``, ``k8s_memory``). Every target is
checked first: pods only in the platform's namespace, nodes only with the GPU node labels,
the device plugin only in an allowlisted namespace. A fault without its target argument
picks one (the busiest GPU node, the first Ready pod); the timeline control picks it before
the activity starts, so the journal and the timeline name it. With ``gpuchaos run
--dry-run`` the actions only say what they would do.

Defined here by hand: the probes :func:`ready_pods` and :func:`cordoned_nodes`.
"""

from __future__ import annotations

from typing import Any

from harness.chaos.adapter import export
from harness.chaos.context import current
from harness.errors import ChaosError

__all__ = [*export(globals(), __name__), "ready_pods", "cordoned_nodes"]


def _platform() -> Any:
    platform = current().platform
    if getattr(platform, "kind", None) != "kubernetes":
        raise ChaosError(
            "harness.chaos.k8s activities need platform.kind: kubernetes; "
            "use harness.chaos.actions on the local platform"
        )
    return platform


def ready_pods() -> int:
    """How many workload pods are Ready now (read from the API)."""
    platform = _platform()
    return sum(1 for p in platform.pods() if platform.pod_ready(p))


def cordoned_nodes() -> list[str]:
    """GPU nodes that are cordoned now."""
    platform = _platform()
    return sorted(n.metadata.name for n in platform.gpu_nodes() if n.spec.unschedulable)
