"""The multi-tenancy cluster faults' objects and undo steps: a tenant's ResourceQuota cut
down and put back, and a ValidatingAdmissionPolicy (with its binding) created and deleted.

Why here, below the platforms, beside :mod:`harness.faults.kube`: the detached reverter and
``gpuchaos cleanup`` undo these from the state file alone (plain values: kubeconfig,
context, namespace, names, the original quota), through :func:`revert_tenancy`, which
:func:`harness.faults.kube.revert_k8s` calls for the actions in :data:`ACTIONS`.
"""

from __future__ import annotations

import json
import logging
from typing import Any

log = logging.getLogger(__name__)

#: The quota key of GPUs (extended resources are quota'd on requests only).
GPU_QUOTA_KEY = "requests.nvidia.com/gpu"
#: The revert actions of the tenancy faults (state files of kind ``k8s``).
ACTIONS = frozenset({"restore_quota", "delete_admission"})
#: Every admission object a fault creates starts with this (the reverter and a person find
#: them by it: ``kubectl get validatingadmissionpolicies | grep gpuchaos-deny-``).
ADMISSION_PREFIX = "gpuchaos-deny-"
#: The label naming the fault on the objects it creates.
FAULT_LABEL = "gpuchaos.io/fault"
MANAGED_BY = {"app.kubernetes.io/managed-by": "gpuchaos"}
MERGE_PATCH = "application/merge-patch+json"

#: CEL of each admission rule (``object`` is the pod being created).
RULES: dict[str, tuple[str, str]] = {
    "memory-cap": (
        "object.spec.containers.all(c, has(c.resources) && has(c.resources.limits) && "
        "'memory' in c.resources.limits)",
        "every container needs resources.limits.memory (the tenant contract's memory cap)",
    ),
    "all": ("false", "no new pod is admitted in this namespace"),
}


def admission_name(namespace: str, rule: str) -> str:
    """The name of the policy and of its binding for ``rule`` in ``namespace``."""
    return f"{ADMISSION_PREFIX}{rule}-{namespace}"


def admission_objects(
    namespace: str, rule: str, fault: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The ValidatingAdmissionPolicy (pods, on create: the CEL of ``rule``; denial reason
    Forbidden) and its binding (only ``namespace``, by its ``kubernetes.io/metadata.name``
    label, validationActions Deny)."""
    name = admission_name(namespace, rule)
    expression, why = RULES[rule]
    labels = {**MANAGED_BY, FAULT_LABEL: fault}
    policy = {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicy",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "failurePolicy": "Fail",
            "matchConstraints": {
                "resourceRules": [
                    {
                        "apiGroups": [""],
                        "apiVersions": ["v1"],
                        "operations": ["CREATE"],
                        "resources": ["pods"],
                    }
                ]
            },
            "validations": [
                {
                    "expression": expression,
                    "message": f"gpuchaos {fault} ({rule}): {why}",
                    "reason": "Forbidden",
                }
            ],
        },
    }
    binding = {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicyBinding",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "policyName": name,
            "validationActions": ["Deny"],
            "matchResources": {
                "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}}
            },
        },
    }
    return policy, binding


def set_quota_hard(
    core: Any, namespace: str, name: str, key: str, value: str | None, version: str | None = None
) -> None:
    """Set ``hard[key]`` of a ResourceQuota (None removes the key) with a JSON merge patch,
    guarded by ``version`` (its resourceVersion) when given."""
    patch: dict[str, Any] = {"spec": {"hard": {key: value}}}
    if version:
        patch["metadata"] = {"resourceVersion": version}
    core.patch_namespaced_resource_quota(name, namespace, patch, _content_type=MERGE_PATCH)


def restore_quota(api: Any, info: dict[str, str]) -> str:
    """Put the quota's original ``hard`` value back, unless someone changed it since the
    fault set it (then it is left alone: their value is not ours to undo)."""
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    core = client.CoreV1Api(api)
    ns, name, key = info["namespace"], info["quota"], info["key"]
    original: str | None = json.loads(info["original"])
    try:
        obj = core.read_namespaced_resource_quota(name, ns)
    except ApiException as exc:
        if exc.status == 404:
            return f"resourcequota {ns}/{name} is gone: nothing to restore"
        raise
    now = (obj.spec.hard or {}).get(key) if obj.spec else None
    if now != info["set"]:
        return f"resourcequota {ns}/{name} {key} is {now} (changed since the fault): left alone"
    set_quota_hard(core, ns, name, key, original)
    log.warning("restored resourcequota %s/%s %s to %s", ns, name, key, original)
    return f"restored resourcequota {ns}/{name} {key}: {now} -> {original}"


def delete_admission(api: Any, info: dict[str, str]) -> str:
    """Delete the binding, then the policy (either gone already is fine)."""
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    adm = client.AdmissionregistrationV1Api(api)
    name = info["name"]
    done = []
    for kind, delete in (
        ("binding", adm.delete_validating_admission_policy_binding),
        ("policy", adm.delete_validating_admission_policy),
    ):
        try:
            delete(name)
            done.append(kind)
        except ApiException as exc:
            if exc.status != 404:
                raise
    log.warning("deleted admission %s of %s: %s", name, info.get("namespace"), done)
    return f"deleted validating admission {name} ({', '.join(done) or 'gone already'})"


def revert_tenancy(api: Any, info: dict[str, str]) -> str:
    """Undo one tenancy fault from its record; what was done."""
    if info["action"] == "restore_quota":
        return restore_quota(api, info)
    return delete_admission(api, info)
