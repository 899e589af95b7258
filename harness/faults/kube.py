"""Cluster faults in the state files: a cordoned or deleted node is restored even when the
harness dies.

Why here, below the platforms: the reverter and ``gpuchaos cleanup`` undo these from the
state file alone, with plain values, and never import a platform.

Before a node is cordoned (or deleted), :func:`harness.faults.active.guard` writes a fault
state file of kind ``k8s`` (see :mod:`harness.faults.state`) holding the kubeconfig, the
context, the node and what undoes the fault, and starts the detached reverter
(:mod:`harness.faults.reverter`).
The reverter undoes the fault when the harness dies, even by SIGKILL, or when the
time-to-live runs out; the harness reverts it itself (which removes the file and ends the
reverter) when the fault ends normally; ``gpuchaos cleanup`` reverts what is left.

Undo actions: ``uncordon`` (``spec.unschedulable: false``) and ``recreate_node`` (create
the Node object again from the manifest saved before the delete, when it is still gone; on
a cloud node pool the node's kubelet or the node group usually registers it again by
itself).
"""

from __future__ import annotations

import json
import logging
from typing import Any

from harness.errors import PlatformError

log = logging.getLogger(__name__)

_READ_ONLY_METADATA = (
    "uid",
    "resourceVersion",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "generation",
    "managedFields",
    "selfLink",
)


def node_manifest(node: Any, api: Any) -> dict[str, Any]:
    """The Node as a manifest that can be created again (no status, no server fields)."""
    doc: dict[str, Any] = api.sanitize_for_serialization(node)
    doc.pop("status", None)
    meta = doc.get("metadata") or {}
    for key in _READ_ONLY_METADATA:
        meta.pop(key, None)
    doc["apiVersion"], doc["kind"] = "v1", "Node"
    spec = doc.get("spec") or {}
    spec.pop("unschedulable", None)  # comes back schedulable
    return doc


def revert_k8s(info: dict[str, str]) -> str:
    """Undo one cluster fault from its record (in the harness, the reverter or cleanup);
    returns what was done. Raises on API errors other than 'not found'."""
    from kubernetes import client, config
    from kubernetes.client.exceptions import ApiException

    api = config.new_client_from_config(config_file=info["kubeconfig"], context=info["context"])
    core = client.CoreV1Api(api)
    node, action = info["node"], info["action"]
    if action == "uncordon":
        try:
            core.patch_node(node, {"spec": {"unschedulable": False}})
        except ApiException as exc:
            if exc.status == 404:
                return f"node {node} is gone: nothing to uncordon"
            raise
        log.warning("uncordoned node %s", node)
        return f"uncordoned node {node}"
    if action == "recreate_node":
        try:
            core.read_node(node)
            return f"node {node} is back already"
        except ApiException as exc:
            if exc.status != 404:
                raise
        core.create_node(json.loads(info["manifest"]))
        log.warning("recreated node %s from its saved manifest", node)
        return f"recreated node {node}"
    raise PlatformError(f"unknown cluster revert action {action!r}")
