"""Chaos Toolkit actions and probes for the ``kubernetes`` platform.

Each fault injects, proves that it took hold (else ``FaultNoEffect``: "fault had no
effect"), and reverts; the revert runs in a ``finally`` and again from the listed rollback,
and :meth:`KubernetesPlatform.stop` uncordons every node a run cordoned. Cordoned and
deleted nodes are also registered with the detached reverter (a fault state file, see
:mod:`harness.platforms.kubernetes.ttl`): if the harness dies, even by SIGKILL, or the
fault's time-to-live runs out, the node is uncordoned (recreated), and ``gpuchaos cleanup``
reverts what is left. ``fault_start`` and ``fault_end`` are written by the timeline control
(:mod:`harness.chaos.controls`, from :data:`FAULT_ACTIONS` and :data:`REVERT_ACTIONS`).
Every target is checked first: pods only in the platform's namespace, nodes
only with the GPU node labels, the device plugin only in an allowlisted namespace. With
``gpuchaos run --dry-run`` the actions only say what they would do.

- ``drain_gpu_node(node, down_for_s)``: GPU node loss by cordon and drain
  (chaostoolkit-kubernetes); proof: the node is unschedulable and none of the workload pods
  that ran on it is still there. ``uncordon_gpu_node(node)`` is the rollback.
- ``delete_gpu_node(node, down_for_s)``: GPU node loss by deleting the Node object (its
  manifest is saved first), and its workload pods with it, as the pod garbage collector
  would; proof: the node is gone and none of its pods is still bound to it (their
  replacements are Pending or run elsewhere). Then the node is created again from the saved
  manifest where the cluster allows it (``recreate_gpu_node(node)`` is the rollback). On a
  cloud node pool the kubelet or the node group usually registers the node again itself.
- ``terminate_replica(pod)``: replica crash by pod termination (chaostoolkit-kubernetes,
  grace period 0); proof: that pod (its uid) is gone.
- ``exhaust_gpu_memory(pod, leave_free_mib, hold_s)``: the fault worker runs inside the
  target pod (exec), so it shares that pod's GPU, and allocates until ``leave_free_mib`` is
  free; proof: the worker's report of memory taken. It exits when the exec stream closes or
  its time-to-live runs out, so the memory comes back even if the harness dies.
- ``disrupt_device_plugin(node)``: delete the NVIDIA device plugin's pod on the node (its
  DaemonSet recreates it); proof: that pod is gone.
"""

from __future__ import annotations

import json
import logging
import re
import time
from typing import Any

from harness.chaos.context import current
from harness.errors import ChaosError, FaultNoEffect, PlatformError
from harness.platforms.kubernetes.platform import KubernetesPlatform
from harness.platforms.kubernetes.ttl import TTL_MARGIN_S, guard, node_manifest
from harness.platforms.kubernetes.watcher import pod_ready
from harness.rundir import RunDir

log = logging.getLogger(__name__)

#: Fault actions of this module and the argument naming their target.
FAULT_ACTIONS: dict[str, str] = {
    "drain_gpu_node": "node",
    "delete_gpu_node": "node",
    "terminate_replica": "pod",
    "exhaust_gpu_memory": "pod",
    "disrupt_device_plugin": "node",
}
#: Revert actions (for rollbacks) and the argument naming their target.
REVERT_ACTIONS: dict[str, str] = {"uncordon_gpu_node": "node", "recreate_gpu_node": "node"}
#: Revert action -> the fault action it ends.
REVERTS: dict[str, str] = {
    "uncordon_gpu_node": "drain_gpu_node",
    "recreate_gpu_node": "delete_gpu_node",
}

_PROOF_TIMEOUT_S = 15.0
_EXEC_READY_TIMEOUT_S = 180.0
_CONTAINER = "server"


def _platform() -> KubernetesPlatform:
    platform = current().platform
    if not isinstance(platform, KubernetesPlatform):
        raise ChaosError(
            "harness.chaos.k8s activities need platform.kind: kubernetes; "
            "use harness.chaos.actions on the local platform"
        )
    return platform


