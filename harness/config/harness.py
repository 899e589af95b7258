"""The ``gpuchaos`` extension block as a whole: the workload, where it runs (a platform or an
external endpoint), the load, the SLOs, warm-up, telemetry and stop conditions.
"""

from __future__ import annotations

import contextlib
from typing import Annotated, Any, Literal

from pydantic import Discriminator, Field, Tag, ValidationError, model_validator

from harness.config.base import MAX_DURATION_S, MAX_INTERVAL_S, StrictModel
from harness.config.endpoint import EndpointSpec
from harness.config.load import LoadSpec
from harness.config.platform_kubernetes import KubernetesPlatformSpec
from harness.config.platform_local import LocalPlatformSpec
from harness.config.slos import SLOSpec
from harness.config.stop_conditions import StopCondition
from harness.config.telemetry import TelemetrySpec
from harness.config.tenancy import TenancySpec
from harness.config.tenancy_layout import LayoutError, check_tenants, layout
from harness.config.workload import WorkloadSpec

#: The ``name`` of the experiment's extension block that this model reads.
EXTENSION_NAME = "gpuchaos"


def _platform_kind(value: object) -> str:
    kind = value.get("kind", "local") if isinstance(value, dict) else getattr(value, "kind", "")
    return str(kind)


PlatformSpec = Annotated[
    Annotated[LocalPlatformSpec, Tag("local")]
    | Annotated[KubernetesPlatformSpec, Tag("kubernetes")],
    Discriminator(_platform_kind),
]


class HarnessSpec(StrictModel):
    """The ``gpuchaos`` extension block of an experiment."""

    name: Literal["gpuchaos"] = Field(description="Extension name, always 'gpuchaos'.")
    workload: WorkloadSpec = Field(default_factory=WorkloadSpec, description="What to deploy.")
    platform: PlatformSpec | None = Field(
        default=None, description="Where to deploy the workload (unset with an endpoint)."
    )
    endpoint: EndpointSpec | None = Field(
        default=None,
        description=(
            "An external server to load instead of deploying the workload; node and replica "
            "faults are not available then."
        ),
    )
    load: LoadSpec = Field(description="The traffic.")
    slos: SLOSpec = Field(default_factory=SLOSpec, description="Objectives to score.")
    warmup_s: float = Field(
        default=10.0,
        ge=0,
        le=MAX_DURATION_S,
        description=(
            "Seconds of load before the experiment starts (0: none); at most "
            f"{MAX_DURATION_S} (7 days)."
        ),
    )
    telemetry_interval_s: float = Field(
        default=1.0,
        gt=0,
        le=MAX_INTERVAL_S,
        description=f"Sampling period of telemetry, seconds; at most {MAX_INTERVAL_S} (1 hour).",
    )
    telemetry: TelemetrySpec = Field(
        default_factory=TelemetrySpec,
        description="Extra telemetry sources (DCGM through Prometheus: prometheus_url).",
    )
    stop_conditions: list[StopCondition] = Field(
        default_factory=list,
        description="Abort guards checked every second while the experiment runs.",
    )
    tenancy: TenancySpec | None = Field(
        default=None,
        description=(
            "Several tenants on one pool of GPU nodes (harness.config.tenancy): each with its "
            "own workload, load, SLOs and contract, and how they share the GPUs; unset: one "
            "workload. With it, workload, load and slos are written per tenant."
        ),
    )
    preflight: Literal["warn", "strict", "off"] = Field(
        default="warn",
        description=(
            "Spare-capacity preflight of node-loss faults (local platform): warn (default) "
            "prints and records whether the lost replicas find room within slos.recovery_s; "
            "strict also refuses, before deploying, a fault that cannot recover in time; off: "
            "no check."
        ),
    )

    @model_validator(mode="before")
    @classmethod
    def _first_tenant_is_the_experiment(cls, data: Any) -> Any:
        """With tenancy, the first tenant's workload, load and SLOs are the experiment's
        (what single-workload code reads); written at the top level too they would be two
        answers to one question, so they are refused."""
        if not isinstance(data, dict) or not isinstance(data.get("tenancy"), dict):
            return data
        given = [k for k in ("workload", "load", "slos") if k in data]
        if given:
            raise ValueError(
                f"{', '.join(given)}: with tenancy each tenant has its own; write them under "
                "tenancy.tenants[] instead"
            )
        tenants = data["tenancy"].get("tenants")
        first = tenants[0] if isinstance(tenants, list) and tenants else None
        data = dict(data)
        data["load"] = _PLACEHOLDER_LOAD
        if isinstance(first, dict):
            for key, model in (("workload", WorkloadSpec), ("load", LoadSpec), ("slos", SLOSpec)):
                if key in first:
                    # an invalid one is reported once, where it was written
                    with contextlib.suppress(ValidationError):
                        data[key] = model.model_validate(first[key])
        return data

    @model_validator(mode="after")
    def _tenancy_on_a_pool(self) -> HarnessSpec:
        tenancy = self.tenancy
        if tenancy is None:
            return self
        platform = self.platform
        if not isinstance(platform, LocalPlatformSpec):
            raise ValueError(
                "tenancy: runs on the local platform; for Kubernetes, `gpuchaos "
                "tenant-manifests` renders the tenants' namespaces and quotas"
            )
        for i, node in enumerate(platform.nodes):
            if "replicas" in node.model_fields_set or "max_replicas" in node.model_fields_set:
                raise ValueError(
                    f"platform.nodes[{i}] ({node.name}): with tenancy leave replicas and "
                    "max_replicas out; each tenant's contract says how many it runs"
                )
        for key in ("autoscaler", "cluster_autoscaler"):
            if getattr(platform, key) is not None:
                raise ValueError(
                    f"platform.{key}: with tenancy each tenant has its own autoscaler "
                    "(tenancy.tenants[].autoscaler); node pools are not supported"
                )
        if platform.pools:
            raise ValueError("platform.pools: not supported with tenancy (a fixed pool)")
        try:
            layout(tenancy, platform)
            check_tenants(tenancy, tenancy.tenants)
        except LayoutError as exc:
            raise ValueError(f"tenancy: {exc}") from None
        return self

    @model_validator(mode="after")
    def _platform_or_endpoint(self) -> HarnessSpec:
        if (self.platform is None) == (self.endpoint is None):
            raise ValueError("set exactly one of platform (deploy the workload) and endpoint")
        return self


#: Stands in for the top-level load of a tenancy experiment whose first tenant's load is
#: itself invalid (that error is reported where it was written, under tenancy.tenants[0]).
_PLACEHOLDER_LOAD: dict[str, Any] = {
    "shape": {"kind": "step", "duration_s": 1, "start": 1, "increment": 0, "step_s": 1}
}
