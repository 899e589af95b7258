"""kmock (tests/k8s/kmock_cluster.py) plus what the multi-tenancy faults meet in a real API
server: ResourceQuota, LimitRange, PriorityClass and ValidatingAdmissionPolicy objects, and
the admission of pods against them.

On every pod create (and a ``dryRun=All`` create, which stores nothing, as the API server
does): first each ValidatingAdmissionPolicyBinding whose namespaceSelector matches the pod's
namespace (``kubernetes.io/metadata.name``) runs its policy's CEL validations on the pod with
cel-python (the very expressions the fault ships, not a copy), and denies with the policy's
reason and message; then each ResourceQuota of the namespace with
``requests.nvidia.com/gpu`` refuses a pod that would take the namespace's GPUs past it, with
the API server's "exceeded quota" message. Nothing else is emulated (no LimitRange defaults,
no quota status).
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import aiohttp.web
import celpy
import kmock
from kmock._internal import enums, rendering

from tests.k8s.kmock_cluster import ClusterEmulator, EmulatedCluster

GPU = "nvidia.com/gpu"
GPU_QUOTA_KEY = "requests.nvidia.com/gpu"
EXTRA_RESOURCES = (
    "v1/resourcequotas",
    "v1/limitranges",
    "scheduling.k8s.io/v1/priorityclasses",
    "admissionregistration.k8s.io/v1/validatingadmissionpolicies",
    "admissionregistration.k8s.io/v1/validatingadmissionpolicybindings",
)
_CODES = {"Forbidden": 403, "Invalid": 422, "Unauthorized": 401}


def _refused(code: int, reason: str, message: str) -> aiohttp.web.Response:
    body = {"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": code,
            "reason": reason, "message": message}  # fmt: skip
    return aiohttp.web.json_response(body, status=code)


def _gpus(pod: dict[str, Any]) -> int:
    total = 0
    for c in pod.get("spec", {}).get("containers", []):
        res = c.get("resources") or {}
        amount = (res.get("requests") or {}).get(GPU) or (res.get("limits") or {}).get(GPU)
        total += int(amount or 0)
    return total


class TenancyEmulator(ClusterEmulator):
    """The cluster emulator with quota and validating-admission-policy admission of pods."""

    #: every admission refusal: (namespace, pod, message)
    refusals: list[tuple[str, str, str]]

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        self.refusals = []
        for res in EXTRA_RESOURCES:
            self.resources[res] = {}

    def _live(self, plural: str, namespace: str | None = None) -> list[dict[str, Any]]:
        return [
            obj.raw
            for (res, ns, _), obj in self._objects.items()
            if str(res.plural) == plural and not obj.deleted and namespace in (None, ns)
        ]

    def _policy_denial(self, ns: str, pod: dict[str, Any]) -> aiohttp.web.Response | None:
        policies = {p["metadata"]["name"]: p for p in self._live("validatingadmissionpolicies")}
        for binding in self._live("validatingadmissionpolicybindings"):
            spec = binding["spec"]
            wanted = (spec.get("matchResources") or {}).get("namespaceSelector") or {}
            labels = wanted.get("matchLabels") or {}
            if labels and labels != {"kubernetes.io/metadata.name": ns}:
                continue
            policy = policies.get(spec["policyName"])
            if policy is None or "Deny" not in spec.get("validationActions", []):
                continue
            env = celpy.Environment()
            for rule in policy["spec"]["validations"]:
                program = env.program(env.compile(rule["expression"]))
                if bool(program.evaluate({"object": celpy.json_to_cel(pod)})):
                    continue
                name = binding["metadata"]["name"]
                message = (
                    f'pods "{pod["metadata"]["name"]}" is forbidden: ValidatingAdmissionPolicy '
                    f"'{policy['metadata']['name']}' with binding '{name}' denied request: "
                    f"{rule.get('message', '')}"
                )
                reason = rule.get("reason", "Invalid")
                return _refused(_CODES.get(reason, 422), reason, message)
        return None

    def _quota_denial(self, ns: str, pod: dict[str, Any]) -> aiohttp.web.Response | None:
        wants = _gpus(pod)
        if not wants:
            return None
        used = sum(_gpus(p) for p in self._live("pods", ns))
        for quota in self._live("resourcequotas", ns):
            hard = (quota.get("spec") or {}).get("hard") or {}
            if GPU_QUOTA_KEY in hard and used + wants > int(hard[GPU_QUOTA_KEY]):
                message = (
                    f'pods "{pod["metadata"]["name"]}" is forbidden: exceeded quota: '
                    f"{quota['metadata']['name']}, requested: {GPU_QUOTA_KEY}={wants}, "
                    f"used: {GPU_QUOTA_KEY}={used}, limited: {GPU_QUOTA_KEY}={hard[GPU_QUOTA_KEY]}"
                )
                return _refused(403, "Forbidden", message)
        return None

    async def _handle(self, request: rendering.Request) -> aiohttp.web.StreamResponse:
        if (
            request.resource is not None
            and str(request.resource.plural) == "pods"
            and request.action == enums.action.CREATE
            and request.subresource is None
            and isinstance(request.data, dict)
        ):
            pod = request.data
            ns = str(request.namespace or pod.get("metadata", {}).get("namespace"))
            async with self._lock:
                denied = self._policy_denial(ns, pod) or self._quota_denial(ns, pod)
            if denied is not None:
                self.refusals.append(
                    (ns, pod["metadata"]["name"], json.loads(denied.text or "{}")["message"])
                )
                return denied
            if request.params.get("dryRun") == "All":
                return aiohttp.web.json_response(pod, status=201)
        return await super()._handle(request)


class TenancyCluster(EmulatedCluster):
    """:class:`EmulatedCluster` serving :class:`TenancyEmulator`."""

    async def _start(self) -> None:
        logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
        self.handler = TenancyEmulator()
        await self.handler.__aenter__()
        self._server = kmock.Server(self.handler)
        await self._server.__aenter__()
        self.url = f"http://127.0.0.1:{self._server.port}"

    @property
    def t(self) -> TenancyEmulator:
        assert isinstance(self.handler, TenancyEmulator)
        return self.handler

    def get(self, resource: str, namespace: str | None, name: str) -> dict[str, Any] | None:
        """The stored object (None when absent or deleted)."""

        async def _get() -> dict[str, Any] | None:
            for (res, ns, obj_name), obj in self.t._objects.items():
                if str(res.plural) == resource and (ns, obj_name) == (namespace, name):
                    return None if obj.deleted else dict(obj.raw)
            return None

        return asyncio.run_coroutine_threadsafe(_get(), self.loop).result(10)
