"""GPU failure modes on Kubernetes, the same names and arguments as on the local platform
(:mod:`harness.faults.builtin.gpu`): a poisoned CUDA context, a GPU lost under Running pods,
a throttled GPU. All three reach the reference workload's fault hook (``POST /admin/fault``)
through the API server's pod proxy with the token from the platform's Secret
(:mod:`harness.faults.kubehook`); nothing is exec'd.

What they teach on a cluster:

- ``poison_replica``: the pod stays Running and Ready with a shallow liveness probe while
  every inference fails; only a deep liveness probe (or a person) gets the kubelet to
  restart it.
- ``lose_gpu``: the device plugin marks a GPU unhealthy and Kubernetes only stops scheduling
  there; it does not evict the pods already on it (NVIDIA/k8s-device-plugin#519). Here: a
  ``NoSchedule`` taint on the node (default key ``nvidia.com/gpu-unhealthy``, value
  ``xid-<N>``) plus a poisoned context in each of its workload pods. A pod that restarts
  goes elsewhere only if another node has room.
- ``throttle_gpu``: every step of the node's pods is stretched; nothing fails.

Reverts, also by the detached reverter when the harness dies or the time-to-live ends (state
files of kind ``k8s``, undone by :func:`harness.faults.kube.revert_k8s`): a poisoned pod is
deleted (its uid as precondition) so its Deployment replaces it, the taint is removed, a
throttle is undone by the hook's ``clear`` (the token read from the Secret then).
"""

from __future__ import annotations

import contextlib
from typing import Any

from pydantic import Field

from harness.config.base import MAX_MULTIPLIER
from harness.errors import ChaosError, FaultNoEffect
from harness.faults.builtin import _k8s_hook as kh
from harness.faults.builtin._kube import pick_gpu_node, pick_pod, pod_gone, workload_pods_on
from harness.faults.contract import (
    Fault,
    FaultArgs,
    FaultContext,
    Injection,
    duration_field,
    ttl_field,
)
from harness.faults.hosts import ClusterHost
from harness.faults.kube import taint_node
from harness.faults.policy import PROOF_TIMEOUT_S, ttl_for
from harness.faults.registry import register

#: The taint a lost GPU puts on its node (effect NoSchedule, value xid-<N>).
TAINT_KEY = "nvidia.com/gpu-unhealthy"


def _xid_field() -> Any:
    return Field(
        kh.DEFAULT_XID, ge=0, le=kh.MAX_XID,
        description=(
            "The XID the fault stands for, written to its events (79: GPU fallen off the bus; "
            f"48: double-bit ECC; 94/95: contained/uncontained ECC), 0 to {kh.MAX_XID}."
        ),
    )  # fmt: skip


def _ttl(duration_s: float, ttl_s: float | None) -> float:
    """The time-to-live: as given, else the hold plus the proof time-out on a cluster plus
    the margin (0: held until reverted)."""
    if ttl_s is not None or duration_s <= 0:
        return ttl_for(duration_s, ttl_s)
    return ttl_for(duration_s, None) + PROOF_TIMEOUT_S["kubernetes"]


def _ready_pods_on(host: ClusterHost, node: str) -> dict[str, str]:
    """uid -> name of the Ready workload pods on ``node``."""
    on = workload_pods_on(host, node)
    return {p.metadata.uid: p.metadata.name for p in host.pods()
            if p.metadata.uid in on and host.pod_ready(p)}  # fmt: skip


# -- poison_replica -------------------------------------------------------------------------


class PoisonArgs(FaultArgs):
    replica: str | None = Field(
        None, description="The workload pod to poison (default: the first Ready by name)."
    )
    xid: int = _xid_field()
    duration_s: float = duration_field(
        30.0, "0 leaves it poisoned until restart_poisoned_replica or the run ends"
    )
    ttl_s: float | None = ttl_field()


