"""The ``gpuchaos`` extension block as a whole: the workload, where it runs (a platform or an
external endpoint), the load, the SLOs, warm-up, telemetry and stop conditions.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Discriminator, Field, Tag, model_validator

from harness.config.base import MAX_DURATION_S, MAX_INTERVAL_S, StrictModel
from harness.config.endpoint import EndpointSpec
from harness.config.load import LoadSpec
from harness.config.platform_kubernetes import KubernetesPlatformSpec
from harness.config.platform_local import LocalPlatformSpec
from harness.config.slos import SLOSpec
from harness.config.stop_conditions import StopCondition
from harness.config.telemetry import TelemetrySpec
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
    preflight: Literal["warn", "strict", "off"] = Field(
        default="warn",
        description=(
            "Spare-capacity preflight of node-loss faults (local platform): warn (default) "
            "prints and records whether the lost replicas find room within slos.recovery_s; "
            "strict also refuses, before deploying, a fault that cannot recover in time; off: "
            "no check."
        ),
    )

    @model_validator(mode="after")
    def _platform_or_endpoint(self) -> HarnessSpec:
        if (self.platform is None) == (self.endpoint is None):
            raise ValueError("set exactly one of platform (deploy the workload) and endpoint")
        return self
