"""The reference workload's fault hook (contract C1, ``workloads/faulthook.py``) reached in a
pod through the API server's pod proxy, and the token Secret it is guarded by.

Why through the pod proxy: the harness usually runs outside the cluster, and the pods'
addresses are not routable from there. ``/api/v1/namespaces/NS/pods/POD:PORT/proxy/PATH``
reaches the container's port with the harness's own credentials (RBAC ``pods/proxy``), the
same way ``kubectl get --raw`` does; no port-forward, no Service, no Ingress.

Why the token comes from a Secret: the hook must never be reachable without a secret. The
platform creates the Secret (key ``token``, random) when it deploys the workload, and the
pods read it as ``GPUCHAOS_FAULT_TOKEN``; the harness, the detached reverter and
``gpuchaos cleanup`` read it from the Secret when they call the hook, so no state file holds
it. Standard library and the official client only: the reverter imports this without a
platform.
"""

from __future__ import annotations

import base64
import binascii
import copy
import json
import logging
import secrets
import threading
import weakref
from typing import Any

from harness.errors import ChaosError, PlatformError

log = logging.getLogger(__name__)

#: The header the hook reads its token from (contract C1).
TOKEN_HEADER = "X-Gpuchaos-Fault-Token"
#: The environment variable the servers read their token from (contract C1).
TOKEN_ENV = "GPUCHAOS_FAULT_TOKEN"
#: The key of the token in its Secret.
TOKEN_KEY = "token"
HOOK_PATH = "admin/fault"
TIMEOUT_S = 10.0


def new_token() -> str:
    """A fresh random token (256 bits, URL-safe)."""
    return secrets.token_urlsafe(32)


def token_secret(name: str, namespace: str, token: str, labels: dict[str, str]) -> dict[str, Any]:
    """The Secret holding ``token`` (an Opaque Secret, key :data:`TOKEN_KEY`)."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": namespace, "labels": dict(labels)},
        "type": "Opaque",
        "data": {TOKEN_KEY: base64.b64encode(token.encode()).decode()},
    }


def read_token(core: Any, namespace: str, secret: str) -> str | None:
    """The token in the Secret ``secret`` (None when the Secret or its key is missing)."""
    from kubernetes.client.exceptions import ApiException

    try:
        obj = core.read_namespaced_secret(secret, namespace)
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise PlatformError(f"cannot read Secret {namespace}/{secret}: {exc.reason}") from exc
    raw = (obj.data or {}).get(TOKEN_KEY)
    if not raw:
        return None
    try:
        return base64.b64decode(raw).decode()
    except (binascii.Error, UnicodeDecodeError):
        raise PlatformError(f"Secret {namespace}/{secret}: key {TOKEN_KEY} is not base64") from None


_pod_clients: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()
_pod_clients_lock = threading.Lock()


def pod_client(api: Any) -> Any:
    """A client like ``api`` that never retries: a pod that does not answer in time (hung,
    or slow) is an answer here, and urllib3's default three retries would make every such
    probe or scrape take four times its limit."""
    from kubernetes import client

    with _pod_clients_lock:
        found = _pod_clients.get(api)
        if found is None:
            config = copy.copy(api.configuration)
            config.retries = False
            found = _pod_clients[api] = client.ApiClient(configuration=config)
        return found


def proxy_request(
    api: Any,
    namespace: str,
    pod: str,
    port: int,
    method: str,
    path: str,
    *,
    body: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
    timeout_s: float = TIMEOUT_S,
) -> tuple[int, str]:
    """One HTTP request to ``PATH`` on the pod's ``port`` through the API server's pod proxy;
    returns the status and the body. Raises PlatformError when the API server cannot be
    reached (an answer of the pod or the API server, even an error, is returned)."""
    from kubernetes.client.exceptions import ApiException

    header_params = {"Accept": "*/*", **(headers or {})}
    if body is not None:
        header_params["Content-Type"] = "application/json"
    # the path is written here, not passed as a path parameter: the client would quote its
    # slashes (admin%2Ffault); the pod and namespace are DNS names, nothing to quote
    api = pod_client(api)
    request = api.param_serialize(
        method=method,
        resource_path=f"/api/v1/namespaces/{namespace}/pods/{pod}:{port}/proxy/{path}",
        header_params=header_params,
        body=body,
        auth_settings=["BearerToken"],
    )
    try:
        resp = api.call_api(*request, _request_timeout=timeout_s)
        resp.read()
        status, data = int(resp.status), resp.data
    except ApiException as exc:
        status, data = int(exc.status or 0), exc.body or exc.reason or ""
    except Exception as exc:  # urllib3 errors: the API server did not answer
        raise PlatformError(f"pod proxy {namespace}/{pod}:{port}: {exc}") from exc
    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else str(data or "")
    return status, text


def call_hook(
    api: Any,
    namespace: str,
    pod: str,
    port: int,
    token: str,
    body: dict[str, Any] | None = None,
    timeout_s: float = TIMEOUT_S,
) -> dict[str, Any]:
    """POST ``body`` to the pod's fault hook (GET its state when None) through the pod proxy;
    the state it answers. Raises ChaosError naming the pod and what went wrong."""
    method = "GET" if body is None else "POST"
    status, text = proxy_request(
        api, namespace, pod, port, method, HOOK_PATH,
        body=body, headers={TOKEN_HEADER: token}, timeout_s=timeout_s,
    )  # fmt: skip
    where = f"fault hook of pod {namespace}/{pod}"
    if status == 404:
        raise ChaosError(
            f"{where}: HTTP 404: no fault hook (the server runs without GPUCHAOS_FAULT_TOKEN, "
            "or the pod is gone)"
        )
    if status == 403:
        raise ChaosError(f"{where}: HTTP 403: the token was refused (a stale Secret?)")
    if status != 200:
        raise ChaosError(f"{where}: HTTP {status}: {text[:200]}")
    try:
        state: dict[str, Any] = json.loads(text)
    except ValueError:
        raise ChaosError(f"{where}: not JSON: {text[:100]!r}") from None
    return state


def clear_hook(api: Any, info: dict[str, str]) -> str:
    """Undo a hook fault from its record (the reverter, cleanup): read the token from the
    Secret and POST ``clear`` to each pod of ``pods`` (a JSON list of names); returns what
    was done. A pod or Secret that is gone has nothing left to undo."""
    from kubernetes import client

    namespace, secret = info["namespace"], info["secret"]
    token = read_token(client.CoreV1Api(api), namespace, secret)
    if token is None:
        return f"Secret {namespace}/{secret} is gone: nothing to clear"
    cleared, gone = [], []
    for pod in json.loads(info["pods"]):
        try:
            call_hook(api, namespace, pod, int(info["port"]), token, {"kind": "clear"})
            cleared.append(pod)
        except ChaosError as exc:
            if "HTTP 404" not in str(exc) and "HTTP 503" not in str(exc):
                raise
            gone.append(pod)  # the pod is gone (or not running): nothing left to clear
    log.warning("cleared the fault hook of pods %s in %s (gone: %s)", cleared, namespace, gone)
    return f"cleared the fault hook of pods {cleared} in {namespace}" + (
        f" (gone: {gone})" if gone else ""
    )
