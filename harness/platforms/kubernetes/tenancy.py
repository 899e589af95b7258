"""The tenants of a ``tenancy`` experiment as Kubernetes objects: a namespace per tenant with
its contract written as a ResourceQuota, a LimitRange and a PriorityClass, and the tenant's
workload rendered in it by the one workload renderer (:func:`manifests.render`).

Why a team wants these: on a shared GPU pool the contract of issue #20 (GPU share, memory
cap, replica quota, priority) is enforced by the API server, not by goodwill:

- replica quota -> ``ResourceQuota`` ``requests.nvidia.com/gpu`` (quota x GPUs per replica)
  and ``pods``: a scale-up past it is refused with "exceeded quota";
- memory cap -> a ``LimitRange`` (default and max ``memory`` of every container) and the
  quota's ``limits.memory``; the tenant's container gets the cap as its memory limit;
- priority -> a ``PriorityClass`` per level (``gpuchaos-tenant-high``/``normal``/``low``);
  only ``high`` may preempt;
- sharing -> the device plugin's time-slicing (or MPS) ConfigMap, or a MIG profile: node
  settings of the cluster, in ``deploy/kubernetes/tenancy/`` (see the docs' Kubernetes page).

The Deployment of a tenant rolls with ``maxSurge: 0`` (``maxUnavailable: 1``): with a quota
of exactly its replicas, the template's surge pod would be refused by the quota and the
rollout would stall. Nothing here talks to a cluster: ``gpuchaos tenant-manifests`` prints
the objects for ``kubectl apply``.
"""

from __future__ import annotations

import math
from typing import Any

import yaml

from harness.config import KubernetesPlatformSpec
from harness.config.tenancy import TenancySpec, TenantSpec
from harness.faults.kube_tenancy import GPU_QUOTA_KEY
from harness.platforms.kubernetes.manifests import MANAGED_BY, render

#: The label that says which tenant an object belongs to.
TENANT_LABEL = "gpuchaos.io/tenant"
#: Names of the per-tenant quota and limit range (one of each in every tenant namespace).
QUOTA_NAME = "gpuchaos-tenant-quota"
LIMITS_NAME = "gpuchaos-tenant-limits"
#: PriorityClass per contract priority: name suffix, value, and whether it may preempt.
PRIORITY_CLASS_PREFIX = "gpuchaos-tenant-"
PRIORITY_VALUES = {"high": 100_000, "normal": 10_000, "low": 1_000}
#: The NVIDIA device plugin's config, by sharing mode (time-slicing and MPS only: MIG is a
#: GPU operator profile, exclusive needs none).
DEVICE_PLUGIN_CONFIG = "gpuchaos-device-plugin-config"
DEVICE_PLUGIN_NAMESPACE = "gpu-operator"
_PLUGIN_SHARING_KEY = {"time-slicing": "timeSlicing", "mps": "mps"}


def tenant_namespace(tenant: str, prefix: str = "") -> str:
    """The namespace of ``tenant``: its name (tenant names are valid namespace names)."""
    return f"{prefix}{tenant}"


def priority_class_name(priority: str) -> str:
    return f"{PRIORITY_CLASS_PREFIX}{priority}"


def _mib(value: float) -> str:
    return f"{math.ceil(value)}Mi"


def tenant_platform(
    base: KubernetesPlatformSpec, tenant: TenantSpec, namespace: str
) -> KubernetesPlatformSpec:
    """``base`` for one tenant: its namespace (the only one allowed), its name and replicas;
    validated again, so a tenant cannot make an invalid spec."""
    data = base.model_dump()
    data.update(
        namespace=namespace,
        allowed_namespaces=[namespace],
        name=tenant.name,
        replicas=tenant.contract.replicas,
        fault_token_secret=None,
        autoscaling=None,  # the tenant's autoscaler is the harness's, bounded by the quota
        min_disruption_available=min(base.min_disruption_available, tenant.contract.replicas),
    )
    return KubernetesPlatformSpec.model_validate(data)


def _meta(name: str, tenant: str, namespace: str | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "labels": {**MANAGED_BY, TENANT_LABEL: tenant}}
    if namespace is not None:
        meta["namespace"] = namespace
    return meta


def priority_classes(tenancy: TenancySpec) -> list[dict[str, Any]]:
    """One PriorityClass per priority a tenant uses, highest first."""
    used = {t.contract.priority for t in tenancy.tenants}
    out = []
    for level in ("high", "normal", "low"):
        if level not in used:
            continue
        out.append({
            "apiVersion": "scheduling.k8s.io/v1",
            "kind": "PriorityClass",
            "metadata": {"name": priority_class_name(level), "labels": dict(MANAGED_BY)},
            "value": PRIORITY_VALUES[level],
            "globalDefault": False,
            "preemptionPolicy": "PreemptLowerPriority" if level == "high" else "Never",
            "description": f"gpuchaos tenants of priority {level} (issue #20 contracts)",
        })  # fmt: skip
    return out