def _workload_pods_on(platform: KubernetesPlatform, node: str) -> dict[str, str]:
    """uid -> name of the workload's pods on ``node``."""
    return {
        p.metadata.uid: p.metadata.name
        for p in platform.pods()
        if p.spec.node_name == node and not p.metadata.deletion_timestamp
    }


def pick_gpu_node(platform: KubernetesPlatform) -> str:
    """The GPU node running the most Ready workload pods (ties: by name)."""
    allowed = {n.metadata.name for n in platform.gpu_nodes()}
    counts: dict[str, int] = {}
    for pod in platform.pods():
        node = pod.spec.node_name
        if node in allowed and pod_ready(pod):
            counts[node] = counts.get(node, 0) + 1
    if not counts:
        raise FaultNoEffect("GPU node loss", "no Ready workload pod runs on a GPU node")
    return sorted(counts, key=lambda n: (-counts[n], n))[0]


def pick_target(func: str) -> str:
    """The node or pod the fault action ``func`` of :data:`FAULT_ACTIONS` would pick now
    when its target argument is not given. The timeline control calls it before the action
    and passes the result as the argument, so the action acts on the target the timeline
    names."""
    platform = _platform()
    if FAULT_ACTIONS[func] == "node":
        return pick_gpu_node(platform)
    return str(pick_pod(platform, None).metadata.name)


def pick_pod(platform: KubernetesPlatform, pod: str | None) -> Any:
    """The workload pod ``pod``, or the first Ready one by name."""
    pods = sorted(platform.pods(), key=lambda p: p.metadata.name)
    if pod is not None:
        for p in pods:
            if p.metadata.name == pod:
                return p
        raise ChaosError(
            f"pod {pod!r} is not a pod of the workload ({platform.pod_selector} in "
            f"{platform.namespace})"
        )
    ready = [p for p in pods if pod_ready(p)]
    if not ready:
        raise FaultNoEffect("replica fault", "no Ready workload pod to act on")
    return ready[0]


def _gone(platform: KubernetesPlatform, namespace: str, name: str, uid: str) -> bool:
    from kubernetes.client.exceptions import ApiException

    try:
        pod = platform.core().read_namespaced_pod(name, namespace)
    except ApiException as exc:
        if exc.status == 404:
            return True
        raise
    return bool(pod.metadata.uid != uid or pod.metadata.deletion_timestamp)


def _wait_gone(platform: KubernetesPlatform, namespace: str, name: str, uid: str) -> bool:
    deadline = time.monotonic() + _PROOF_TIMEOUT_S
    while not _gone(platform, namespace, name, uid):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.2)
    return True


# -- GPU node loss ---------------------------------------------------------------------------


def drain_gpu_node(
    node: str | None = None, down_for_s: float = 60.0, timeout_s: int = 120
) -> dict[str, Any]:
    """GPU node loss: cordon and drain ``node`` (default: the GPU node with the most Ready
    workload pods), keep it cordoned ``down_for_s`` seconds, then uncordon it."""
    platform = _platform()
    target = node or pick_gpu_node(platform)
    platform.gpu_node(target)  # refuses nodes without the GPU labels
    before = _workload_pods_on(platform, target)
    if platform.dry_run:
        platform.drain(target, timeout_s)
        platform.uncordon(target)
        return {"node": target, "dry_run": True, "pods": sorted(before.values())}
    if not before:
        raise FaultNoEffect(f"drain_gpu_node {target}", "no workload pod runs on the node")
    started = time.time()
    try:
        platform.drain(target, timeout_s, ttl_s=down_for_s + timeout_s + TTL_MARGIN_S)
        platform.refresh()
        node_obj = platform.gpu_node(target)
        if not node_obj.spec.unschedulable:
            raise FaultNoEffect(f"drain_gpu_node {target}", "the node is still schedulable")
        left = set(before) & set(_workload_pods_on(platform, target))
        if left:
            names = sorted(before[u] for u in left)
            raise FaultNoEffect(f"drain_gpu_node {target}", f"pods still on the node: {names}")
        log.info("node %s drained: evicted %s; down for %.0f s", target, before, down_for_s)
        time.sleep(max(0.0, started + down_for_s - time.time()))
    finally:
        platform.uncordon(target)
        platform.refresh()
    return {"node": target, "evicted": sorted(before.values()), "down_for_s": down_for_s}


