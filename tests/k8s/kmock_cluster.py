"""A Kubernetes API emulator on 127.0.0.1 for contract tests: kmock, over real HTTP.

kmock 0.8 stores objects and serves list, watch, get, create, patch and delete, but it
ignores label and field selectors, has no eviction endpoint, and cannot parse the paths of
namespaces themselves (``/api/v1/namespaces[/NAME]``). :class:`ClusterEmulator` adds all
three, serves pod logs set by the test (:attr:`ClusterEmulator.pod_logs`), serves the pod
proxy (``/api/v1/namespaces/NS/pods/NAME:PORT/proxy/PATH``) by passing the request over
real HTTP to a backend the test runs on loopback for that pod
(:attr:`ClusterEmulator.pod_backends`, :attr:`ClusterEmulator.backend_factory`), and logs
every request (method and path), so that the official client and
chaostoolkit-kubernetes (``cordon_node``, ``drain_nodes``, ``terminate_pods``) act on the
objects they select. kmock has no
controllers: :class:`MiniController` stands in for the Deployment and ReplicaSet controllers
and the scheduler (it creates the Deployment's pods on schedulable nodes, marks them Ready,
replaces deleted ones and writes the Deployment's status), using the official client.

:class:`EmulatedCluster` runs the emulator's event loop in a thread so that synchronous
code (the harness) can talk to it, and writes a kubeconfig whose contexts point at it.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import re
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp.web
import kmock
import yaml
from kmock._internal import rendering

CONTEXT = "kmock"
OTHER_CONTEXT = "production"
RESOURCES = (
    "v1/pods",
    "v1/nodes",
    "v1/services",
    "v1/events",
    "v1/configmaps",
    "v1/secrets",
    "batch/v1/jobs",
    "apps/v1/deployments",
    "policy/v1/poddisruptionbudgets",
    "keda.sh/v1alpha1/scaledobjects",
)


def _dig(obj: Any, path: str) -> Any:
    for part in path.split("."):
        if not isinstance(obj, dict):
            return None
        obj = obj.get(part)
    return obj


def label_match(labels: dict[str, str] | None, selector: str) -> bool:
    """Equality-based label selectors: ``a=b``, ``a==b``, ``a!=b``, ``a``, ``!a``."""
    have = labels or {}
    for term in filter(None, (t.strip() for t in selector.split(","))):
        if "!=" in term:
            key, value = term.split("!=", 1)
            if have.get(key.strip()) == value.strip():
                return False
        elif "=" in term:
            key, value = term.replace("==", "=").split("=", 1)
            if have.get(key.strip()) != value.strip():
                return False
        elif term.startswith("!"):
            if term[1:] in have:
                return False
        elif term not in have:
            return False
    return True


def field_match(obj: dict[str, Any], selector: str) -> bool:
    """Field selectors: ``spec.nodeName=x``, ``metadata.name!=y``."""
    for term in filter(None, (t.strip() for t in selector.split(","))):
        negate = "!=" in term
        key, value = term.replace("!=", "=").replace("==", "=").split("=", 1)
        actual = _dig(obj, key.strip())
        actual_s = "" if actual is None else str(actual)
        if (actual_s == value.strip()) == negate:
            return False
    return True


_NAMESPACE_PATH = re.compile(r"^/api/v1/namespaces(?:/([^/]+))?/?$")
#: The API server's pod proxy: /api/v1/namespaces/NS/pods/NAME[:PORT]/proxy[/PATH]
_POD_PROXY_PATH = re.compile(r"^/api/v1/namespaces/([^/]+)/pods/([^/:]+)(?::(\d+))?/proxy(/.*)?$")
#: Request headers the API server does not pass on to the pod (hop-by-hop, and the
#: caller's own credentials).
_NOT_PROXIED = {"host", "authorization", "connection", "keep-alive", "transfer-encoding",
                "te", "trailer", "upgrade", "proxy-authorization", "content-length"}  # fmt: skip


def _status(code: int, status: str = "Failure") -> aiohttp.web.Response:
    body = {"kind": "Status", "apiVersion": "v1", "status": status, "code": code}
    return aiohttp.web.json_response(body, status=code)


class ClusterEmulator(kmock.KubernetesEmulator):
    """kmock's emulator plus label/field selectors on lists and watches, pod eviction,
    namespaces, and a log of every request."""

    evictions: list[tuple[str, str]]
    log: list[tuple[str, str]]
    namespaces: dict[str, dict[str, Any]]
    pod_logs: dict[tuple[str, str], str]  # (namespace, pod) -> what GET .../log returns
    #: (namespace, pod) -> the loopback port that pod's proxy requests go to; a pod without
    #: one answers 503, as the API server does when it cannot dial the pod
    pod_backends: dict[tuple[str, str], int]
    #: asked for a backend port of a pod that has none yet (None: no backend)
    backend_factory: Any
    #: every proxied request: (method, namespace, pod, port, path, headers passed on)
    proxied: list[tuple[str, str, str, str, str, dict[str, str]]]

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        self.evictions = []
        self.log = []
        self.namespaces = {}
        self.pod_logs = {}
        self.pod_backends = {}
        self.backend_factory = None
        self.proxied = []
        for res in RESOURCES:
            self.resources[res] = {}

    async def __call__(self, raw_request: aiohttp.web.BaseRequest) -> aiohttp.web.StreamResponse:
        self.log.append((raw_request.method.upper(), raw_request.path))
        match = _NAMESPACE_PATH.match(raw_request.path)
        if match is not None:
            return await self._namespace(raw_request, match.group(1))
        proxy = _POD_PROXY_PATH.match(raw_request.path)
        if proxy is not None:
            return await self._pod_proxy(raw_request, *proxy.groups())
        return await super().__call__(raw_request)

    async def _pod_proxy(
        self, raw: aiohttp.web.BaseRequest, ns: str, pod: str, port: str | None, path: str | None
    ) -> aiohttp.web.StreamResponse:
        """The API server's pod proxy over real HTTP: the request (method, path, query,
        headers but the caller's credentials, body) goes to the pod's backend on loopback,
        its answer comes back as it is."""
        async with self._lock:
            found = [
                obj
                for (res, obj_ns, name), obj in self._objects.items()
                if str(res.plural) == "pods" and (obj_ns, name) == (ns, pod) and not obj.deleted
            ]
        if not found:
            return _status(404)
        headers = {k: v for k, v in raw.headers.items() if k.lower() not in _NOT_PROXIED}
        self.proxied.append((raw.method.upper(), ns, pod, port or "", path or "/", headers))
        backend = self.pod_backends.get((ns, pod))
        if backend is None and self.backend_factory is not None:
            backend = self.backend_factory(ns, pod)
            if backend is not None:
                self.pod_backends[ns, pod] = backend
        if backend is None:
            return _status(503)
        url = f"http://127.0.0.1:{backend}{path or '/'}"
        body = await raw.read()
        timeout = aiohttp.ClientTimeout(total=60)
        try:
            async with (
                aiohttp.ClientSession(timeout=timeout) as session,
                session.request(
                    raw.method, url, params=raw.query, headers=headers, data=body or None
                ) as resp,
            ):
                data = await resp.read()
                ctype = resp.headers.get("Content-Type", "application/octet-stream")
                return aiohttp.web.Response(
                    body=data, status=resp.status, headers={"Content-Type": ctype}
                )
        except (aiohttp.ClientError, TimeoutError):
            return _status(503)

    async def _namespace(
        self, raw: aiohttp.web.BaseRequest, name: str | None
    ) -> aiohttp.web.StreamResponse:
        method = raw.method.upper()
        if name is None and method == "GET":
            items = list(self.namespaces.values())
            return aiohttp.web.json_response({"kind": "NamespaceList", "items": items})
        if name is None and method == "POST":
            body = json.loads(await raw.read())
            new = body["metadata"]["name"]
            if new in self.namespaces:
                return _status(409)
            body["metadata"]["uid"] = str(uuid.uuid4())
            body.update(apiVersion="v1", kind="Namespace", status={"phase": "Active"})
            self.namespaces[new] = body
            return aiohttp.web.json_response(body, status=201)
        if name is not None and name in self.namespaces:
            if method == "GET":
                return aiohttp.web.json_response(self.namespaces[name])
            if method == "DELETE":
                return aiohttp.web.json_response(self.namespaces.pop(name))
        return _status(404)

    @staticmethod
    def _selected(request: rendering.Request, obj: dict[str, Any]) -> bool:
        labels = request.params.get("labelSelector")
        fields = request.params.get("fieldSelector")
        if labels and not label_match(_dig(obj, "metadata.labels"), labels):
            return False
        return not (fields and not field_match(obj, fields))

    async def _serve_list(self, request: rendering.Request) -> rendering.Payload:
        result: Any = await super()._serve_list(request)
        result["items"] = [o for o in result["items"] if self._selected(request, o)]
        return result  # type: ignore[no-any-return]

    async def _serve_watch(self, request: rendering.Request) -> Any:
        async for event in super()._serve_watch(request):
            if isinstance(event, dict) and not self._selected(request, event.get("object", {})):
                continue
            yield event

    async def _handle(self, request: rendering.Request) -> aiohttp.web.StreamResponse:
        if (
            request.resource is not None
            and request.resource.plural == "pods"
            and request.subresource == "eviction"
        ):
            return await self._evict(request)
        if (
            request.resource is not None
            and request.resource.plural == "pods"
            and request.subresource == "log"
        ):
            return await self._pod_log(request)
        return await super()._handle(request)

    async def _pod_log(self, request: rendering.Request) -> aiohttp.web.StreamResponse:
        """GET pods/NAME/log: the text set in :attr:`pod_logs` ("" when none)."""
        assert request.resource is not None
        key = (request.resource, request.namespace, request.name)
        async with self._lock:
            if key not in self._objects or self._objects[key].deleted:
                return _status(404)
        text = self.pod_logs.get((str(request.namespace), str(request.name)), "")
        return aiohttp.web.Response(text=text, content_type="text/plain")

    async def _evict(self, request: rendering.Request) -> aiohttp.web.StreamResponse:
        assert request.resource is not None
        key = (request.resource, request.namespace, request.name)
        async with self._lock:
            if key not in self._objects or self._objects[key].deleted:
                return _status(404)
            raw = self._objects[key].raw
            self._objects[key].delete()
            await self._buses[request.resource].put({"type": "DELETED", "object": raw})
        self.evictions.append((str(request.namespace), str(request.name)))
        return _status(201, "Success")


def gpu_node(name: str, gpu: bool = True, ready: bool = True) -> dict[str, Any]:
    labels = {"kubernetes.io/hostname": name}
    if gpu:
        labels["nvidia.com/gpu.present"] = "true"
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": labels, "uid": str(uuid.uuid4())},
        "spec": {},
        "status": {
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
            "allocatable": {"nvidia.com/gpu": "1" if gpu else "0"},
        },
    }


def ready_pod(
    name: str,
    namespace: str,
    node: str,
    labels: dict[str, str],
    owner: str = "ReplicaSet",
) -> dict[str, Any]:
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": dict(labels),
            "uid": str(uuid.uuid4()),
            "creationTimestamp": now,
            "ownerReferences": [
                {
                    "apiVersion": "apps/v1",
                    "kind": owner,
                    "name": f"{name.rsplit('-', 1)[0]}",
                    "uid": str(uuid.uuid4()),
                    "controller": True,
                }
            ],
        },
        "spec": {
            "nodeName": node,
            "containers": [{"name": "server", "image": "x"}],
            "volumes": [{"name": "kube-api-access", "projected": {"sources": []}}],
        },
        "status": {
            "phase": "Running",
            "conditions": [
                {"type": "PodScheduled", "status": "True", "lastTransitionTime": now},
                {"type": "Ready", "status": "True", "lastTransitionTime": now},
            ],
            "containerStatuses": [
                {
                    "name": "server",
                    "ready": True,
                    "restartCount": 0,
                    "image": "x",
                    "imageID": "x",
                    "state": {"running": {"startedAt": now}},
                }
            ],
        },
    }


class EmulatedCluster:
    """The emulator on 127.0.0.1:<ephemeral>, its loop in a thread, and a kubeconfig."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.kubeconfig = tmp / "kubeconfig"
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.handler: ClusterEmulator | None = None
        self._server: Any = None
        self.url = ""

    def __enter__(self) -> EmulatedCluster:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(10)
        self._write_kubeconfig()
        return self

    def __exit__(self, *exc: object) -> None:
        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(self._stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()

    async def _start(self) -> None:
        logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
        self.handler = ClusterEmulator()
        await self.handler.__aenter__()
        self._server = kmock.Server(self.handler)
        await self._server.__aenter__()
        self.url = f"http://127.0.0.1:{self._server.port}"

    async def _stop(self) -> None:
        await self._server.__aexit__(None, None, None)
        assert self.handler is not None
        await self.handler.__aexit__(None, None, None)

    def _write_kubeconfig(self) -> None:
        clusters, contexts = [], []
        for name in (CONTEXT, OTHER_CONTEXT):
            clusters.append({"name": name, "cluster": {"server": self.url}})
            contexts.append({"name": name, "context": {"cluster": name, "user": "tester"}})
        doc = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": clusters,
            "contexts": contexts,
            "current-context": CONTEXT,
            "users": [{"name": "tester", "user": {"token": "t"}}],
        }
        self.kubeconfig.write_text(yaml.safe_dump(doc), encoding="utf-8")

    # -- state, from the test's side ---------------------------------------------------------

    @property
    def h(self) -> ClusterEmulator:
        assert self.handler is not None
        return self.handler

    def put(self, resource: str, namespace: str | None, obj: dict[str, Any]) -> None:
        """Store an object as it is (no request recorded)."""

        async def _put() -> None:
            self.h.objects[resource, namespace, obj["metadata"]["name"]] = obj

        asyncio.run_coroutine_threadsafe(_put(), self.loop).result(10)

    def requests(self) -> list[tuple[str, str]]:
        """(METHOD, path) of every request the emulator received so far."""
        return list(self.h.log)


