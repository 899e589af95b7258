"""Multi-tenancy faults on Kubernetes: a tenant's GPU quota exhausted, and an admission
policy that denies its pods. A tenant is a namespace (``gpuchaos tenant-manifests`` renders
them: :mod:`harness.platforms.kubernetes.tenancy`), which must be in the platform's
``allowed_namespaces``.

Both change cluster objects, so both are registered with the detached reverter (a state
file of kind ``k8s``, undone by :func:`harness.faults.kube_tenancy.revert_tenancy`) before
they take effect: a dead harness leaves no cut quota and no denying policy behind, and the
time-to-live ends them even when the harness hangs.

What they teach: what a team's service does when the platform's guard rails close on it:
its autoscaler asks for replicas and gets "exceeded quota" (the ReplicaSet's FailedCreate
events, the Deployment stuck below its replicas), or a replacement pod of a crashed replica
is refused by a policy like Kyverno's or Gatekeeper's, so capacity lost is not won back.
The local platform's stand-ins are ``exhaust_quota`` and ``deny_admission``.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from harness.config.base import MAX_NODE_REPLICAS
from harness.errors import ChaosError, FaultNoEffect
from harness.faults.active import ActiveFault, begin
from harness.faults.contract import (
    Fault,
    FaultArgs,
    FaultContext,
    Injection,
    duration_field,
    ttl_field,
)
from harness.faults.hosts import ClusterHost
from harness.faults.kube_tenancy import (
    GPU_QUOTA_KEY,
    admission_name,
    admission_objects,
    set_quota_hard,
)
from harness.faults.policy import PROOF_TIMEOUT_S, ttl_for
from harness.faults.registry import register

log = logging.getLogger(__name__)

_GPU = "nvidia.com/gpu"
_NAME = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"


def _tenant_field() -> Any:
    return Field(
        None, pattern=_NAME, max_length=63,
        description=(
            "The tenant's namespace (a tenant's namespace is its name); it must be in "
            "allowed_namespaces. Default: the platform's namespace."
        ),
    )  # fmt: skip


def _ttl(duration_s: float, ttl_s: float | None) -> float:
    if ttl_s is not None or duration_s <= 0:
        return ttl_for(duration_s, ttl_s)
    return ttl_for(duration_s, None) + PROOF_TIMEOUT_S["kubernetes"]


def _guard(host: ClusterHost, fault: str, ns: str, ttl_s: float, info: dict[str, str]) -> Any:
    base = {"kubeconfig": host.kubeconfig, "context": host.context, "namespace": ns}
    run_dir = Path(host.run_dir) if host.run_dir is not None else None
    return begin("k8s", fault, ns, [], ttl_s, run_dir, k8s={**base, **info})


def _probe_pod(ns: str, image: str, gpus: int, memory: bool) -> dict[str, Any]:
    """A pod that is only ever created with ``dryRun=All``: the API server runs admission
    (quota, policies) on it and stores nothing."""
    limits: dict[str, str] = {_GPU: str(gpus)} if gpus else {}
    if memory:
        limits["memory"] = "64Mi"
    container: dict[str, Any] = {"name": "probe", "image": image}
    if limits:
        container["resources"] = {"limits": limits}
    meta = {"name": "gpuchaos-admission-probe", "namespace": ns,
            "labels": {"app.kubernetes.io/managed-by": "gpuchaos"}}  # fmt: skip
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta,
            "spec": {"containers": [container]}}  # fmt: skip


def _dry_run_create(host: ClusterHost, pod: dict[str, Any]) -> str:
    """'admitted', or 'refused (CODE): message' as the API server answered a dry-run."""
    from kubernetes.client.exceptions import ApiException

    ns = pod["metadata"]["namespace"]
    try:
        host.core().create_namespaced_pod(ns, pod, dry_run="All")
    except ApiException as exc:
        try:
            message = json.loads(exc.body or "{}").get("message") or exc.reason
        except ValueError:
            message = exc.reason
        return f"refused ({exc.status}): {message}"
    return "admitted"


# -- k8s_exhaust_quota ------------------------------------------------------------------------


class QuotaArgs(FaultArgs):
    tenant: str | None = _tenant_field()
    quota: int | None = Field(
        None, ge=0, le=MAX_NODE_REPLICAS * 16,
        description=(
            "The GPUs the quota allows while the fault holds (requests.nvidia.com/gpu), 0 to "
            f"{MAX_NODE_REPLICAS * 16}; default: what the tenant uses now, so no replica "
            "can be added."
        ),
    )  # fmt: skip
    quota_name: str | None = Field(
        None, pattern=_NAME, max_length=253,
        description="The ResourceQuota (default: the one in the namespace that limits GPUs).",
    )  # fmt: skip
    duration_s: float = duration_field(60.0, "0 holds it until restore_k8s_quota or the end")
    ttl_s: float | None = ttl_field()
    probe: bool = Field(
        True,
        description="Also ask the API server (a dry-run create of a pod with one GPU) whether "
        "one more replica would be admitted; its answer goes in the proof.",
    )


def _find_quota(host: ClusterHost, ns: str, name: str | None) -> Any:
    quotas = host.core().list_namespaced_resource_quota(ns).items
    for q in quotas:
        if name is not None and q.metadata.name == name:
            return q
        if name is None and GPU_QUOTA_KEY in ((q.spec.hard or {}) if q.spec else {}):
            return q
    what = f"ResourceQuota {name!r}" if name else f"ResourceQuota on {GPU_QUOTA_KEY}"
    raise FaultNoEffect(f"k8s_exhaust_quota {ns}", f"namespace {ns} has no {what}")


def _gpus_used(host: ClusterHost, ns: str, quota: Any) -> int:
    """GPUs the namespace uses: the quota's status when the controller wrote it, else the
    GPU requests (or limits) of its pods that are not finished, as that controller counts."""
    used = (quota.status.used or {}) if quota.status else {}
    if GPU_QUOTA_KEY in used:
        return int(float(used[GPU_QUOTA_KEY]))
    total = 0
    for pod in host.core().list_namespaced_pod(ns).items:
        if pod.status is not None and pod.status.phase in ("Succeeded", "Failed"):
            continue
        for c in pod.spec.containers or []:
            res = c.resources
            amounts = (res.requests or {}) if res else {}
            amount = amounts.get(_GPU) or ((res.limits or {}).get(_GPU) if res else None)
            total += int(float(amount or 0))
    return total


@register
class ExhaustK8sQuota(Fault[QuotaArgs]):
    """A tenant's GPU quota exhausted: the ResourceQuota's ``hard`` on
    ``requests.nvidia.com/gpu`` patched down to what the namespace uses (or ``quota``), so a
    scale-up's pods are refused with "exceeded quota". Proof: the quota read back with the
    new value, and a dry-run create of a one-GPU pod answered (refused: "exceeded quota").
    Revert: the original value back, unless someone changed it since."""

    name = "k8s_exhaust_quota"
    platform = "kubernetes"
    args = QuotaArgs
    target_arg = "tenant"
    revert_action = "restore_k8s_quota"
    hold = "open"
    aliases = {"namespace": "tenant"}
    mechanism = "ResourceQuota patch"
    summary = "A tenant's GPU quota cut to what it uses: scale-ups refused with exceeded quota"
    proves = "the ResourceQuota reads back with the new hard value"

    def pick_target(self, ctx: FaultContext, args: QuotaArgs) -> str:
        return str(ctx.platform.namespace)

    def _quota(self, host: ClusterHost, args: QuotaArgs, ns: str) -> tuple[Any, int, str | None]:
        host.safety.namespace(ns)
        obj = _find_quota(host, ns, args.quota_name)
        used = _gpus_used(host, ns, obj)
        return obj, used, (obj.spec.hard or {}).get(GPU_QUOTA_KEY)

    def plan(self, ctx: FaultContext, args: QuotaArgs, target: str) -> dict[str, Any]:
        obj, used, was = self._quota(ctx.platform, args, target)
        value = used if args.quota is None else args.quota
        return {"would": f"would set resourcequota {target}/{obj.metadata.name} "
                f"{GPU_QUOTA_KEY} from {was} to {value} (used {used})"}  # fmt: skip

    def inject(self, ctx: FaultContext, args: QuotaArgs, target: str) -> Injection:
        host: ClusterHost = ctx.platform
        obj, used, was = self._quota(host, args, target)
        value = str(used if args.quota is None else args.quota)
        if was == value:
            raise FaultNoEffect(f"{self.name} {target}", f"{GPU_QUOTA_KEY} is {value} already")
        name = obj.metadata.name
        info = {"action": "restore_quota", "quota": name, "key": GPU_QUOTA_KEY,
                "original": json.dumps(was), "set": value}  # fmt: skip
        active = _guard(host, self.name, target, _ttl(args.duration_s, args.ttl_s), info)
        with active.undone_on_error():
            set_quota_hard(host.core(), target, name, GPU_QUOTA_KEY, value,
                           obj.metadata.resource_version)  # fmt: skip
        log.info("resourcequota %s/%s %s: %s -> %s", target, name, GPU_QUOTA_KEY, was, value)
        facts = {"tenant": target, "quota": name, "was": was, "set": value, "used": used}
        return Injection(target, active, facts)

    def prove(
        self, ctx: FaultContext, args: QuotaArgs, injection: Injection
    ) -> dict[str, Any] | None:
        host: ClusterHost = ctx.platform
        facts = injection.facts
        obj = host.core().read_namespaced_resource_quota(facts["quota"], injection.target)
        if (obj.spec.hard or {}).get(GPU_QUOTA_KEY) != facts["set"]:
            return None
        proof = {**facts, "affected": [],
                 "checked": f"resourcequota {facts['quota']} reads back "
                 f"{GPU_QUOTA_KEY}={facts['set']}"}  # fmt: skip
        if args.probe:
            pod = _probe_pod(injection.target, host.spec.image, 1, memory=True)
            proof["probe"] = _dry_run_create(host, pod)
        return proof


# -- k8s_deny_admission -----------------------------------------------------------------------


class AdmissionArgs(FaultArgs):
    tenant: str | None = _tenant_field()
    rule: Literal["memory-cap", "all"] = Field(
        "memory-cap",
        description="memory-cap: deny pods with a container without resources.limits.memory "
        "(the contract's cap); all: deny every new pod of the namespace.",
    )
    duration_s: float = duration_field(60.0, "0 holds it until allow_k8s_admission or the end")
    ttl_s: float | None = ttl_field()
    probe: bool = Field(
        True,
        description="Also ask the API server (a dry-run create of a pod without a memory "
        "limit) whether the policy denies it; its answer goes in the proof (a new policy "
        "may take a second to be enforced, and a LimitRange's default limit satisfies "
        "memory-cap).",
    )


def _exists(read: Any, name: str) -> bool:
    from kubernetes.client.exceptions import ApiException

    try:
        read(name)
    except ApiException as exc:
        if exc.status == 404:
            return False
        raise
    return True


@register
class DenyK8sAdmission(Fault[AdmissionArgs]):
    """Admission denial for a tenant: a ValidatingAdmissionPolicy (admissionregistration
    v1, CEL: every container has ``resources.limits.memory``; or ``all``: nothing) and its
    binding scoped to the tenant's namespace with ``validationActions: [Deny]``, named
    ``gpuchaos-deny-<rule>-<namespace>``, so a pod that breaks the contract (a replacement,
    a scale-up) is refused, as Kyverno or Gatekeeper would. Proof: both objects read back,
    and a dry-run create of a pod without a memory limit answered. Revert: both deleted."""

    name = "k8s_deny_admission"
    platform = "kubernetes"
    args = AdmissionArgs
    target_arg = "tenant"
    revert_action = "allow_k8s_admission"
    hold = "open"
    aliases = {"namespace": "tenant"}
    mechanism = "ValidatingAdmissionPolicy"
    summary = "A validating admission policy denies a tenant's pods without a memory cap"
    proves = "the policy and its binding read back"

    def pick_target(self, ctx: FaultContext, args: AdmissionArgs) -> str:
        return str(ctx.platform.namespace)

    def plan(self, ctx: FaultContext, args: AdmissionArgs, target: str) -> dict[str, Any]:
        ctx.platform.safety.namespace(target)
        name = admission_name(target, args.rule)
        return {"would": f"would create validatingadmissionpolicy and binding {name} "
                f"({args.rule}) for namespace {target}"}  # fmt: skip

    def inject(self, ctx: FaultContext, args: AdmissionArgs, target: str) -> Injection:
        from kubernetes import client

        host: ClusterHost = ctx.platform
        host.safety.namespace(target)
        adm: Any = client.AdmissionregistrationV1Api(host.api)  # takes the dicts as they are
        name = admission_name(target, args.rule)
        if _exists(adm.read_validating_admission_policy, name):
            raise ChaosError(f"validatingadmissionpolicy {name} exists already (another run?)")
        policy, binding = admission_objects(target, args.rule, self.name)
        info = {"action": "delete_admission", "name": name}
        active: ActiveFault = _guard(host, self.name, target,
                                     _ttl(args.duration_s, args.ttl_s), info)  # fmt: skip
        with active.undone_on_error():
            adm.create_validating_admission_policy(policy)
            adm.create_validating_admission_policy_binding(binding)
        log.info("admission policy %s (%s) bound to namespace %s", name, args.rule, target)
        return Injection(target, active, {"tenant": target, "rule": args.rule, "policy": name})

    def prove(
        self, ctx: FaultContext, args: AdmissionArgs, injection: Injection
    ) -> dict[str, Any] | None:
        from kubernetes import client

        host: ClusterHost = ctx.platform
        adm = client.AdmissionregistrationV1Api(host.api)
        name = injection.facts["policy"]
        if not (
            _exists(adm.read_validating_admission_policy, name)
            and _exists(adm.read_validating_admission_policy_binding, name)
        ):
            return None
        proof = {**injection.facts, "affected": [],
                 "checked": f"validatingadmissionpolicy and binding {name} read back"}  # fmt: skip
        if args.probe:
            pod = _probe_pod(injection.target, host.spec.image, 0, memory=False)
            proof["probe"] = _dry_run_create(host, pod)
        return proof
