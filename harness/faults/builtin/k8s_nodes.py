"""GPU node loss on Kubernetes: cordon and drain (chaostoolkit-kubernetes), or delete the
Node object.

Drain: the node is cordoned and its pods evicted (PodDisruptionBudgets apply); proof: the
node is unschedulable and none of the workload pods that ran on it is still there; after
``duration_s`` it is uncordoned. Delete: the Node object goes (its manifest saved first),
and its workload pods with it, as the pod garbage collector would; proof: the node is gone
and none of its pods is still bound to it; after ``duration_s`` it is created again from the
saved manifest (``recreate: false`` leaves that to the cluster, e.g. a node group that
registers it again; the reverter still recreates it at the time-to-live, and the run's end
does, if it is still gone). Both are registered with the detached reverter before they take
effect, so a dead harness leaves no cordoned or missing node behind.

What it teaches: whether the Deployment's replicas find room elsewhere, how long they stay
Pending, and whether a PodDisruptionBudget holds.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from pydantic import Field

from harness.config.base import MAX_DURATION_S
from harness.errors import ChaosError, FaultNoEffect
from harness.faults.active import guard, in_process
from harness.faults.builtin._kube import node_gone, pick_gpu_node, workload_pods_on
from harness.faults.contract import Fault, FaultArgs, FaultContext, Injection, duration_field
from harness.faults.hosts import ClusterHost
from harness.faults.kube import node_manifest
from harness.faults.lifecycle import release
from harness.faults.policy import PROOF_TIMEOUT_S, TTL_MARGIN_S
from harness.faults.registry import register
from harness.rundir import RunDir

log = logging.getLogger(__name__)


class DrainArgs(FaultArgs):
    node: str | None = Field(
        None, description="The GPU node to drain (default: the one with most Ready pods)."
    )
    duration_s: float = duration_field(60.0)
    timeout_s: int = Field(
        120,
        ge=1,
        le=MAX_DURATION_S,
        description=f"Seconds the drain may take (evictions), 1 to {MAX_DURATION_S} (7 days).",
    )


@register
class DrainGpuNode(Fault[DrainArgs]):
    name = "drain_gpu_node"
    platform = "kubernetes"
    args = DrainArgs
    target_arg = "node"
    revert_action = "uncordon_gpu_node"
    hold = "timed"
    aliases = {"down_for_s": "duration_s"}
    summary = "GPU node loss by cordon and drain; uncordoned at the end"
    proves = "the node is unschedulable and none of its workload pods is left on it"

    def pick_target(self, ctx: FaultContext, args: DrainArgs) -> str:
        return pick_gpu_node(ctx.platform)

    def plan(self, ctx: FaultContext, args: DrainArgs, target: str) -> dict[str, Any]:
        host: ClusterHost = ctx.platform
        host.gpu_node(target)  # refuses nodes without the GPU labels
        before = workload_pods_on(host, target)
        host.drain(target, args.timeout_s)  # a dry run: it only says what it would do
        host.uncordon(target)
        return {"pods": sorted(before.values())}

    def inject(self, ctx: FaultContext, args: DrainArgs, target: str) -> Injection:
        host: ClusterHost = ctx.platform
        host.gpu_node(target)  # refuses nodes without the GPU labels
        before = workload_pods_on(host, target)
        if not before:
            raise FaultNoEffect(f"{self.name} {target}", "no workload pod runs on the node")

        def uncordon() -> None:
            host.uncordon(target)
            host.refresh()

        active = in_process(self.name, target, uncordon)  # the platform guards the cordon
        with active.undone_on_error():
            host.drain(
                target, args.timeout_s, ttl_s=args.duration_s + args.timeout_s + TTL_MARGIN_S
            )
        injection = Injection(target, active, {"evicted": sorted(before.values())})
        injection.scratch["before"] = before
        return injection

    def prove(
        self, ctx: FaultContext, args: DrainArgs, injection: Injection
    ) -> dict[str, Any] | None:
        host: ClusterHost = ctx.platform
        host.refresh()
        if not host.gpu_node(injection.target).spec.unschedulable:
            return None
        before = injection.scratch["before"]
        if set(before) & set(workload_pods_on(host, injection.target)):
            return None
        log.info("node %s drained: evicted %s", injection.target, before)
        return {"checked": "node unschedulable, its workload pods gone"}

    def finish(self, ctx: FaultContext, args: DrainArgs, injection: Injection) -> dict[str, Any]:
        return {"down_for_s": args.duration_s}

    def on_revert_action(self, ctx: FaultContext, target: str | None) -> dict[str, Any]:
        """Uncordon ``target``, or every node this run cordoned."""
        host: ClusterHost = ctx.platform
        targets = [target] if target else sorted(host.cordoned)
        release(self.name, target)
        for node in targets:
            host.uncordon(node)
        return {"uncordoned": targets}


class DeleteArgs(FaultArgs):
    node: str | None = Field(
        None, description="The GPU node to delete (default: the one with most Ready pods)."
    )
    duration_s: float = duration_field(60.0)
    recreate: bool = Field(
        True,
        description="Create the node again after duration_s; false: leave it to the cluster "
        "(still recreated at the time-to-live or the end of the run if gone).",
    )


def _saved(host: ClusterHost, node: str) -> Path | None:
    return RunDir(host.run_dir).node_manifest(node) if host.run_dir is not None else None


@register
class DeleteGpuNode(Fault[DeleteArgs]):
    name = "delete_gpu_node"
    platform = "kubernetes"
    args = DeleteArgs
    target_arg = "node"
    revert_action = "recreate_gpu_node"
    hold = "timed"
    aliases = {"down_for_s": "duration_s"}
    summary = "GPU node loss by deleting the Node object and its pods; recreated at the end"
    proves = "the node is gone and none of its pods is still bound to it"

    def held_open(self, args: DeleteArgs) -> bool:
        return not args.recreate

    def pick_target(self, ctx: FaultContext, args: DeleteArgs) -> str:
        return pick_gpu_node(ctx.platform)

    def plan(self, ctx: FaultContext, args: DeleteArgs, target: str) -> dict[str, Any]:
        host: ClusterHost = ctx.platform
        host.gpu_node(target)
        pods = sorted(workload_pods_on(host, target).values())
        would = (
            f"would delete node {target} and its pods {pods}, then recreate it from its manifest"
        )
        return {"would": would, "pods": pods}

    def inject(self, ctx: FaultContext, args: DeleteArgs, target: str) -> Injection:
        from kubernetes import client

        host: ClusterHost = ctx.platform
        node_obj = host.gpu_node(target)  # refuses nodes without the GPU labels
        before = workload_pods_on(host, target)
        if not before:
            raise FaultNoEffect(f"{self.name} {target}", "no workload pod runs on the node")
        manifest = node_manifest(node_obj, host.api)
        saved = _saved(host, target)
        if saved is not None:
            saved.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
        ttl = args.duration_s + PROOF_TIMEOUT_S["kubernetes"] + TTL_MARGIN_S
        run_dir = Path(host.run_dir) if host.run_dir is not None else None
        active = guard(host.kubeconfig, host.context, self.name, target, "recreate_node", ttl,
                       run_dir, manifest)  # fmt: skip
        with active.undone_on_error():
            host.core().delete_node(target)
            # the pod garbage collector deletes pods bound to a missing node: do it now
            for uid, name in before.items():
                body = client.V1DeleteOptions(
                    grace_period_seconds=0, preconditions=client.V1Preconditions(uid=uid)
                )
                try:
                    host.core().delete_namespaced_pod(name, host.namespace, body=body)
                except Exception as exc:
                    log.info("pod %s of node %s: %s", name, target, exc)
        injection = Injection(target, active, {"evicted": sorted(before.values())})
        injection.scratch["before"] = before
        return injection

    def prove(
        self, ctx: FaultContext, args: DeleteArgs, injection: Injection
    ) -> dict[str, Any] | None:
        host: ClusterHost = ctx.platform
        before = injection.scratch["before"]
        if not node_gone(host, injection.target):
            return None
        if set(before) & set(workload_pods_on(host, injection.target)):
            return None
        host.refresh()
        pending = sorted(
            p.metadata.name
            for p in host.pods()
            if p.metadata.uid not in before and not p.spec.node_name
        )
        log.info("node %s deleted with pods %s; pending now %s", injection.target, before, pending)
        return {"pending": pending, "checked": "node gone, none of its pods bound to it"}

    def finish(self, ctx: FaultContext, args: DeleteArgs, injection: Injection) -> dict[str, Any]:
        host: ClusterHost = ctx.platform
        if not args.recreate:
            return {"recreated": False}
        host.refresh()
        saved = _saved(host, injection.target)
        return {
            "down_for_s": args.duration_s,
            "recreated": not node_gone(host, injection.target),
            "manifest": str(saved) if saved is not None else None,
        }

    def on_revert_action(self, ctx: FaultContext, target: str | None) -> dict[str, Any]:
        """Create ``target`` again from the manifest saved in the run folder, when it is
        still gone (the held fault stays registered: the run's end finds the node back)."""
        host: ClusterHost = ctx.platform
        if target is None:
            raise ChaosError("recreate_gpu_node needs its node argument")
        saved = _saved(host, target)
        if saved is None:
            raise ChaosError("recreate_gpu_node needs the run folder (the saved node manifest)")
        if not saved.exists():
            return {"node": target, "recreated": False, "reason": "no saved manifest"}
        if host.dry_run:
            host.plan.append(f"would recreate node {target} from {saved}")
            return {"node": target, "dry_run": True}
        if not node_gone(host, target):
            return {"node": target, "recreated": False, "reason": "the node exists"}
        host.core().create_node(json.loads(saved.read_text(encoding="utf-8")))
        host.refresh()
        return {"node": target, "recreated": True}