@register
class PoisonPod(Fault[PoisonArgs]):
    """Poisoned CUDA context in a pod (XID): it stays Running while every inference fails.
    Mechanism: the fault hook (``poison``) through the pod proxy. Proof: the hook reports it,
    a probe request through the proxy fails with "CUDA error" and the failure counter
    moves; /health/live is asked too. Revert: the pod is deleted (restarted by its
    Deployment), if the same pod (uid) still runs."""

    name = "poison_replica"
    platform = "kubernetes"
    args = PoisonArgs
    target_arg = "replica"
    revert_action = "restart_poisoned_replica"
    hold = "open"
    aliases = {"pod": "replica"}
    mechanism = "hook via pod proxy"
    summary = (
        "Poisoned CUDA context in a pod (XID): Running, every inference fails until restart "
        "[hook via the pod proxy]"
    )
    proves = "a probe request through the pod proxy fails with 'CUDA error'"

    def pick_target(self, ctx: FaultContext, args: PoisonArgs) -> str:
        return str(pick_pod(ctx.platform, None).metadata.name)

    def plan(self, ctx: FaultContext, args: PoisonArgs, target: str) -> dict[str, Any]:
        host: ClusterHost = ctx.platform
        name = pick_pod(host, target).metadata.name
        return {"pod": name, "would": f"would POST poison (xid {args.xid}) to the fault hook "
                f"of pod {host.namespace}/{name} through the pod proxy"}  # fmt: skip

    def inject(self, ctx: FaultContext, args: PoisonArgs, target: str) -> Injection:
        host: ClusterHost = ctx.platform
        pod = pick_pod(host, target)
        name, uid = pod.metadata.name, pod.metadata.uid
        kh.token(host, name)  # no token: no effect, before any state file
        before = kh.failures(host, name)
        ttl = _ttl(args.duration_s, args.ttl_s)
        active = kh.restart_guard(host, self.name, name, {uid: name}, ttl)
        with active.undone_on_error():
            try:
                kh.hook(host, name, {"kind": "poison", "xid": args.xid})
            except ChaosError as exc:
                raise FaultNoEffect(f"{self.name} {name}", str(exc)) from None
        injection = Injection(name, active, {"pod": name, "node": pod.spec.node_name,
                                             "xid": args.xid})  # fmt: skip
        injection.scratch.update(uid=uid, before=before)
        return injection

    def prove(
        self, ctx: FaultContext, args: PoisonArgs, injection: Injection
    ) -> dict[str, Any] | None:
        proof = kh.poison_proof(ctx.platform, injection.target, injection.scratch["before"])
        if not proof.pop("poisoned"):
            injection.scratch["last"] = proof
            return None
        return {**proof, "xid": args.xid, "via": "hook",
                "checked": "probe through the pod proxy failed with CUDA error"}  # fmt: skip

    def no_effect(self, ctx: FaultContext, args: PoisonArgs, injection: Injection) -> str:
        return f"not seen: {self.proves}; last probe: {injection.scratch.get('last')}"

    def finish(self, ctx: FaultContext, args: PoisonArgs, injection: Injection) -> dict[str, Any]:
        host: ClusterHost = ctx.platform
        gone = pod_gone(host, host.namespace, injection.target, injection.scratch["uid"])
        host.refresh()
        return {"restarted": gone}


# -- lose_gpu -------------------------------------------------------------------------------


class LoseGpuArgs(FaultArgs):
    node: str | None = Field(
        None, description="The GPU node whose GPU is lost (default: the one with most Ready pods)."
    )
    duration_s: float = duration_field(30.0)
    xid: int = _xid_field()
    taint_key: str = Field(
        TAINT_KEY,
        description=(
            "Key of the NoSchedule taint that marks the GPU unhealthy (value xid-<N>); a node "
            "that carries it already is refused (someone else marked it)."
        ),
        pattern=r"^([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$",
        max_length=316,
    )
    ttl_s: float | None = ttl_field()


