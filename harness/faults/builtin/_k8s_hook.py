"""Helpers the Kubernetes faults that act inside pods share: the fault hook through the pod
proxy (with the token from the platform's Secret), the state files that undo them when the
harness dies, and the probes that prove them (not faults: the registry finds nothing here).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from harness.errors import ChaosError, FaultNoEffect, PlatformError
from harness.faults.active import ActiveFault, begin
from harness.faults.hosts import ClusterHost
from harness.faults.kubehook import call_hook, proxy_request

#: The metric of failed requests of the reference servers (its move proves a poison).
FAILURES_METRIC = "gpuchaos_request_failures_total"
DEFAULT_XID = 79
MAX_XID = 9999
#: Time limit of a probe that expects an answer; a hung pod is proved by its silence.
PROBE_TIMEOUT_S = 5.0
HANG_PROBE_TIMEOUT_S = 2.0


def token(host: ClusterHost, pod: str) -> str:
    """The hook token of ``pod``; FaultNoEffect when the workload has none (no Secret)."""
    found = host.fault_token(pod)
    if not found:
        raise FaultNoEffect(
            f"pod {pod}",
            f"no fault-hook token: Secret {host.namespace}/{host.spec.token_secret} is missing "
            "(deploy: false needs the Secret the pods read, see platform.fault_token_secret)",
        )
    return found


def hook(host: ClusterHost, pod: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    """POST ``body`` to the pod's fault hook (GET its state when None) via the pod proxy."""
    return call_hook(host.api, host.namespace, pod, host.spec.port, token(host, pod), body)


def _record(
    host: ClusterHost, fault: str, target: str, ttl_s: float, info: dict[str, str]
) -> ActiveFault:
    base = {"kubeconfig": host.kubeconfig, "context": host.context, "namespace": host.namespace}
    run_dir = Path(host.run_dir) if host.run_dir is not None else None
    return begin("k8s", fault, target, [], ttl_s, run_dir, k8s={**base, **info})


def clear_guard(
    host: ClusterHost, fault: str, target: str, pods: list[str], ttl_s: float
) -> ActiveFault:
    """A state file and the detached reverter that POST ``clear`` to ``pods``' hooks (the
    token read from the Secret then) when the harness dies or ``ttl_s`` runs out; call
    before the fault takes effect."""
    info = {
        "action": "hook_clear",
        "secret": host.spec.token_secret,
        "port": str(host.spec.port),
        "pods": json.dumps(sorted(pods)),
    }
    return _record(host, fault, target, ttl_s, info)


def restart_guard(
    host: ClusterHost, fault: str, target: str, pods: dict[str, str], ttl_s: float,
    taint: tuple[str, str] | None = None,
) -> ActiveFault:  # fmt: skip
    """A state file and the detached reverter that delete ``pods`` (uid -> name; a poisoned
    context goes only with a restart) and, with ``taint`` (node, key), remove that taint."""
    info = {"pods": json.dumps(sorted([name, uid] for uid, name in pods.items()))}
    if taint is None:
        info["action"] = "delete_pods"
    else:
        info.update(action="untaint", node=taint[0], taint=taint[1])
    return _record(host, fault, target, ttl_s, info)


def get(
    host: ClusterHost, pod: str, path: str, timeout_s: float = PROBE_TIMEOUT_S
) -> tuple[int, str]:
    """GET ``path`` on the pod through the proxy: status and body (0 and the error when no
    answer came in time)."""
    try:
        return proxy_request(host.api, host.namespace, pod, host.spec.port, "GET", path,
                             timeout_s=timeout_s)  # fmt: skip
    except PlatformError as exc:
        return 0, str(exc)


def probe_request(host: ClusterHost, pod: str) -> tuple[int, str]:
    """One small inference request to the pod through the proxy: status and body."""
    body: dict[str, Any]
    if str(getattr(host.workload, "kind", "llm")) == "classifier":
        _, text = get(host, pod, "v2/models/classifier")
        try:
            shape = [1, *(int(d) for d in json.loads(text)["inputs"][0]["shape"][1:])]
        except (ValueError, KeyError, IndexError, TypeError):
            shape = [1, 3, 32, 32]
        size = 1
        for d in shape:
            size *= d
        tensor = {"name": "input", "datatype": "FP32", "shape": shape, "data": [0.0] * size}
        path, body = "v2/models/classifier/infer", {"inputs": [tensor]}
    else:
        path, body = "v1/completions", {"prompt": "probe", "max_tokens": 1}
    try:
        return proxy_request(host.api, host.namespace, pod, host.spec.port, "POST",
                             path, body=body, timeout_s=PROBE_TIMEOUT_S)  # fmt: skip
    except PlatformError as exc:
        return 0, str(exc)


def failures(host: ClusterHost, pod: str) -> float | None:
    """The pod's failed-request counter from its /metrics (None: unreadable or absent)."""
    status, text = get(host, pod, "metrics")
    if status != 200:
        return None
    total, seen = 0.0, False
    for line in text.splitlines():
        name = line.split("{", 1)[0].split(" ", 1)[0]
        if name == FAILURES_METRIC:
            try:
                total += float(line.rsplit(" ", 1)[1])
                seen = True
            except (ValueError, IndexError):
                continue
    return total if seen else None


def poison_proof(host: ClusterHost, pod: str, before: float | None) -> dict[str, Any]:
    """What shows a poisoned pod: its hook says so, a probe request fails with the CUDA
    error, its failure counter moved (where it has one); liveness is asked too."""
    try:
        state = hook(host, pod)
    except ChaosError as exc:
        state = {"error": str(exc)}
    status, body = probe_request(host, pod)
    after = failures(host, pod)
    live, _ = get(host, pod, "health/live")
    counter_moved = before is None or (after is not None and after > before)
    return {
        "probe_status": status,
        "probe_error": body[:160],
        "failures_before": before,
        "failures_after": after,
        "live_status": live,
        "poisoned": bool(state.get("poisoned"))
        and status >= 500
        and "CUDA error" in body
        and counter_moved,
    }
