"""What the platform does with the objects of a deployment: tell whether a rollout is done
(or failed for good), and delete exactly the objects this run created.

Why apart from the platform: both are plain reads of API objects, testable without a
platform, and the platform class stays a size a reader can hold.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from harness.errors import PlatformError
from harness.platforms.kubernetes.watcher import pod_ready, pod_restarts, pod_waiting_reason

log = logging.getLogger(__name__)

#: Container states that will not fix themselves: the rollout fails at once.
FATAL_REASONS = frozenset({"InvalidImageName", "CreateContainerConfigError", "ErrImageNeverPull"})
#: Restarts of one pod during the rollout after which it is called crash-looping.
MAX_ROLLOUT_RESTARTS = 3


@dataclass(frozen=True)
class Created:
    """An object this run created (deleted at the end only if its uid still matches)."""

    kind: str
    name: str
    namespace: str | None
    uid: str


def rollout_state(pods: list[Any], dep: Any = None) -> tuple[str | None, bool]:
    """(what is still wrong, whether the rollout is complete) from the workload's pods and,
    when the run deployed it, its Deployment (``None``: existing pods, done when one is
    Ready). A problem starting with "fatal: " will not fix itself."""
    problems = []
    for pod in pods:
        reason = pod_waiting_reason(pod)
        if reason in FATAL_REASONS:
            return f"fatal: pod {pod.metadata.name}: {reason}", False
        if pod_restarts(pod) >= MAX_ROLLOUT_RESTARTS:
            return f"fatal: pod {pod.metadata.name} restarted {pod_restarts(pod)} times", False
        if not pod_ready(pod):
            sched = [
                c
                for c in (pod.status.conditions or [] if pod.status else [])
                if c.type == "PodScheduled" and c.status != "True"
            ]
            why = reason or (sched[0].reason if sched else None) or "not Ready"
            problems.append(f"{pod.metadata.name}: {why}")
    ready = sum(1 for p in pods if pod_ready(p))
    if dep is None:
        return ("; ".join(problems) or None), ready > 0
    status = dep.status
    if status is None or dep.spec is None or dep.metadata is None:
        return "the Deployment has no status yet", False
    want = int(dep.spec.replicas or 0)
    done = (
        (status.observed_generation or 0) >= (dep.metadata.generation or 0)
        and int(status.updated_replicas or 0) == want
        and int(status.ready_replicas or 0) == want
        and ready >= want
    )
    summary = f"{ready}/{want} Ready" + (f" ({'; '.join(problems)})" if problems else "")
    return summary, done


def delete_created(api: Any, created: list[Created]) -> None:
    """Delete ``created`` newest first, each only while its uid matches (404 and 409 are
    logged: gone already, or replaced by someone else); empties the list."""
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    for obj in reversed(created):
        body = client.V1DeleteOptions(
            preconditions=client.V1Preconditions(uid=obj.uid) if obj.uid else None,
            propagation_policy="Background",
        )
        try:
            _delete_one(api, obj, body)
            log.info("deleted %s %s", obj.kind, obj.name)
        except ApiException as exc:
            if exc.status in (404, 409):  # gone already, or replaced by someone else
                log.info("%s %s: not deleted (%s)", obj.kind, obj.name, exc.reason)
            else:
                log.error("could not delete %s %s: %s", obj.kind, obj.name, exc.reason)
        except Exception as exc:
            log.error("could not delete %s %s: %s", obj.kind, obj.name, exc)
    created.clear()


def _delete_one(api: Any, obj: Created, body: Any) -> None:
    from kubernetes import client

    ns = obj.namespace or ""
    if obj.kind == "Namespace":
        client.CoreV1Api(api).delete_namespace(obj.name, body=body)
    elif obj.kind == "Deployment":
        client.AppsV1Api(api).delete_namespaced_deployment(obj.name, ns, body=body)
    elif obj.kind == "Secret":
        client.CoreV1Api(api).delete_namespaced_secret(obj.name, ns, body=body)
    elif obj.kind == "Service":
        client.CoreV1Api(api).delete_namespaced_service(obj.name, ns, body=body)
    elif obj.kind == "PodDisruptionBudget":
        client.PolicyV1Api(api).delete_namespaced_pod_disruption_budget(obj.name, ns, body=body)
    elif obj.kind == "ScaledObject":
        client.CustomObjectsApi(api).delete_namespaced_custom_object(
            "keda.sh", "v1alpha1", ns, "scaledobjects", obj.name, body=body
        )
    else:
        raise PlatformError(f"cannot delete a {obj.kind}")
