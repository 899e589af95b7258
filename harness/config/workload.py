"""The ``workload`` block: which reference inference server a replica runs, and its flags.

Shared by every platform: the local platform turns it into a command line
(:meth:`WorkloadSpec.server_args`), the Kubernetes platform into a container's arguments.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from harness.config.base import (
    MAX_COUNT,
    MAX_DURATION_S,
    MAX_INTERVAL_S,
    MAX_LATENCY_MS,
    MAX_REQUEST_S,
    MAX_SEED,
    MAX_TOKENS,
    StrictModel,
)

#: Model names each workload kind accepts ('auto' picks by device).
WORKLOAD_MODELS: dict[str, tuple[str, ...]] = {
    "llm": ("auto", "tiny", "gpt2-small"),
    "classifier": ("auto", "tiny", "resnet50"),
}
#: The module each workload kind runs as (``python -m MODULE``).
WORKLOAD_MODULES: dict[str, str] = {"llm": "workloads.llm", "classifier": "workloads.classifier"}


class WorkloadSpec(StrictModel):
    """The inference server to deploy."""

    kind: Literal["llm", "classifier"] = Field(
        default="llm",
        description="Reference workload: 'llm' (OpenAI completions) or 'classifier' (KServe v2).",
    )
    model: Literal["auto", "tiny", "gpt2-small", "resnet50"] = Field(
        default="auto",
        description=(
            "Model size. llm: 'tiny' (CPU) or 'gpt2-small' (GPU); classifier: 'tiny' (CPU) or "
            "'resnet50' (GPU); 'auto' picks by device."
        ),
    )
    max_batch_size: int = Field(default=16, ge=1, le=1024, description="Batch limit, 1 to 1024.")
    header_timeout_s: float = Field(
        default=10.0,
        gt=0,
        le=MAX_INTERVAL_S,
        description=(
            "Seconds a request's headers may take to arrive (slow-loris guard: 408 and the "
            f"connection closed), at most {MAX_INTERVAL_S}."
        ),
    )
    body_timeout_s: float = Field(
        default=30.0,
        gt=0,
        le=MAX_INTERVAL_S,
        description=(
            "Seconds a request's body may take to arrive after its headers (408 and the "
            f"connection closed past it), at most {MAX_INTERVAL_S}."
        ),
    )
    max_queue_size: int = Field(
        default=256,
        ge=0,
        le=MAX_COUNT,
        description=(
            "Requests that may wait for the batch; beyond: 429 (0: none waits), at most "
            f"{MAX_COUNT:,}."
        ),
    )
    max_tokens: int = Field(
        default=1024,
        ge=1,
        le=MAX_TOKENS,
        description=(f"llm: the largest max_tokens a request may ask for, at most {MAX_TOKENS:,}."),
    )
    kv_cache: Literal["preallocate", "on-demand"] = Field(
        default="preallocate",
        description=(
            "llm: 'preallocate' takes the whole KV-cache pool at startup (like vLLM); "
            "'on-demand' grows and shrinks it with the batch."
        ),
    )
    gpu_memory_utilization: float | None = Field(
        default=None,
        gt=0,
        le=1,
        description=(
            "llm with kv_cache 'preallocate' on CUDA: size the pool to this share of the "
            "GPU's memory (like vLLM's option), above 0 and at most 1; unset: one slot per "
            "batch entry."
        ),
    )
    cuda_graphs: bool = Field(
        default=True, description="llm on CUDA: run decode steps as captured CUDA graphs."
    )
    max_batch_delay_ms: float = Field(
        default=5.0,
        ge=0,
        le=MAX_LATENCY_MS,
        description=(
            "classifier: longest wait to fill a batch, ms (0: no wait), at most "
            f"{MAX_LATENCY_MS:,} (1 hour)."
        ),
    )
    request_timeout_s: float = Field(
        default=60.0,
        gt=0,
        le=MAX_REQUEST_S,
        description=(
            "Server-side limit on a request's time, queue included, seconds; at most "
            f"{MAX_REQUEST_S} (1 hour)."
        ),
    )
    shutdown_grace_s: float = Field(
        default=10.0,
        ge=0,
        le=MAX_INTERVAL_S,
        description=(
            "On SIGTERM: how long in-flight requests may finish, seconds (0: not at all); at "
            f"most {MAX_INTERVAL_S} (1 hour)."
        ),
    )
    seed: int = Field(
        default=0,
        ge=0,
        le=MAX_SEED,
        description=f"Seed of the random model weights, 0 to {MAX_SEED:,}.",
    )
    ready_timeout_s: float = Field(
        default=120.0,
        gt=0,
        le=MAX_DURATION_S,
        description=(
            f"How long a replica may take to become Ready, seconds; at most {MAX_DURATION_S} "
            "(7 days)."
        ),
    )
    liveness: Literal["shallow", "deep"] = Field(
        default="shallow",
        description=(
            "What the server's /health/live checks: 'shallow' (the process answers HTTP) or "
            "'deep' (a tiny computation on the device within a time limit: a poisoned CUDA "
            "context fails it, so a liveness probe restarts the replica)."
        ),
    )
    extra_args: list[str] = Field(
        default_factory=list, description="Extra command-line arguments for each replica."
    )

    @model_validator(mode="after")
    def _model_fits_kind(self) -> WorkloadSpec:
        allowed = WORKLOAD_MODELS[self.kind]
        if self.model not in allowed:
            raise ValueError(
                f"model {self.model!r} is not a {self.kind} model; expected one of "
                f"{', '.join(allowed)}"
            )
        return self

    @property
    def module(self) -> str:
        """The Python module a replica runs (``python -m``)."""
        return WORKLOAD_MODULES[self.kind]

    def server_args(self) -> list[str]:
        """Command-line flags of a replica for this spec (not host, port, device, id, threads)."""
        args = [
            "--model", self.model,
            "--max-batch-size", str(self.max_batch_size),
            "--max-queue-size", str(self.max_queue_size),
            "--request-timeout-s", str(self.request_timeout_s),
            "--shutdown-grace-s", str(self.shutdown_grace_s),
            "--seed", str(self.seed),
            "--header-timeout-s", str(self.header_timeout_s),
            "--body-timeout-s", str(self.body_timeout_s),
        ]  # fmt: skip
        if self.kind == "llm":
            args += ["--max-tokens-limit", str(self.max_tokens), "--kv-cache", self.kv_cache]
            if self.gpu_memory_utilization is not None:
                args += ["--gpu-memory-utilization", str(self.gpu_memory_utilization)]
            if not self.cuda_graphs:
                args.append("--no-cuda-graphs")
        else:
            args += ["--max-batch-delay-ms", str(self.max_batch_delay_ms)]
        if self.liveness != "shallow":
            args += ["--liveness", self.liveness]
        return [*args, *self.extra_args]
