"""Strict configuration models for the harness block of an experiment.

An experiment is a Chaos Toolkit experiment whose ``extensions`` list holds one entry named
``gpuchaos``: the workload, the platform, the load shape and the SLOs. Every model rejects
unknown keys.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class NodeSpec(StrictModel):
    """A virtual node of the local platform: one device and the replicas it runs."""

    name: str = Field(description="Node name, used as a fault target.", pattern=r"^[a-z0-9-]+$")
    device: str = Field(
        default="auto",
        description="'cpu', 'cuda', 'cuda:N', or 'auto' (cuda:0 when a GPU is present, else cpu).",
        pattern=r"^(auto|cpu|cuda(:\d+)?)$",
    )
    replicas: int = Field(default=1, ge=0, le=64, description="Replicas on this node.")
    cpus: list[int] | None = Field(
        default=None,
        description=(
            "CPU cores the node's replicas are pinned to (its share of the machine), e.g. "
            "[0]; unset: no pinning. Cores this machine lacks are skipped."
        ),
    )


class WorkloadSpec(StrictModel):
    """The inference server to deploy."""

    kind: Literal["llm"] = Field(default="llm", description="Reference workload to deploy.")
    model: Literal["auto", "tiny", "gpt2-small"] = Field(
        default="auto",
        description="Model size: 'tiny' (CPU), 'gpt2-small' (GPU), 'auto' picks by device.",
    )
    max_batch_size: int = Field(default=16, ge=1, le=1024, description="Decode batch limit.")
    seed: int = Field(default=0, description="Seed of the random model weights.")
    ready_timeout_s: float = Field(
        default=120.0, gt=0, description="How long a replica may take to become Ready."
    )
    extra_args: list[str] = Field(
        default_factory=list, description="Extra command-line arguments for each replica."
    )


class LocalPlatformSpec(StrictModel):
    """The embedded local platform: virtual nodes, replicas as processes, a router."""

    kind: Literal["local"] = Field(default="local", description="Platform kind.")
    nodes: list[NodeSpec] = Field(min_length=1, description="Virtual nodes and their replicas.")
    restart_backoff_s: float = Field(
        default=0.5, gt=0, description="First restart delay of a crashed replica (doubles)."
    )
    max_backoff_s: float = Field(default=10.0, gt=0, description="Cap of the restart delay.")
    probe_interval_s: float = Field(
        default=0.25, gt=0, description="How often the supervisor checks replica readiness."
    )
    torch_threads: int = Field(
        default=1, ge=1, description="CPU threads per replica (torch.set_num_threads)."
    )

    @model_validator(mode="after")
    def _unique_nodes(self) -> LocalPlatformSpec:
        names = [n.name for n in self.nodes]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"node names must be unique, repeated: {', '.join(dupes)}")
        return self


class SpikeShape(StrictModel):
    """Baseline users, then a spike of users for a while, then baseline again."""

    kind: Literal["spike"] = Field(default="spike", description="Shape kind.")
    duration_s: float = Field(gt=0, description="Total length of the load, seconds.")
    baseline_users: int = Field(ge=1, description="Concurrent users outside the spike.")
    spike_multiplier: float = Field(
        default=3.0, ge=1, description="Users during the spike = baseline_users x this."
    )
    spike_start_s: float = Field(ge=0, description="Seconds after load start the spike begins.")
    spike_duration_s: float = Field(ge=0, description="Length of the spike, seconds.")
    spawn_rate: float = Field(default=100.0, gt=0, description="Users started per second.")

    @model_validator(mode="after")
    def _inside(self) -> SpikeShape:
        if self.spike_start_s + self.spike_duration_s > self.duration_s:
            raise ValueError(
                "spike_start_s + spike_duration_s must not exceed duration_s "
                f"({self.spike_start_s} + {self.spike_duration_s} > {self.duration_s})"
            )
        return self


class LoadSpec(StrictModel):
    """The Locust load: which user, what requests, which shape."""

    user: Literal["openai-stream"] = Field(
        default="openai-stream", description="Locust user: streaming OpenAI completions."
    )
    shape: SpikeShape = Field(description="The load shape.")
    prompt_words: int = Field(default=8, ge=1, description="Words in each prompt.")
    max_tokens: int = Field(default=16, ge=1, description="Tokens requested per completion.")
    request_timeout_s: float = Field(default=30.0, gt=0, description="Client-side timeout.")
    wait_s: float = Field(default=0.0, ge=0, description="Think time between a user's requests.")
    seed: int = Field(default=0, description="Seed of the prompt generator.")


class SLOSpec(StrictModel):
    """Service level objectives. Unset objectives are not scored."""

    p50_latency_ms: float | None = Field(default=None, gt=0, description="Max p50 latency.")
    p99_latency_ms: float | None = Field(default=None, gt=0, description="Max p99 latency.")
    ttft_p95_ms: float | None = Field(default=None, gt=0, description="Max p95 TTFT.")
    error_rate: float | None = Field(
        default=None, ge=0, le=1, description="Max share of failed requests (0-1)."
    )
    throughput_rps: float | None = Field(
        default=None, ge=0, description="Min successful requests per second."
    )
    recovery_s: float | None = Field(
        default=None, gt=0, description="Max seconds from fault start until SLIs hold again."
    )
    hold_s: int = Field(
        default=3, ge=1, description="Seconds in a row the SLIs must hold to count as recovered."
    )


class HarnessSpec(StrictModel):
    """The ``gpuchaos`` extension block of an experiment."""

    name: Literal["gpuchaos"] = Field(description="Extension name, always 'gpuchaos'.")
    workload: WorkloadSpec = Field(default_factory=WorkloadSpec, description="What to deploy.")
    platform: LocalPlatformSpec = Field(description="Where to deploy it.")
    load: LoadSpec = Field(description="The traffic.")
    slos: SLOSpec = Field(default_factory=SLOSpec, description="Objectives to score.")
    warmup_s: float = Field(
        default=10.0, ge=0, description="Seconds of load before the experiment starts."
    )
    telemetry_interval_s: float = Field(
        default=1.0, gt=0, description="Sampling period of telemetry, seconds."
    )
