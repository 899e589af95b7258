"""Helpers the cluster faults share: which pods and nodes they may act on, and waiting for
an object to be gone (not faults: the registry finds nothing registered here)."""

from __future__ import annotations

import json
import time
from typing import Any

from harness.errors import ChaosError, FaultNoEffect
from harness.faults.hosts import ClusterHost


def workload_pods_on(host: ClusterHost, node: str) -> dict[str, str]:
    """uid -> name of the workload's pods on ``node``."""
    return {
        p.metadata.uid: p.metadata.name
        for p in host.pods()
        if p.spec.node_name == node and not p.metadata.deletion_timestamp
    }


def pick_gpu_node(host: ClusterHost) -> str:
    """The GPU node running the most Ready workload pods (ties: by name)."""
    allowed = {n.metadata.name for n in host.gpu_nodes()}
    counts: dict[str, int] = {}
    for pod in host.pods():
        node = pod.spec.node_name
        if node in allowed and host.pod_ready(pod):
            counts[node] = counts.get(node, 0) + 1
    if not counts:
        raise FaultNoEffect("GPU node loss", "no Ready workload pod runs on a GPU node")
    return sorted(counts, key=lambda n: (-counts[n], n))[0]


def pick_pod(host: ClusterHost, pod: str | None) -> Any:
    """The workload pod ``pod``, or the first Ready one by name."""
    pods = sorted(host.pods(), key=lambda p: p.metadata.name)
    if pod is not None:
        for p in pods:
            if p.metadata.name == pod:
                return p
        raise ChaosError(
            f"pod {pod!r} is not a pod of the workload ({host.pod_selector} in {host.namespace})"
        )
    ready = [p for p in pods if host.pod_ready(p)]
    if not ready:
        raise FaultNoEffect("replica fault", "no Ready workload pod to act on")
    return ready[0]


def pod_gone(host: ClusterHost, namespace: str, name: str, uid: str) -> bool:
    """Whether the pod ``name`` with ``uid`` is gone (or being deleted, or replaced)."""
    from kubernetes.client.exceptions import ApiException

    try:
        pod = host.core().read_namespaced_pod(name, namespace)
    except ApiException as exc:
        if exc.status == 404:
            return True
        raise
    return bool(pod.metadata.uid != uid or pod.metadata.deletion_timestamp)


def node_gone(host: ClusterHost, node: str) -> bool:
    from kubernetes.client.exceptions import ApiException

    try:
        host.core().read_node(node)
    except ApiException as exc:
        if exc.status == 404:
            return True
        raise
    return False


def worker_command(ttl_s: float) -> list[str]:
    """The fault worker inside the pod (the image carries the harness package)."""
    return ["python", "-m", "harness.faults.worker", "--device", "cuda", "--ttl-s", f"{ttl_s:g}"]


def read_reply(resp: Any, timeout_s: float) -> dict[str, Any]:
    """The next JSON line the worker in the pod writes on the exec stream."""
    deadline = time.monotonic() + timeout_s
    while resp.is_open() and time.monotonic() < deadline:
        line = resp.readline_stdout(timeout=1)
        if line and line.strip().startswith("{"):
            reply: dict[str, Any] = json.loads(line)
            return reply
    err = resp.read_stderr() if resp.is_open() else ""
    raise ChaosError(f"the fault worker in the pod did not answer: {err.strip()[-300:]}")
