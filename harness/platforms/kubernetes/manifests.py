"""The workload's Kubernetes objects, rendered from the templates in ``workloads/k8s/``.

The templates are plain manifests (``kubectl apply -f workloads/k8s/`` deploys them as they
are); rendering replaces what the experiment sets: name, namespace, labels, image, replicas,
GPUs, node selector, tolerations, the server's arguments and the name of the fault-token
Secret the pods read ``GPUCHAOS_FAULT_TOKEN`` from (the platform creates that Secret,
:func:`harness.faults.kubehook.token_secret`, before the Deployment).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

import workloads
from harness.config import KubernetesPlatformSpec, WorkloadSpec
from harness.errors import PlatformError
from harness.faults.kubehook import TOKEN_ENV

#: Folder of the manifest templates.
MANIFEST_DIR = Path(workloads.__file__).resolve().parent / "k8s"
#: Template files, in the order objects are created (deleted in reverse).
TEMPLATES: tuple[str, ...] = ("deployment.yaml", "service.yaml", "pdb.yaml", "scaledobject.yaml")
#: Label on every object the harness creates.
MANAGED_BY = {"app.kubernetes.io/managed-by": "gpuchaos"}


def load_template(name: str) -> dict[str, Any]:
    """One template from :data:`MANIFEST_DIR` as a dict."""
    path = MANIFEST_DIR / name
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise PlatformError(f"cannot read manifest template {path}: {exc}") from exc
    if not isinstance(doc, dict) or "kind" not in doc:
        raise PlatformError(f"{path}: expected one Kubernetes object")
    return doc


def server_container_args(spec: KubernetesPlatformSpec, workload: WorkloadSpec) -> list[str]:
    """The server's arguments inside the pod; the replica id is the pod's name."""
    device = "cuda" if spec.gpus_per_replica > 0 else "cpu"
    return [
        "--host=0.0.0.0",
        f"--port={spec.port}",
        f"--device={device}",
        "--replica-id=$(POD_NAME)",
        "--fault-hook-remote",  # the pod's address is not loopback; the token guards the hook
        *workload.server_args(),
    ]


def _meta(doc: dict[str, Any], spec: KubernetesPlatformSpec) -> None:
    meta = doc.setdefault("metadata", {})
    meta["name"] = spec.name
    meta["namespace"] = spec.namespace
    meta["labels"] = {**spec.pod_labels, **MANAGED_BY}


def render(spec: KubernetesPlatformSpec, workload: WorkloadSpec) -> list[dict[str, Any]]:
    """The objects to create, in creation order (the ScaledObject only with autoscaling)."""
    labels = spec.pod_labels
    deployment = copy.deepcopy(load_template("deployment.yaml"))
    _meta(deployment, spec)
    dspec = deployment["spec"]
    dspec["replicas"] = spec.replicas
    dspec["selector"] = {"matchLabels": dict(labels)}
    template = dspec["template"]
    template["metadata"]["labels"] = dict(labels)
    template["metadata"].setdefault("annotations", {})["prometheus.io/port"] = str(spec.port)
    pod = template["spec"]
    pod["nodeSelector"] = dict(spec.gpu_node_selector)
    pod["tolerations"] = [dict(t) for t in spec.tolerations]
    container = pod["containers"][0]
    container["image"] = spec.image
    container["command"] = ["python", "-m", workload.module]
    container["args"] = server_container_args(spec, workload)
    container["ports"][0]["containerPort"] = spec.port
    for env in container["env"]:
        if env["name"] == TOKEN_ENV:
            env["valueFrom"]["secretKeyRef"]["name"] = spec.token_secret
    limits = container["resources"]["limits"]
    if spec.gpus_per_replica > 0:
        limits["nvidia.com/gpu"] = str(spec.gpus_per_replica)
    else:
        limits.pop("nvidia.com/gpu", None)
    objects = [deployment]

    service = copy.deepcopy(load_template("service.yaml"))
    _meta(service, spec)
    service["spec"]["selector"] = dict(labels)
    service["spec"]["ports"][0]["port"] = spec.port
    objects.append(service)

    pdb = copy.deepcopy(load_template("pdb.yaml"))
    _meta(pdb, spec)
    pdb["spec"]["minAvailable"] = spec.min_disruption_available
    pdb["spec"]["selector"] = {"matchLabels": dict(labels)}
    objects.append(pdb)

    keda = spec.autoscaling
    if keda is not None:
        scaled = copy.deepcopy(load_template("scaledobject.yaml"))
        _meta(scaled, spec)
        sspec = scaled["spec"]
        sspec["scaleTargetRef"]["name"] = spec.name
        sspec["minReplicaCount"] = keda.min_replicas
        sspec["maxReplicaCount"] = keda.max_replicas
        sspec["pollingInterval"] = keda.polling_interval_s
        sspec["cooldownPeriod"] = keda.cooldown_s
        trigger = sspec["triggers"][0]["metadata"]
        trigger["serverAddress"] = keda.prometheus_url
        trigger["query"] = keda.query.format(namespace=spec.namespace, name=spec.name)
        trigger["threshold"] = f"{keda.threshold:g}"
        objects.append(scaled)
    return objects


def selector_string(labels: dict[str, str]) -> str:
    """``{"a": "b", "c": "d"}`` as the label selector ``a=b,c=d``."""
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items()))


def matches(labels: dict[str, str] | None, wanted: dict[str, str]) -> bool:
    """Whether ``labels`` carry every key and value of ``wanted``."""
    have = labels or {}
    return all(have.get(k) == v for k, v in wanted.items())