def uncordon_gpu_node(node: str | None = None) -> dict[str, Any]:
    """Rollback of GPU node loss: uncordon ``node``, or every node this run cordoned."""
    platform = _platform()
    targets = [node] if node else sorted(platform.cordoned)
    for target in targets:
        platform.uncordon(target)
    return {"uncordoned": targets}


def _node_gone(platform: KubernetesPlatform, node: str) -> bool:
    from kubernetes.client.exceptions import ApiException

    try:
        platform.core().read_node(node)
    except ApiException as exc:
        if exc.status == 404:
            return True
        raise
    return False


def delete_gpu_node(
    node: str | None = None, down_for_s: float = 60.0, recreate: bool = True
) -> dict[str, Any]:
    """GPU node loss by deleting the Node object of ``node`` (default: the GPU node with the
    most Ready workload pods) and its workload pods; after ``down_for_s`` seconds the node is
    created again from its saved manifest (``recreate: false`` leaves that to the cluster,
    e.g. a node group that registers it again; the reverter still recreates it at the
    time-to-live if it is still gone)."""
    platform = _platform()
    target = node or pick_gpu_node(platform)
    node_obj = platform.gpu_node(target)  # refuses nodes without the GPU labels
    before = _workload_pods_on(platform, target)
    if platform.dry_run:
        platform.plan.append(
            f"would delete node {target} and its pods {sorted(before.values())}, then "
            "recreate it from its manifest"
        )
        return {"node": target, "dry_run": True, "pods": sorted(before.values())}
    if not before:
        raise FaultNoEffect(f"delete_gpu_node {target}", "no workload pod runs on the node")
    manifest = node_manifest(node_obj, platform.api)
    saved = RunDir(platform.run_dir).node_manifest(target) if platform.run_dir is not None else None
    if saved is not None:
        saved.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    ttl = down_for_s + _PROOF_TIMEOUT_S + TTL_MARGIN_S
    fault = guard(platform, "delete_gpu_node", target, "recreate_node", ttl, manifest)
    started = time.time()
    try:
        platform.core().delete_node(target)
        # the pod garbage collector deletes pods bound to a missing node: do it now
        for uid, name in before.items():
            from kubernetes import client

            body = client.V1DeleteOptions(
                grace_period_seconds=0, preconditions=client.V1Preconditions(uid=uid)
            )
            try:
                platform.core().delete_namespaced_pod(name, platform.namespace, body=body)
            except Exception as exc:
                log.info("pod %s of node %s: %s", name, target, exc)
        deadline = time.monotonic() + _PROOF_TIMEOUT_S
        while not (
            _node_gone(platform, target)
            and not set(before) & set(_workload_pods_on(platform, target))
        ):
            if time.monotonic() >= deadline:
                raise FaultNoEffect(
                    f"delete_gpu_node {target}", "the node or its pods are still there"
                )
            time.sleep(0.2)
        platform.refresh()
        pending = sorted(
            p.metadata.name
            for p in platform.pods()
            if p.metadata.uid not in before and not p.spec.node_name
        )
        log.info("node %s deleted with pods %s; pending now %s", target, before, pending)
        if not recreate:  # still recreated at the time-to-live or the run's end if gone
            return {"node": target, "evicted": sorted(before.values()), "recreated": False}
        time.sleep(max(0.0, started + down_for_s - time.time()))
    except BaseException:
        fault.revert()
        raise
    fault.revert()  # recreates the node from the saved manifest
    platform.refresh()
    return {
        "node": target,
        "evicted": sorted(before.values()),
        "pending": pending,
        "down_for_s": down_for_s,
        "recreated": not _node_gone(platform, target),
        "manifest": str(saved) if saved is not None else None,
    }