def quota(tenant: TenantSpec, namespace: str, gpus_per_replica: int) -> dict[str, Any]:
    """The tenant's ResourceQuota: GPUs and pods of its replica quota, and the memory limits
    of that many capped replicas."""
    contract = tenant.contract
    hard = {"pods": str(contract.replica_quota)}
    if gpus_per_replica > 0:
        hard[GPU_QUOTA_KEY] = str(contract.replica_quota * gpus_per_replica)
    if contract.memory_mib is not None:
        hard["limits.memory"] = _mib(contract.replica_quota * contract.memory_mib)
    return {
        "apiVersion": "v1",
        "kind": "ResourceQuota",
        "metadata": _meta(QUOTA_NAME, tenant.name, namespace),
        "spec": {"hard": hard},
    }


def limit_range(tenant: TenantSpec, namespace: str) -> dict[str, Any] | None:
    """Each container's memory: default and max the contract's cap (None without a cap)."""
    cap = tenant.contract.memory_mib
    if cap is None:
        return None
    memory = {"memory": _mib(cap)}
    return {
        "apiVersion": "v1",
        "kind": "LimitRange",
        "metadata": _meta(LIMITS_NAME, tenant.name, namespace),
        "spec": {
            "limits": [
                {"type": "Container", "default": memory, "defaultRequest": memory, "max": memory}
            ]
        },
    }


def _contract_on_workload(objects: list[dict[str, Any]], tenant: TenantSpec) -> None:
    """The tenant's label everywhere, its PriorityClass, memory cap and a rollout that fits
    the quota on the Deployment."""
    for obj in objects:
        obj["metadata"]["labels"][TENANT_LABEL] = tenant.name
    dep = objects[0]
    dep["spec"]["strategy"] = {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 1},
    }
    pod = dep["spec"]["template"]["spec"]
    pod["priorityClassName"] = priority_class_name(tenant.contract.priority)
    cap = tenant.contract.memory_mib
    if cap is not None:
        resources = pod["containers"][0]["resources"]
        resources["limits"]["memory"] = _mib(cap)
        resources["requests"]["memory"] = _mib(cap)  # a request above the limit is invalid


def render_tenant(
    tenant: TenantSpec, base: KubernetesPlatformSpec, prefix: str = ""
) -> list[dict[str, Any]]:
    """One tenant's objects in creation order: Namespace, ResourceQuota, LimitRange (with a
    memory cap), then its workload (Deployment, Service, PodDisruptionBudget)."""
    namespace = tenant_namespace(tenant.name, prefix)
    spec = tenant_platform(base, tenant, namespace)
    ns = {"apiVersion": "v1", "kind": "Namespace", "metadata": _meta(namespace, tenant.name)}
    objects = [ns, quota(tenant, namespace, spec.gpus_per_replica)]
    limits = limit_range(tenant, namespace)
    if limits is not None:
        objects.append(limits)
    workload = render(spec, tenant.workload)
    _contract_on_workload(workload, tenant)
    return objects + workload


def device_plugin_config(tenancy: TenancySpec) -> dict[str, Any] | None:
    """The device plugin's sharing ConfigMap for ``time-slicing`` or ``mps`` (None for the
    other modes): each GPU advertised as ``replicas`` ``nvidia.com/gpu``, enough for the
    smallest contracted share (1 / gpu_share) and at least one per tenant."""
    key = _PLUGIN_SHARING_KEY.get(tenancy.sharing)
    if key is None:
        return None
    smallest = min(t.contract.gpu_share for t in tenancy.tenants)
    replicas = max(len(tenancy.tenants), math.ceil(round(1 / smallest, 6)), 2)
    config = {
        "version": "v1",
        "flags": {"migStrategy": "none"},
        "sharing": {key: {"resources": [{"name": "nvidia.com/gpu", "replicas": replicas}]}},
    }
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": DEVICE_PLUGIN_CONFIG,
            "namespace": DEVICE_PLUGIN_NAMESPACE,
            "labels": dict(MANAGED_BY),
        },
        "data": {tenancy.sharing: yaml.safe_dump(config, sort_keys=False)},
    }


def render_tenants(
    tenancy: TenancySpec, base: KubernetesPlatformSpec | None = None, prefix: str = ""
) -> list[dict[str, Any]]:
    """Every object of the experiment's tenants, in creation order: the PriorityClasses, the
    device plugin's sharing ConfigMap (time-slicing and mps), then each tenant's objects.
    ``base``: the image, GPUs per replica, node selector... (default: the platform's
    defaults)."""
    spec = base or KubernetesPlatformSpec.model_validate({"kind": "kubernetes"})
    objects = priority_classes(tenancy)
    plugin = device_plugin_config(tenancy)
    if plugin is not None:
        objects.append(plugin)
    for tenant in tenancy.tenants:
        objects.extend(render_tenant(tenant, spec, prefix))
    return objects


class _Dumper(yaml.SafeDumper):
    """Multi-line strings (the device plugin's config) as literal blocks, as people write
    them."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def to_yaml(objects: list[dict[str, Any]]) -> str:
    """The objects as one multi-document YAML stream, for ``kubectl apply -f -``."""
    return yaml.dump_all(objects, Dumper=_Dumper, sort_keys=False)
