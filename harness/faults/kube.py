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
from harness.faults.kube_tenancy import ACTIONS as TENANCY_ACTIONS
from harness.faults.kube_tenancy import revert_tenancy

log = logging.getLogger(__name__)

#: A JSON merge patch replaces a list as a whole (a dict body is otherwise sent as a
#: strategic merge patch, which merges taints by key and so cannot remove one).
MERGE_PATCH = "application/merge-patch+json"

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
    node, action = info.get("node", ""), info["action"]
    if action in TENANCY_ACTIONS:  # a tenant's quota or admission policy
        return revert_tenancy(api, info)
    if action == "hook_clear":
        from harness.faults.kubehook import clear_hook

        return clear_hook(api, info)
    if action == "untaint":  # a lost GPU: the taint goes, its poisoned pods are restarted
        done = untaint(core, node, info["taint"])
        if info.get("pods"):
            done += "; " + delete_pods(core, info["namespace"], json.loads(info["pods"]))
        return done
    if action == "delete_pods":  # a poisoned context goes away only with a restart
        return delete_pods(core, info["namespace"], json.loads(info["pods"]))
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


def taint_node(core: Any, node: str, key: str, value: str, effect: str = "NoSchedule") -> bool:
    """Add the taint ``key=value:effect`` to ``node`` (a JSON merge patch of the whole list,
    guarded by the node's resourceVersion); False when it carries that key already."""
    obj = core.read_node(node)
    taints = [core.api_client.sanitize_for_serialization(t) for t in obj.spec.taints or []]
    if any(t.get("key") == key for t in taints):
        return False
    taints.append({"key": key, "value": value, "effect": effect})
    patch = {"metadata": {"resourceVersion": obj.metadata.resource_version}}
    core.patch_node(node, {**patch, "spec": {"taints": taints}}, _content_type=MERGE_PATCH)
    return True


def untaint(core: Any, node: str, key: str) -> str:
    """Remove every taint ``key`` from ``node``; what was done ('gone' and 'none' are fine)."""
    from kubernetes.client.exceptions import ApiException

    try:
        obj = core.read_node(node)
    except ApiException as exc:
        if exc.status == 404:
            return f"node {node} is gone: nothing to untaint"
        raise
    taints = [core.api_client.sanitize_for_serialization(t) for t in obj.spec.taints or []]
    kept = [t for t in taints if t.get("key") != key]
    if len(kept) == len(taints):
        return f"node {node} has no taint {key}"
    core.patch_node(node, {"spec": {"taints": kept}}, _content_type=MERGE_PATCH)
    log.warning("removed taint %s from node %s", key, node)
    return f"removed taint {key} from node {node}"


def delete_pods(core: Any, namespace: str, pods: list[list[str]]) -> str:
    """Delete each ``[name, uid]`` at once (grace period 0, the uid as precondition: a pod
    replaced since is left alone); what was done."""
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    deleted = []
    for name, uid in pods:
        body = client.V1DeleteOptions(
            grace_period_seconds=0, preconditions=client.V1Preconditions(uid=uid)
        )
        try:
            core.delete_namespaced_pod(name, namespace, body=body)
            deleted.append(name)
        except ApiException as exc:
            if exc.status not in (404, 409):  # gone, or replaced: nothing to restart
                raise
    log.warning("restarted (deleted) poisoned pods %s in %s", deleted, namespace)
    return f"deleted pods {deleted} in {namespace}"