def recreate_gpu_node(node: str) -> dict[str, Any]:
    """Rollback of node delete: create ``node`` again from the manifest that
    :func:`delete_gpu_node` saved in the run folder, when it is still gone."""
    platform = _platform()
    if platform.run_dir is None:
        raise ChaosError("recreate_gpu_node needs the run folder (the saved node manifest)")
    saved = RunDir(platform.run_dir).node_manifest(node)
    if not saved.exists():
        return {"node": node, "recreated": False, "reason": "no saved manifest"}
    if platform.dry_run:
        platform.plan.append(f"would recreate node {node} from {saved}")
        return {"node": node, "dry_run": True}
    if not _node_gone(platform, node):
        return {"node": node, "recreated": False, "reason": "the node exists"}
    platform.core().create_node(json.loads(saved.read_text(encoding="utf-8")))
    platform.refresh()
    return {"node": node, "recreated": True}


# -- replica crash ---------------------------------------------------------------------------


def terminate_replica(pod: str | None = None, grace_period_s: int = 0) -> dict[str, Any]:
    """Replica crash: terminate one workload pod (default: the first Ready one by name)."""
    from chaosk8s.pod.actions import terminate_pods

    platform = _platform()
    victim = pick_pod(platform, pod)
    name, uid, node = victim.metadata.name, victim.metadata.uid, victim.spec.node_name
    if platform.dry_run:
        platform.plan.append(f"would terminate pod {platform.namespace}/{name} on {node}")
        return {"pod": name, "dry_run": True}
    try:
        terminate_pods(
            label_selector=platform.pod_selector,
            name_pattern=f"^{re.escape(name)}$",
            ns=platform.namespace,
            qty=1,
            grace_period=grace_period_s,
            secrets=platform.chaos_secrets,
        )
        if not _wait_gone(platform, platform.namespace, name, uid):
            raise FaultNoEffect(f"terminate_replica {name}", "the pod is still there")
    finally:
        platform.refresh()
    return {"pod": name, "node": node, "uid": uid}


# -- device plugin ---------------------------------------------------------------------------


def disrupt_device_plugin(
    node: str | None = None, wait_recreated_s: float = 60.0
) -> dict[str, Any]:
    """Delete the NVIDIA device plugin's pod on ``node`` (default: the busiest GPU node)."""
    platform = _platform()
    dp = platform.spec.device_plugin
    platform.safety.namespace(dp.namespace)
    target = node or pick_gpu_node(platform)
    platform.gpu_node(target)
    pods = (
        platform.core()
        .list_namespaced_pod(
            dp.namespace, label_selector=dp.label_selector, field_selector=f"spec.nodeName={target}"
        )
        .items
    )
    if not pods:
        raise FaultNoEffect(
            f"disrupt_device_plugin {target}",
            f"no device plugin pod ({dp.label_selector}) in {dp.namespace} on the node",
        )
    victim = pods[0]
    name, uid = victim.metadata.name, victim.metadata.uid
    if platform.dry_run:
        platform.plan.append(f"would delete device plugin pod {dp.namespace}/{name} on {target}")
        return {"node": target, "pod": name, "dry_run": True}
    recreated_after: float | None = None
    try:
        t0 = time.monotonic()
        platform.core().delete_namespaced_pod(name, dp.namespace, grace_period_seconds=0)
        if not _wait_gone(platform, dp.namespace, name, uid):
            raise FaultNoEffect(f"disrupt_device_plugin {target}", f"pod {name} is still there")
        deadline = t0 + wait_recreated_s
        while time.monotonic() < deadline:
            again = [
                p
                for p in platform.core()
                .list_namespaced_pod(
                    dp.namespace,
                    label_selector=dp.label_selector,
                    field_selector=f"spec.nodeName={target}",
                )
                .items
                if p.metadata.uid != uid and pod_ready(p)
            ]
            if again:
                recreated_after = round(time.monotonic() - t0, 3)
                break
            time.sleep(0.5)
    finally:
        platform.refresh()
    return {"node": target, "pod": name, "recreated_after_s": recreated_after}


