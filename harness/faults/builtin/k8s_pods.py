"""Pod faults on Kubernetes: a replica crash (pod termination, grace period 0, through
chaostoolkit-kubernetes) and the NVIDIA device plugin's pod deleted on a node (its
DaemonSet recreates it).

What they teach: a crash tests the Deployment's replacement and the Service's endpoints; a
lost device plugin tests what happens to GPU scheduling while the node's GPUs are not
advertised. Neither needs undoing: the controllers bring the pods back.
"""

from __future__ import annotations

import re
import time
from typing import Any

from pydantic import Field

from harness.config.base import MAX_INTERVAL_S
from harness.errors import FaultNoEffect
from harness.faults.builtin._kube import pick_gpu_node, pick_pod, pod_gone
from harness.faults.contract import Fault, FaultArgs, FaultContext, Injection
from harness.faults.hosts import ClusterHost
from harness.faults.registry import register


class TerminateArgs(FaultArgs):
    replica: str | None = Field(
        None, description="The workload pod to terminate (default: the first Ready by name)."
    )
    grace_period_s: int = Field(
        0,
        ge=0,
        le=MAX_INTERVAL_S,
        description=(
            "Termination grace period in seconds (0: killed at once), at most "
            f"{MAX_INTERVAL_S} (1 hour)."
        ),
    )


@register
class TerminateReplica(Fault[TerminateArgs]):
    name = "terminate_replica"
    platform = "kubernetes"
    args = TerminateArgs
    target_arg = "replica"
    aliases = {"pod": "replica"}
    summary = "Replica crash: one workload pod terminated; its Deployment replaces it"
    proves = "that pod (its uid) is gone"

    def pick_target(self, ctx: FaultContext, args: TerminateArgs) -> str:
        return str(pick_pod(ctx.platform, None).metadata.name)

    def plan(self, ctx: FaultContext, args: TerminateArgs, target: str) -> dict[str, Any]:
        host: ClusterHost = ctx.platform
        victim = pick_pod(host, target)
        return {
            "pod": target,
            "would": f"would terminate pod {host.namespace}/{target} on {victim.spec.node_name}",
        }

    def inject(self, ctx: FaultContext, args: TerminateArgs, target: str) -> Injection:
        from chaosk8s.pod.actions import terminate_pods

        host: ClusterHost = ctx.platform
        victim = pick_pod(host, target)
        name, uid, node = victim.metadata.name, victim.metadata.uid, victim.spec.node_name
        terminate_pods(
            label_selector=host.pod_selector,
            name_pattern=f"^{re.escape(name)}$",
            ns=host.namespace,
            qty=1,
            grace_period=args.grace_period_s,
            secrets=host.chaos_secrets,
        )
        return Injection(target, None, {"pod": name, "node": node, "uid": uid})

    def prove(
        self, ctx: FaultContext, args: TerminateArgs, injection: Injection
    ) -> dict[str, Any] | None:
        host: ClusterHost = ctx.platform
        if not pod_gone(host, host.namespace, injection.facts["pod"], injection.facts["uid"]):
            return None
        return {"checked": "the pod (its uid) is gone"}

    def finish(
        self, ctx: FaultContext, args: TerminateArgs, injection: Injection
    ) -> dict[str, Any]:
        ctx.platform.refresh()
        return {}


class DevicePluginArgs(FaultArgs):
    node: str | None = Field(
        None, description="The GPU node (default: the one with most Ready workload pods)."
    )
    wait_recreated_s: float = Field(
        60.0, ge=0, le=MAX_INTERVAL_S, allow_inf_nan=False,
        description=(
            "Seconds to wait for the DaemonSet's new pod to be Ready (reported; 0: no wait), "
            f"at most {MAX_INTERVAL_S} (1 hour)."
        ),
    )  # fmt: skip


def _plugin_pods(host: ClusterHost, node: str) -> list[Any]:
    dp = host.spec.device_plugin
    return list(
        host.core()
        .list_namespaced_pod(
            dp.namespace, label_selector=dp.label_selector, field_selector=f"spec.nodeName={node}"
        )
        .items
    )


@register
class DisruptDevicePlugin(Fault[DevicePluginArgs]):
    name = "disrupt_device_plugin"
    platform = "kubernetes"
    args = DevicePluginArgs
    target_arg = "node"
    summary = "The NVIDIA device plugin's pod on a node deleted; its DaemonSet recreates it"
    proves = "that pod (its uid) is gone"

    def pick_target(self, ctx: FaultContext, args: DevicePluginArgs) -> str:
        ctx.platform.safety.namespace(ctx.platform.spec.device_plugin.namespace)
        return pick_gpu_node(ctx.platform)

    def _victim(self, host: ClusterHost, target: str) -> Any:
        dp = host.spec.device_plugin
        host.safety.namespace(dp.namespace)  # only in an allowlisted namespace
        host.gpu_node(target)
        pods = _plugin_pods(host, target)
        if not pods:
            raise FaultNoEffect(
                f"{self.name} {target}",
                f"no device plugin pod ({dp.label_selector}) in {dp.namespace} on the node",
            )
        return pods[0]

    def plan(self, ctx: FaultContext, args: DevicePluginArgs, target: str) -> dict[str, Any]:
        host: ClusterHost = ctx.platform
        name = self._victim(host, target).metadata.name
        ns = host.spec.device_plugin.namespace
        return {"pod": name, "would": f"would delete device plugin pod {ns}/{name} on {target}"}

    def inject(self, ctx: FaultContext, args: DevicePluginArgs, target: str) -> Injection:
        host: ClusterHost = ctx.platform
        victim = self._victim(host, target)
        name, uid = victim.metadata.name, victim.metadata.uid
        injection = Injection(target, None, {"pod": name})
        injection.scratch.update(uid=uid, t0=time.monotonic())
        host.core().delete_namespaced_pod(
            name, host.spec.device_plugin.namespace, grace_period_seconds=0
        )
        return injection

    def prove(
        self, ctx: FaultContext, args: DevicePluginArgs, injection: Injection
    ) -> dict[str, Any] | None:
        host: ClusterHost = ctx.platform
        ns = host.spec.device_plugin.namespace
        if not pod_gone(host, ns, injection.facts["pod"], injection.scratch["uid"]):
            return None
        return {"checked": "the device plugin pod (its uid) is gone"}

    def finish(
        self, ctx: FaultContext, args: DevicePluginArgs, injection: Injection
    ) -> dict[str, Any]:
        """How long the DaemonSet took to bring a Ready pod back (None: not within
        ``wait_recreated_s``)."""
        host: ClusterHost = ctx.platform
        t0, uid = injection.scratch["t0"], injection.scratch["uid"]
        recreated_after: float | None = None
        try:
            while time.monotonic() < t0 + args.wait_recreated_s:
                again = [
                    p
                    for p in _plugin_pods(host, injection.target)
                    if p.metadata.uid != uid and host.pod_ready(p)
                ]
                if again:
                    recreated_after = round(time.monotonic() - t0, 3)
                    break
                time.sleep(0.5)
        finally:
            host.refresh()
        return {"recreated_after_s": recreated_after}