@register
class LoseGpuOnNode(Fault[LoseGpuArgs]):
    """GPU lost under Running pods (XID 79): the node stays Ready, a ``NoSchedule`` taint
    (``nvidia.com/gpu-unhealthy=xid-79``) keeps new pods off it for ``unhealthy_s``
    (``duration_s``), and every workload pod on it gets a poisoned context (the hook via the
    pod proxy); nothing evicts them, as with the device plugin. Proof: the taint is on the
    node and each pod fails a probe with "CUDA error" (or is gone). Revert: the taint
    removed, and the poisoned pods that still run deleted (restarted by their Deployment)."""

    name = "lose_gpu"
    platform = "kubernetes"
    args = LoseGpuArgs
    target_arg = "node"
    revert_action = "restore_gpu"
    hold = "timed"
    aliases = {"unhealthy_s": "duration_s"}
    mechanism = "taint + hook via pod proxy"
    summary = (
        "GPU lost under Running pods (XID 79): NoSchedule taint on the node plus a poisoned "
        "context in its pods [taint via the API, poison via the hook]"
    )
    proves = "the taint is on the node and every pod on it fails a probe with 'CUDA error'"

    def pick_target(self, ctx: FaultContext, args: LoseGpuArgs) -> str:
        return pick_gpu_node(ctx.platform)

    def plan(self, ctx: FaultContext, args: LoseGpuArgs, target: str) -> dict[str, Any]:
        host: ClusterHost = ctx.platform
        host.gpu_node(target)
        pods = sorted(_ready_pods_on(host, target).values())
        taint = f"{args.taint_key}=xid-{args.xid}:NoSchedule"
        would = f"would taint node {target} {taint} for {args.duration_s:g} s, poison {pods}"
        return {"pods": pods, "would": would}

    def inject(self, ctx: FaultContext, args: LoseGpuArgs, target: str) -> Injection:
        host: ClusterHost = ctx.platform
        node = host.gpu_node(target)  # refuses nodes without the GPU labels
        if any(t.key == args.taint_key for t in node.spec.taints or []):
            raise FaultNoEffect(
                f"{self.name} {target}", f"the node carries {args.taint_key} already"
            )
        pods = _ready_pods_on(host, target)
        if not pods:
            raise FaultNoEffect(f"{self.name} {target}", "no Ready workload pod runs on the node")
        for name in pods.values():
            kh.token(host, name)
        before = {name: kh.failures(host, name) for name in pods.values()}
        ttl = _ttl(args.duration_s, args.ttl_s)
        active = kh.restart_guard(host, self.name, target, pods, ttl, (target, args.taint_key))
        with active.undone_on_error():
            taint_node(host.core(), target, args.taint_key, f"xid-{args.xid}")
            for name in pods.values():
                try:
                    kh.hook(host, name, {"kind": "poison", "xid": args.xid})
                except ChaosError as exc:
                    raise FaultNoEffect(f"{self.name} {target}", f"{name}: {exc}") from None
        taint = f"{args.taint_key}=xid-{args.xid}:NoSchedule"
        facts = {"xid": args.xid, "taint": taint, "pods": sorted(pods.values()),
                 "unhealthy_s": args.duration_s}  # fmt: skip
        injection = Injection(target, active, facts)
        injection.scratch.update(pods=pods, before=before)
        return injection

    def prove(
        self, ctx: FaultContext, args: LoseGpuArgs, injection: Injection
    ) -> dict[str, Any] | None:
        host: ClusterHost = ctx.platform
        taints = host.core().read_node(injection.target).spec.taints or []
        if not any(t.key == args.taint_key and t.effect == "NoSchedule" for t in taints):
            return None
        seen: dict[str, str] = {}
        for uid, name in injection.scratch["pods"].items():
            if pod_gone(host, host.namespace, name, uid):
                seen[name] = "restarted"
                continue
            proof = kh.poison_proof(host, name, injection.scratch["before"][name])
            if not proof["poisoned"]:
                injection.scratch["last"] = {name: proof}
                return None
            seen[name] = f"probe {proof['probe_status']}: {proof['probe_error'][:60]}"
        return {"xid": args.xid, "taint": injection.facts["taint"], "probes": seen,
                "checked": "taint on the node, probes failed with CUDA error"}  # fmt: skip

    def no_effect(self, ctx: FaultContext, args: LoseGpuArgs, injection: Injection) -> str:
        return f"not seen: {self.proves}; last: {injection.scratch.get('last')}"

    def finish(self, ctx: FaultContext, args: LoseGpuArgs, injection: Injection) -> dict[str, Any]:
        ctx.platform.refresh()
        return {"unhealthy_s": args.duration_s}


