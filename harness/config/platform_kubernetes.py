"""The ``platform`` block of kind ``kubernetes``: the cluster, the namespace fence, the
Deployment the harness creates (or the pods it targets), KEDA autoscaling and the device
plugin that device-plugin faults disrupt.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from harness.config.base import (
    MAX_COUNT,
    MAX_DURATION_S,
    MAX_INTERVAL_S,
    MAX_PORT,
    MAX_REPLICAS,
    StrictModel,
    check_url_port,
)


class KedaSpec(StrictModel):
    """Autoscaling of the Deployment by a KEDA ScaledObject on the replicas' queue depth."""

    min_replicas: int = Field(
        default=1,
        ge=0,
        le=MAX_REPLICAS,
        description=f"Fewest replicas KEDA keeps, 0 to {MAX_REPLICAS}.",
    )
    max_replicas: int = Field(
        default=4,
        ge=1,
        le=MAX_REPLICAS,
        description=f"Most replicas KEDA scales to, 1 to {MAX_REPLICAS}.",
    )
    prometheus_url: str = Field(
        default="http://prometheus-operated.monitoring.svc:9090",
        description="Prometheus that scrapes the replicas' /metrics (KEDA's prometheus trigger).",
    )
    query: str = Field(
        default="sum(vllm:num_requests_waiting{{namespace='{namespace}',service='{name}'}})",
        description=(
            "PromQL of the signal; {namespace} and {name} are filled in. Default: requests "
            "waiting in every replica's queue (vLLM's metric name)."
        ),
    )
    threshold: float = Field(
        default=8.0,
        gt=0,
        le=MAX_COUNT,
        description=(
            f"Target of the signal per replica (KEDA's threshold), at most {MAX_COUNT:,}."
        ),
    )
    polling_interval_s: int = Field(
        default=5,
        ge=1,
        le=MAX_INTERVAL_S,
        description=f"How often KEDA checks, seconds; 1 to {MAX_INTERVAL_S} (1 hour).",
    )
    cooldown_s: int = Field(
        default=60,
        ge=0,
        le=MAX_DURATION_S,
        description=(
            f"Wait before scaling down, seconds (0: none); at most {MAX_DURATION_S} (7 days)."
        ),
    )

    @model_validator(mode="after")
    def _bounds(self) -> KedaSpec:
        if self.max_replicas < self.min_replicas:
            raise ValueError(
                f"max_replicas ({self.max_replicas}) must not be below min_replicas "
                f"({self.min_replicas})"
            )
        return self


class DevicePluginSpec(StrictModel):
    """Where the NVIDIA device plugin runs (the target of device-plugin disruption)."""

    namespace: str = Field(
        default="gpu-operator", description="Namespace of the device plugin's DaemonSet pods."
    )
    label_selector: str = Field(
        default="app=nvidia-device-plugin-daemonset",
        description="Label selector of the device plugin's pods.",
    )


