"""The ``platform`` block of kind ``kubernetes``: the cluster, the namespace fence, the
Deployment the harness creates (or the pods it targets), KEDA autoscaling and the device
plugin that device-plugin faults disrupt.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from harness.config.base import StrictModel


class KedaSpec(StrictModel):
    """Autoscaling of the Deployment by a KEDA ScaledObject on the replicas' queue depth."""

    min_replicas: int = Field(default=1, ge=0, description="Fewest replicas KEDA keeps.")
    max_replicas: int = Field(default=4, ge=1, description="Most replicas KEDA scales to.")
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
        default=8.0, gt=0, description="Target of the signal per replica (KEDA's threshold)."
    )
    polling_interval_s: int = Field(default=5, ge=1, description="How often KEDA checks.")
    cooldown_s: int = Field(default=60, ge=0, description="Wait before scaling down.")

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
    replicas: int = Field(default=2, ge=1, le=256, description="Replicas of the Deployment.")
    gpus_per_replica: int = Field(
        default=1, ge=0, le=16, description="nvidia.com/gpu limit of each replica (0: CPU)."
    )
    port: int = Field(default=8000, ge=1, le=65535, description="Port the server listens on.")
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
            "access 'url': the base URL; unset: http://<name>.<namespace>.svc.cluster.local:<port>."
        ),
        pattern=r"^https?://[^\s/]+(/\S*)?$",
    )
    min_disruption_available: int = Field(
        default=1, ge=0, description="PodDisruptionBudget minAvailable."
    )
    autoscaling: KedaSpec | None = Field(
        default=None, description="A KEDA ScaledObject on queue depth; unset: fixed replicas."
    )
    device_plugin: DevicePluginSpec = Field(
        default_factory=DevicePluginSpec, description="The NVIDIA device plugin's pods."
    )
    rollout_timeout_s: float = Field(
        default=600.0, gt=0, description="How long the rollout may take (image pull included)."
    )
    poll_interval_s: float = Field(
        default=1.0, gt=0, description="How often pods and nodes are read for the timeline."
    )

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
    def pod_labels(self) -> dict[str, str]:
        """Labels that select the workload's pods."""
        if not self.deploy and self.selector:
            return dict(self.selector)
        return {"app.kubernetes.io/name": "gpuchaos", "app.kubernetes.io/instance": self.name}