# -- throttle_gpu ---------------------------------------------------------------------------


class ThrottleArgs(FaultArgs):
    node: str | None = Field(
        None, description="The GPU node whose GPU is throttled (default: the busiest)."
    )
    factor: float = Field(
        3.0, gt=1, le=MAX_MULTIPLIER,
        description=(
            "How much longer each model step takes (2: twice as long), more than 1 and at "
            f"most {MAX_MULTIPLIER}."
        ),
    )  # fmt: skip
    duration_s: float = duration_field(30.0, "0 holds it until unthrottle_gpu or the end")
    ttl_s: float | None = ttl_field()


@register
class ThrottleGpuOnNode(Fault[ThrottleArgs]):
    """Throttled GPU on a node (thermal or power): every model step of its workload pods
    takes ``factor`` times as long, through the fault hook via the pod proxy (never by
    changing the device's clocks or power limit); nothing fails. Proof: each pod's hook
    reports the factor and a probe request still succeeds. Revert: the hook's ``clear``."""

    name = "throttle_gpu"
    platform = "kubernetes"
    args = ThrottleArgs
    target_arg = "node"
    revert_action = "unthrottle_gpu"
    hold = "open"
    mechanism = "hook via pod proxy"
    summary = (
        "Throttled GPU: every step of the node's pods stretched by a factor; nothing fails "
        "[hook via the pod proxy]"
    )
    proves = "every pod's hook reports the factor and a probe request still succeeds"

    def pick_target(self, ctx: FaultContext, args: ThrottleArgs) -> str:
        return pick_gpu_node(ctx.platform)

    def plan(self, ctx: FaultContext, args: ThrottleArgs, target: str) -> dict[str, Any]:
        host: ClusterHost = ctx.platform
        host.gpu_node(target)
        pods = sorted(_ready_pods_on(host, target).values())
        return {"pods": pods, "would": f"would POST throttle x{args.factor:g} to the fault "
                f"hooks of pods {pods} on {target}"}  # fmt: skip

    def inject(self, ctx: FaultContext, args: ThrottleArgs, target: str) -> Injection:
        host: ClusterHost = ctx.platform
        host.gpu_node(target)
        pods = sorted(_ready_pods_on(host, target).values())
        if not pods:
            raise FaultNoEffect(f"{self.name} {target}", "no Ready workload pod runs on the node")
        for name in pods:
            kh.token(host, name)
        active = kh.clear_guard(host, self.name, target, pods, ttl_for(args.duration_s, args.ttl_s))
        with active.undone_on_error():
            for name in pods:
                try:
                    kh.hook(host, name, {"kind": "throttle", "factor": args.factor})
                except ChaosError as exc:
                    raise FaultNoEffect(f"{self.name} {target}", f"{name}: {exc}") from None
        return Injection(target, active, {"factor": args.factor, "pods": pods})

    def prove(
        self, ctx: FaultContext, args: ThrottleArgs, injection: Injection
    ) -> dict[str, Any] | None:
        host: ClusterHost = ctx.platform
        seen: dict[str, Any] = {}
        for name in injection.facts["pods"]:
            with contextlib.suppress(ChaosError):
                state = kh.hook(host, name)
                status, _ = kh.probe_request(host, name)
                if state.get("throttle") != args.factor or status != 200:
                    return None
                seen[name] = {"throttle": state["throttle"], "probe_status": status}
        if len(seen) != len(injection.facts["pods"]):
            return None
        return {"factor": args.factor, "probes": seen, "via": "hook",
                "checked": "hook state and a probe through the pod proxy"}  # fmt: skip
