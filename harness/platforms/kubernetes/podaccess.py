"""What the platform reaches inside its pods: the fault hook's token Secret, and each pod's
Prometheus ``/metrics`` through the API server's pod proxy.

Why the pod proxy for ``/metrics``: the harness usually runs outside the cluster, where pod
addresses do not route; ``GET /api/v1/namespaces/NS/pods/POD:PORT/proxy/metrics`` (the
official client's ``connect_get_namespaced_pod_proxy_with_path``) reaches each pod with the
harness's own credentials, so queue depth, running requests, KV-cache use and OOMs are
sampled per pod as they are per local replica, with no Prometheus needed.
"""

from __future__ import annotations

import logging
from typing import Any

from harness.config import KubernetesPlatformSpec
from harness.errors import PlatformError
from harness.faults.kubehook import new_token, pod_client, token_secret
from harness.platforms.kubernetes.manifests import MANAGED_BY
from harness.platforms.kubernetes.objects import Created

log = logging.getLogger(__name__)


def create_token_secret(core: Any, spec: KubernetesPlatformSpec) -> tuple[Created, str]:
    """Create the fault-token Secret with a fresh random token (every deployment its own);
    returns the object (deleted at the end by uid, with the others) and the token."""
    from kubernetes.client.exceptions import ApiException

    name, ns, token = spec.token_secret, spec.namespace, new_token()
    body = token_secret(name, ns, token, {**spec.pod_labels, **MANAGED_BY})
    try:
        made = core.create_namespaced_secret(ns, body)
    except ApiException as exc:
        if exc.status == 409:
            raise PlatformError(
                f"Secret {ns}/{name} exists already and is not this run's: delete it, or pick "
                "another platform.name or platform.fault_token_secret"
            ) from exc
        raise PlatformError(f"cannot create Secret {ns}/{name}: {exc.reason}") from exc
    log.info("created Secret %s/%s (the fault hook's token)", ns, name)
    return Created("Secret", name, ns, str(made.metadata.uid or "")), token


def pod_metrics_text(api: Any, namespace: str, pod: str, port: int, timeout_s: float) -> str:
    """The body of the pod's ``/metrics`` through the pod proxy (a client that does not
    retry: a slow pod costs one time limit, not four); raises OSError (no answer in time)
    or ValueError (an HTTP error), as the local scrape does."""
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    core = client.CoreV1Api(pod_client(api))
    try:
        text = core.connect_get_namespaced_pod_proxy_with_path(
            f"{pod}:{port}", namespace, "metrics", _request_timeout=timeout_s
        )
    except ApiException as exc:
        raise ValueError(f"/metrics of pod {pod}: HTTP {exc.status}") from None
    except Exception as exc:  # urllib3: the API server did not answer in time
        raise OSError(f"/metrics of pod {pod}: {exc}") from None
    return str(text)
