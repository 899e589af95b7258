"""The ``tenancy`` block: several teams' workloads on one pool of GPU nodes, each with its own
load, SLOs and contract, and how the GPUs are shared between them.

Why a block of its own: "how do we share GPUs across teams without everything breaking?" is
answered with a sharing mode (NVIDIA time-slicing, MPS or MIG, or a GPU per replica) plus a
contract per team (GPU share, memory cap, replica quota, priority). An experiment with this
block runs every tenant at once on the pool of ``platform.nodes`` and scores each one
against its own SLOs; a fault in one tenant is scored by what it cost the others.

With ``tenancy`` the top-level ``workload``, ``load`` and ``slos`` are not written: each
tenant has its own, and the first tenant's are also the experiment's (what single-tenant
code paths such as the progress line read). ``platform.nodes`` are the pool: their
``replicas`` are left out (the contracts say how many replicas run), and the platform's
probe, back-off and routing settings apply to every tenant.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from harness.config.autoscaler import AutoscalerSpec
from harness.config.base import MAX_MEMORY_MIB, MAX_NODE_REPLICAS, StrictModel
from harness.config.load import LoadSpec
from harness.config.slos import SLOSpec
from harness.config.workload import WorkloadSpec

#: How tenants share a GPU (see the docs' multi-tenancy page for what each protects).
SharingMode = Literal["exclusive", "time-slicing", "mps", "mig"]
SHARING_MODES: tuple[str, ...] = ("exclusive", "time-slicing", "mps", "mig")

#: Most tenants in one experiment.
MAX_TENANTS = 8
#: Most MIG slices of one GPU (an A100/H100 has at most 7 compute instances).
MAX_MIG_SLICES = 7

Priority = Literal["high", "normal", "low"]


class ContractSpec(StrictModel):
    """What a tenant is promised and held to: its share of a GPU, its memory cap, its replica
    quota and its priority."""

    gpu_share: float = Field(
        default=1.0,
        gt=0,
        le=1,
        description=(
            "Share of one GPU each replica is billed for, above 0 up to 1 (time-slicing and "
            "mps: its expected share of the time; mig: the slice, from the mode; exclusive: "
            "always a whole GPU)."
        ),
    )
    memory_mib: float | None = Field(
        default=None,
        gt=0,
        le=MAX_MEMORY_MIB,
        description=(
            "Memory cap of each replica, MiB (mps: its per-client limit; mig: at most its "
            "slice; time-slicing: declared but not enforced, which is the point); unset: no "
            f"cap, which an admission policy may refuse. At most {MAX_MEMORY_MIB:,}."
        ),
    )
    replicas: int = Field(
        default=1,
        ge=1,
        le=MAX_NODE_REPLICAS,
        description=f"Replicas deployed at the start, 1 to {MAX_NODE_REPLICAS}.",
    )
    quota: int | None = Field(
        default=None,
        ge=1,
        le=MAX_NODE_REPLICAS,
        description=(
            "Replica quota (a ResourceQuota on nvidia.com/gpu): the most replicas the "
            "tenant may run; a scale-up beyond it is refused and recorded. Unset: replicas "
            f"(no room to grow). 1 to {MAX_NODE_REPLICAS}, not below replicas."
        ),
    )
    priority: Priority = Field(
        default="normal",
        description=(
            "high, normal or low: the PriorityClass on Kubernetes; on the local platform the "
            "replicas' CPU niceness on shared cores (0, 5, 10), so a low-priority tenant "
            "yields the shared device first."
        ),
    )

    @property
    def replica_quota(self) -> int:
        """The most replicas the tenant may run."""
        return self.replicas if self.quota is None else self.quota

    @model_validator(mode="after")
    def _quota_holds_replicas(self) -> ContractSpec:
        if self.quota is not None and self.quota < self.replicas:
            raise ValueError(f"quota ({self.quota}) is below replicas ({self.replicas})")
        return self


class TenantSpec(StrictModel):
    """One team's workload on the shared pool, with its own load, SLOs and contract."""

    name: str = Field(
        description=(
            "Tenant name: lower-case letters and digits, starting with a letter, at most 20 "
            "(its replicas are '<name>-<node>-<i>', its namespace on Kubernetes)."
        ),
        pattern=r"^[a-z][a-z0-9]{0,19}$",
    )
    workload: WorkloadSpec = Field(
        default_factory=WorkloadSpec, description="What the tenant deploys."
    )
    load: LoadSpec = Field(description="The tenant's own traffic.")
    slos: SLOSpec = Field(
        default_factory=SLOSpec, description="The tenant's objectives, scored on its records."
    )
    contract: ContractSpec = Field(
        default_factory=ContractSpec,
        description="GPU share, memory cap, replica quota and priority.",
    )
    autoscaler: AutoscalerSpec | None = Field(
        default=None,
        description=(
            "The tenant's replica autoscaler; its scale-ups beyond contract.quota are refused "
            "(quota_refused on the timeline). Unset: a fixed count."
        ),
    )


class TenancySpec(StrictModel):
    """Tenants on one pool of GPU nodes (``platform.nodes``) and how they share the GPUs."""

    sharing: SharingMode = Field(
        default="time-slicing",
        description=(
            "exclusive (a GPU per replica), time-slicing (shared, no memory isolation), mps "
            "(shared, a memory cap per client) or mig (hard slices with their own memory)."
        ),
    )
    gpu_memory_mib: float = Field(
        default=4096.0,
        gt=0,
        le=MAX_MEMORY_MIB,
        description=(
            "Memory of each GPU of the CPU stand-in (a CUDA device reports its own), MiB; "
            f"at most {MAX_MEMORY_MIB:,}."
        ),
    )
    mig_slices: int = Field(
        default=2,
        ge=1,
        le=MAX_MIG_SLICES,
        description=(
            "mig: slices per GPU when the GPU is not in MIG mode (fixed virtual slices, each "
            f"with its share of the memory and of the node's cores), 1 to {MAX_MIG_SLICES}."
        ),
    )
    tenants: list[TenantSpec] = Field(
        min_length=1,
        max_length=MAX_TENANTS,
        description=f"The tenants, 1 to {MAX_TENANTS}, names unique.",
    )

    @field_validator("tenants")
    @classmethod
    def _unique_names(cls, value: list[TenantSpec]) -> list[TenantSpec]:
        names = [t.name for t in value]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"tenant names must be unique, repeated: {', '.join(dupes)}")
        return value

    def tenant(self, name: str) -> TenantSpec:
        """The tenant called ``name``; KeyError when there is none."""
        for t in self.tenants:
            if t.name == name:
                return t
        raise KeyError(name)

    def names(self) -> list[str]:
        """Tenant names in the order declared."""
        return [t.name for t in self.tenants]