class KubernetesPlatformSpec(StrictModel):
    """A Kubernetes cluster: deploy the workload, or target one that runs already."""

    kind: Literal["kubernetes"] = Field(description="Platform kind.")
    context: str | None = Field(
        default=None,
        description=(
            "kubeconfig context the run must use; the run refuses to start when the current "
            "context differs (gpuchaos run --kube-context overrides it). Unset: the flag "
            "must be given."
        ),
    )
    kubeconfig: str | None = Field(
        default=None, description="kubeconfig file; unset: $KUBECONFIG or ~/.kube/config."
    )
    namespace: str = Field(
        default="gpuchaos",
        description="Namespace of the workload; must be in allowed_namespaces.",
        pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$",
    )
    allowed_namespaces: list[str] = Field(
        default_factory=lambda: ["gpuchaos"],
        min_length=1,
        description="Namespaces the harness may act in; anything else is refused.",
    )
    gpu_node_selector: dict[str, str] = Field(
        default_factory=lambda: {"nvidia.com/gpu.present": "true"},
        description=(
            "Labels of the GPU nodes: the Deployment's nodeSelector, and the only nodes node "
            "faults may touch."
        ),
    )
    deploy: bool = Field(
        default=True,
        description=(
            "true: create the Deployment, Service, PodDisruptionBudget (and ScaledObject) and "
            "delete them at the end; false: target pods that run already (selector)."
        ),
    )
    selector: dict[str, str] | None = Field(
        default=None,
        description=(
            "deploy false: labels of the existing workload's pods (required then); deploy "
            "true: ignored (the pods are labelled app.kubernetes.io/instance=<name>)."
        ),
    )
    name: str = Field(
        default="gpuchaos-llm",
        description="Name of the Deployment, Service and PodDisruptionBudget created.",
        pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$",
    )
    image: str = Field(
        default="ghcr.io/gpuchaos/workload:0.1.0",
        description="Workload image (built from workloads/Dockerfile).",
    )
    replicas: int = Field(
        default=2,
        ge=1,
        le=MAX_REPLICAS,
        description=f"Replicas of the Deployment, 1 to {MAX_REPLICAS}.",
    )
    gpus_per_replica: int = Field(
        default=1,
        ge=0,
        le=16,
        description="nvidia.com/gpu limit of each replica (0: CPU), at most 16.",
    )
    port: int = Field(
        default=8000,
        ge=1,
        le=MAX_PORT,
        description=f"Port the server listens on, 1 to {MAX_PORT}.",
    )
    tolerations: list[dict[str, str]] = Field(
        default_factory=lambda: [
            {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
        ],
        description="Tolerations of the replicas (GPU node taints).",
    )
    access: Literal["port-forward", "url"] = Field(
        default="port-forward",
        description=(
            "How the load reaches the Service: 'port-forward' (through the API server to a "
            "Ready pod, from outside the cluster) or 'url' (in-cluster, e.g. Locust as Jobs)."
        ),
    )
    url: str | None = Field(
        default=None,
        description=(
            "access 'url': the base URL (a port 1 to 65535); unset: "
            "http://<name>.<namespace>.svc.cluster.local:<port>."
        ),
        pattern=r"^https?://[^\s/]+(/\S*)?$",
    )
    min_disruption_available: int = Field(
        default=1,
        ge=0,
        le=MAX_REPLICAS,
        description=f"PodDisruptionBudget minAvailable (0: none kept), at most {MAX_REPLICAS}.",
    )
    autoscaling: KedaSpec | None = Field(
        default=None, description="A KEDA ScaledObject on queue depth; unset: fixed replicas."
    )
    device_plugin: DevicePluginSpec = Field(
        default_factory=DevicePluginSpec, description="The NVIDIA device plugin's pods."
    )
    fault_token_secret: str | None = Field(
        default=None,
        description=(
            "Secret (key 'token') holding the workload's fault-hook token. deploy true: the "
            "harness creates it with a random token (default name <name>-fault-token) and "
            "the pods read it as GPUCHAOS_FAULT_TOKEN; deploy false: an existing Secret the "
            "pods already read (unset: <name>-fault-token, if it exists; hook faults are "
            "refused without it)."
        ),
        pattern=r"^[a-z0-9]([-.a-z0-9]*[a-z0-9])?$",
        max_length=253,
    )
    rollout_timeout_s: float = Field(
        default=600.0,
        gt=0,
        le=MAX_DURATION_S,
        description=(
            "How long the rollout may take (image pull included), seconds; at most "
            f"{MAX_DURATION_S} (7 days)."
        ),
    )
    poll_interval_s: float = Field(
        default=1.0,
        gt=0,
        le=MAX_INTERVAL_S,
        description=(
            "How often pods and nodes are read for the timeline, seconds; at most "
            f"{MAX_INTERVAL_S} (1 hour)."
        ),
    )

    @field_validator("url")
    @classmethod
    def _port(cls, value: str | None) -> str | None:
        return None if value is None else check_url_port(value)

    @model_validator(mode="after")
    def _consistent(self) -> KubernetesPlatformSpec:
        if self.namespace not in self.allowed_namespaces:
            raise ValueError(
                f"namespace {self.namespace!r} is not in allowed_namespaces "
                f"({', '.join(self.allowed_namespaces)})"
            )
        if not self.deploy and not self.selector:
            raise ValueError("deploy: false needs a selector of the existing workload's pods")
        if not self.gpu_node_selector:
            raise ValueError("gpu_node_selector must name at least one label")
        return self

    @property
    def token_secret(self) -> str:
        """The name of the fault-token Secret (see ``fault_token_secret``)."""
        return self.fault_token_secret or f"{self.name}-fault-token"

    @property
    def pod_labels(self) -> dict[str, str]:
        """Labels that select the workload's pods."""
        if not self.deploy and self.selector:
            return dict(self.selector)
        return {"app.kubernetes.io/name": "gpuchaos", "app.kubernetes.io/instance": self.name}
