"""Strict configuration models for the harness block of an experiment.

An experiment is a Chaos Toolkit experiment whose ``extensions`` list holds one entry named
``gpuchaos``: the workload, the platform, the load shape and the SLOs. Every model rejects
unknown keys.

One module per block, each importing only :mod:`harness.config.base` and the blocks it
nests (no circles); every public name is re-exported here, so ``from harness.config import
X`` is the one way in:

- :mod:`~harness.config.base`: ``StrictModel``, the base of every model (strict, finite), and
  the shared bounds of numbers (``MAX_DURATION_S`` and the others)
- :mod:`~harness.config.workload`: ``workload`` (the inference server)
- :mod:`~harness.config.platform_local`: ``platform`` of kind ``local`` (nodes, liveness,
  outlier ejection), with :mod:`~harness.config.autoscaler` (its autoscaler)
- :mod:`~harness.config.platform_kubernetes`: ``platform`` of kind ``kubernetes``
- :mod:`~harness.config.endpoint`: ``endpoint`` (an external server instead of a platform)
- :mod:`~harness.config.shapes` and :mod:`~harness.config.load`: ``load`` and its shape
- :mod:`~harness.config.slos`: ``slos``
- :mod:`~harness.config.stop_conditions`: ``stop_conditions``
- :mod:`~harness.config.telemetry`: ``telemetry`` (DCGM through Prometheus)
- :mod:`~harness.config.tenancy`: ``tenancy`` (tenants on one pool, how GPUs are shared),
  with :mod:`~harness.config.tenancy_layout` (where each tenant's replicas go)
- :mod:`~harness.config.harness`: ``HarnessSpec``, the whole ``gpuchaos`` block
"""

from harness.config.autoscaler import AutoscalerSpec
from harness.config.base import StrictModel
from harness.config.endpoint import EndpointSpec
from harness.config.harness import EXTENSION_NAME, HarnessSpec, PlatformSpec
from harness.config.load import LengthDistribution, LoadSpec
from harness.config.platform_kubernetes import (
    DevicePluginSpec,
    KedaSpec,
    KubernetesPlatformSpec,
)
from harness.config.platform_local import (
    LivenessSpec,
    LocalPlatformSpec,
    NodeSpec,
    OutlierEjectionSpec,
)
from harness.config.shapes import (
    LEVEL_DOC,
    DiurnalShape,
    RampShape,
    Shape,
    SpikeShape,
    StepShape,
    TraceShape,
    read_trace,
)
from harness.config.slos import SLO_NAMES, WINDOW_NAMES, SLOSpec
from harness.config.stop_conditions import StopCondition
from harness.config.telemetry import TelemetrySpec
from harness.config.tenancy import SHARING_MODES, ContractSpec, TenancySpec, TenantSpec
from harness.config.workload import WORKLOAD_MODELS, WORKLOAD_MODULES, WorkloadSpec

__all__ = [
    "EXTENSION_NAME",
    "LEVEL_DOC",
    "SHARING_MODES",
    "SLO_NAMES",
    "WINDOW_NAMES",
    "WORKLOAD_MODELS",
    "WORKLOAD_MODULES",
    "AutoscalerSpec",
    "ContractSpec",
    "DevicePluginSpec",
    "DiurnalShape",
    "EndpointSpec",
    "HarnessSpec",
    "KedaSpec",
    "KubernetesPlatformSpec",
    "LengthDistribution",
    "LivenessSpec",
    "LoadSpec",
    "LocalPlatformSpec",
    "NodeSpec",
    "OutlierEjectionSpec",
    "PlatformSpec",
    "RampShape",
    "SLOSpec",
    "Shape",
    "SpikeShape",
    "StepShape",
    "StopCondition",
    "StrictModel",
    "TelemetrySpec",
    "TenancySpec",
    "TenantSpec",
    "TraceShape",
    "WorkloadSpec",
    "read_trace",
]