# -- GPU memory exhaustion -------------------------------------------------------------------


def worker_command(ttl_s: float) -> list[str]:
    """The fault worker inside the pod (the image carries the harness package)."""
    return ["python", "-m", "harness.faults.worker", "--device", "cuda", "--ttl-s", f"{ttl_s:g}"]


def _read_reply(resp: Any, timeout_s: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while resp.is_open() and time.monotonic() < deadline:
        line = resp.readline_stdout(timeout=1)
        if line and line.strip().startswith("{"):
            reply: dict[str, Any] = json.loads(line)
            return reply
    err = resp.read_stderr() if resp.is_open() else ""
    raise ChaosError(f"the fault worker in the pod did not answer: {err.strip()[-300:]}")


def exhaust_gpu_memory(
    pod: str | None = None,
    leave_free_mib: float = 1024.0,
    hold_s: float = 30.0,
    ttl_s: float | None = None,
) -> dict[str, Any]:
    """GPU memory exhaustion inside ``pod``: allocate until ``leave_free_mib`` is free, hold
    ``hold_s`` seconds, release. The worker's time-to-live defaults to ``hold_s + 120``."""
    from kubernetes.stream import stream

    platform = _platform()
    victim = pick_pod(platform, pod)
    name = victim.metadata.name
    ttl = ttl_s if ttl_s is not None else hold_s + 120.0
    if platform.dry_run:
        platform.plan.append(
            f"would exec {' '.join(worker_command(ttl))} in {platform.namespace}/{name} and "
            f"fill its GPU to {leave_free_mib:g} MiB free for {hold_s:g} s"
        )
        return {"pod": name, "dry_run": True}
    try:
        resp = stream(
            platform.core().connect_get_namespaced_pod_exec,
            name,
            platform.namespace,
            container=_CONTAINER,
            command=worker_command(ttl),
            stdin=True,
            stdout=True,
            stderr=True,
            tty=False,
            _preload_content=False,
        )
    except Exception as exc:
        raise PlatformError(f"cannot exec the fault worker in pod {name}: {exc}") from exc
    try:
        warm = _read_reply(resp, _EXEC_READY_TIMEOUT_S)  # torch import and CUDA context first
        if not warm.get("ok"):
            raise ChaosError(f"the fault worker in {name} failed to start: {warm.get('error')}")
        try:
            resp.write_stdin(json.dumps({"op": "fill", "leave_free_mib": leave_free_mib}) + "\n")
            filled = _read_reply(resp, 60.0)
            taken = float(filled.get("taken_mib") or 0.0)
            if not filled.get("ok") or taken <= 0:
                raise FaultNoEffect(
                    f"exhaust_gpu_memory {name}",
                    f"no GPU memory taken ({filled.get('error') or filled})",
                )
            log.info(
                "pod %s: took %.0f MiB of GPU memory, %.0f MiB free",
                name,
                taken,
                filled.get("free_mib_after", -1),
            )
            time.sleep(hold_s)
            resp.write_stdin(json.dumps({"op": "free"}) + "\n")
            freed = _read_reply(resp, 30.0)
        finally:
            log.info("pod %s: GPU memory fault over", name)
    finally:
        resp.close()  # stdin closes: the worker exits and whatever it holds is freed
    return {"pod": name, "fill": filled, "free": freed}


# -- probes ----------------------------------------------------------------------------------


def ready_pods() -> int:
    """How many workload pods are Ready now (read from the API)."""
    platform = _platform()
    return sum(1 for p in platform.pods() if pod_ready(p))


def cordoned_nodes() -> list[str]:
    """GPU nodes that are cordoned now."""
    platform = _platform()
    return sorted(n.metadata.name for n in platform.gpu_nodes() if n.spec.unschedulable)