class MiniController:
    """Deployment + ReplicaSet controllers and scheduler, for one namespace, in a thread."""

    def __init__(self, api_client: Any, namespace: str, interval_s: float = 0.2) -> None:
        from kubernetes import client

        self.core = client.CoreV1Api(api_client)
        self.apps = client.AppsV1Api(api_client)
        self.namespace = namespace
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._names = itertools.count()

    def __enter__(self) -> MiniController:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            with contextlib.suppress(Exception):
                self.reconcile()

    def reconcile(self) -> None:
        from kubernetes.client.exceptions import ApiException

        for dep in self.apps.list_namespaced_deployment(self.namespace).items:
            labels = dep.spec.selector.match_labels
            selector = ",".join(f"{k}={v}" for k, v in labels.items())
            pods = self.core.list_namespaced_pod(self.namespace, label_selector=selector).items
            want = int(dep.spec.replicas or 0)
            nodes = [
                n
                for n in self.core.list_node(
                    label_selector=",".join(
                        f"{k}={v}" for k, v in (dep.spec.template.spec.node_selector or {}).items()
                    )
                ).items
                if not n.spec.unschedulable
            ]
            for _ in range(want - len(pods)):
                if not nodes:
                    break
                load = {n.metadata.name: 0 for n in nodes}
                for p in pods:
                    if p.spec.node_name in load:
                        load[p.spec.node_name] += 1
                node = min(load, key=lambda n: (load[n], n))
                name = f"{dep.metadata.name}-{next(self._names):05d}"
                body = ready_pod(name, self.namespace, node, dict(labels))
                with contextlib.suppress(ApiException):
                    created = self.core.create_namespaced_pod(self.namespace, body)
                    pods.append(created)
            ready = len(pods)
            self.apps.patch_namespaced_deployment_status(
                dep.metadata.name,
                self.namespace,
                {
                    "status": {
                        "observedGeneration": 0,
                        "replicas": ready,
                        "updatedReplicas": ready,
                        "readyReplicas": ready,
                        "availableReplicas": ready,
                    }
                },
            )
