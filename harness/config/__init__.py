"""Strict configuration models for the harness block of an experiment.

An experiment is a Chaos Toolkit experiment whose ``extensions`` list holds one entry named
``gpuchaos``: the workload, the platform, the load shape and the SLOs. Every model rejects
unknown keys.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    PrivateAttr,
    Tag,
    field_validator,
    model_validator,
)


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
    max_replicas: int | None = Field(
        default=None,
        ge=0,
        le=64,
        description=(
            "Most replicas the node can run (its GPU capacity): replicas of a lost node are "
            "rescheduled onto nodes below it, and the autoscaler scales up to it; unset: "
            "'replicas' (no spare room)."
        ),
    )

    @property
    def capacity(self) -> int:
        """Most replicas this node can run."""
        return self.replicas if self.max_replicas is None else max(self.max_replicas, 0)

    @model_validator(mode="after")
    def _room_for_replicas(self) -> NodeSpec:
        if self.max_replicas is not None and self.max_replicas < self.replicas:
            raise ValueError(
                f"max_replicas ({self.max_replicas}) is below replicas ({self.replicas})"
            )
        return self


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
    max_batch_size: int = Field(default=16, ge=1, le=1024, description="Batch limit.")
    max_queue_size: int = Field(
        default=256, ge=0, description="Requests that may wait for the batch; beyond: 429."
    )
    max_tokens: int = Field(
        default=1024, ge=1, description="llm: the largest max_tokens a request may ask for."
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
            "GPU's memory (like vLLM's option); unset: one slot per batch entry."
        ),
    )
    cuda_graphs: bool = Field(
        default=True, description="llm on CUDA: run decode steps as captured CUDA graphs."
    )
    max_batch_delay_ms: float = Field(
        default=5.0, ge=0, description="classifier: longest wait to fill a batch, ms."
    )
    request_timeout_s: float = Field(
        default=60.0, gt=0, description="Server-side limit on a request's time, queue included."
    )
    shutdown_grace_s: float = Field(
        default=10.0, ge=0, description="On SIGTERM: how long in-flight requests may finish."
    )
    seed: int = Field(default=0, description="Seed of the random model weights.")
    ready_timeout_s: float = Field(
        default=120.0, gt=0, description="How long a replica may take to become Ready."
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
        ]  # fmt: skip
        if self.kind == "llm":
            args += ["--max-tokens-limit", str(self.max_tokens), "--kv-cache", self.kv_cache]
            if self.gpu_memory_utilization is not None:
                args += ["--gpu-memory-utilization", str(self.gpu_memory_utilization)]
            if not self.cuda_graphs:
                args.append("--no-cuda-graphs")
        else:
            args += ["--max-batch-delay-ms", str(self.max_batch_delay_ms)]
        return [*args, *self.extra_args]


class LivenessSpec(StrictModel):
    """The supervisor's liveness probe (like a kubelet livenessProbe): GET /health/live;
    after ``failure_threshold`` failures in a row the replica is killed and restarted."""

    period_s: float = Field(default=1.0, gt=0, description="Seconds between liveness probes.")
    timeout_s: float = Field(default=2.0, gt=0, description="A probe slower than this fails.")
    failure_threshold: int = Field(
        default=3, ge=1, description="Failed probes in a row before the replica is restarted."
    )


class AutoscalerSpec(StrictModel):
    """A local autoscaler like KEDA on Prometheus: polls the replicas' /metrics and sets the
    replica count with the HPA rule desired = ceil(replicas x metric / threshold)."""

    metric: Literal["queue_depth", "ttft_s"] = Field(
        default="queue_depth",
        description=(
            "queue_depth: vllm:num_requests_waiting averaged over Ready replicas; ttft_s: mean "
            "time to first token over the last polling interval (seconds)."
        ),
    )
    threshold: float = Field(gt=0, description="Target value of the metric per replica.")
    polling_interval_s: float = Field(
        default=5.0, gt=0, description="Seconds between two looks at the metric."
    )
    cooldown_s: float = Field(
        default=30.0, ge=0, description="Seconds after a scaling action before the next one."
    )
    min_replicas: int = Field(default=1, ge=0, le=256, description="Fewest replicas.")
    max_replicas: int = Field(default=4, ge=1, le=256, description="Most replicas.")
    max_step: int = Field(default=2, ge=1, description="Most replicas added or removed at once.")
    replica_memory_mib: float = Field(
        default=0.0,
        ge=0,
        description=(
            "Memory a new replica needs on its node (GPU memory from NVML on CUDA nodes, host "
            "memory on CPU nodes); a node with less free takes none."
        ),
    )
    tolerance: float = Field(
        default=0.1, ge=0, lt=1, description="No change while metric/threshold is within 1 +- this."
    )

    @model_validator(mode="after")
    def _bounds(self) -> AutoscalerSpec:
        if self.min_replicas > self.max_replicas:
            raise ValueError(
                f"min_replicas ({self.min_replicas}) exceeds max_replicas ({self.max_replicas})"
            )
        return self


class OutlierEjectionSpec(StrictModel):
    """Envoy-style outlier detection in the local router: a replica that answers
    ``consecutive_5xx`` 5xx in a row (or cannot be reached) gets no traffic for a while."""

    consecutive_5xx: int = Field(
        default=5, ge=1, description="5xx answers (or failed connections) in a row that eject."
    )
    base_ejection_s: float = Field(
        default=30.0,
        gt=0,
        description="Ejection time; the n-th ejection of a replica lasts n times this.",
    )
    max_ejection_s: float = Field(
        default=300.0, gt=0, description="Longest ejection, whatever the count."
    )
    max_ejection_percent: float = Field(
        default=50.0,
        ge=0,
        le=100,
        description=(
            "Most replicas ejected at once, in percent (at least one replica may be ejected, "
            "the last one never)."
        ),
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
    liveness: LivenessSpec | None = Field(
        default_factory=LivenessSpec,
        description="Liveness probe that restarts hung replicas; null: none.",
    )
    autoscaler: AutoscalerSpec | None = Field(
        default=None, description="Scale replicas on queue depth or TTFT; unset: fixed count."
    )
    outlier_ejection: OutlierEjectionSpec | None = Field(
        default=None,
        description=(
            "Eject replicas that keep failing from the router's rotation; null (default): "
            "none, like a Service or gateway without outlier detection."
        ),
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


#: What a shape's level means: concurrent users (closed loop) or requests/s (open loop).
LEVEL_DOC = "users in closed-loop mode, requests/s in open-loop mode"


class StepShape(StrictModel):
    """The level starts at ``start`` and rises by ``increment`` every ``step_s`` seconds."""

    kind: Literal["step"] = Field(description="Shape kind.")
    duration_s: float = Field(gt=0, description="Total length of the load, seconds.")
    start: float = Field(ge=0, description=f"Level of the first step ({LEVEL_DOC}).")
    increment: float = Field(description="Added to the level at every step (may be negative).")
    step_s: float = Field(gt=0, description="Length of each step, seconds.")
    max_level: float | None = Field(
        default=None, ge=0, description="The level never goes above this (unset: no cap)."
    )
    spawn_rate: float = Field(default=100.0, gt=0, description="Users started per second.")


class RampShape(StrictModel):
    """A linear ramp from ``start`` to ``end`` over ``ramp_s`` seconds, then held at ``end``."""

    kind: Literal["ramp"] = Field(description="Shape kind.")
    duration_s: float = Field(gt=0, description="Total length of the load, seconds.")
    start: float = Field(ge=0, description=f"Level at load start ({LEVEL_DOC}).")
    end: float = Field(ge=0, description="Level at the end of the ramp.")
    ramp_s: float = Field(gt=0, description="Length of the ramp, seconds.")
    spawn_rate: float = Field(default=100.0, gt=0, description="Users started per second.")

    @model_validator(mode="after")
    def _inside(self) -> RampShape:
        if self.ramp_s > self.duration_s:
            raise ValueError(
                f"ramp_s must not exceed duration_s ({self.ramp_s} > {self.duration_s})"
            )
        return self


class DiurnalShape(StrictModel):
    """A day compressed: ``mean + amplitude * sin(2 pi t / period_s)``, never below 0."""

    kind: Literal["diurnal"] = Field(description="Shape kind.")
    duration_s: float = Field(gt=0, description="Total length of the load, seconds.")
    mean: float = Field(ge=0, description=f"Average level ({LEVEL_DOC}).")
    amplitude: float = Field(ge=0, description="Swing of the level above and below the mean.")
    period_s: float = Field(gt=0, description="Length of one day, seconds.")
    spawn_rate: float = Field(default=100.0, gt=0, description="Users started per second.")


class TraceShape(StrictModel):
    """Replays a CSV of ``time_s,level`` rows (a recorded rate over time), held between rows."""

    kind: Literal["trace"] = Field(description="Shape kind.")
    path: str = Field(
        description=(
            "CSV file with a header 'time_s,level' (or 'time_s,rate' / 'time_s,users') and rows "
            "of seconds since start and level; relative paths are from the working directory."
        )
    )
    scale: float = Field(default=1.0, gt=0, description="Every level is multiplied by this.")
    duration_s: float | None = Field(
        default=None, gt=0, description="Length of the load; unset: the last row's time."
    )
    spawn_rate: float = Field(default=100.0, gt=0, description="Users started per second.")
    _points: tuple[tuple[float, float], ...] = PrivateAttr(default=())

    @field_validator("path")
    @classmethod
    def _absolute(cls, value: str) -> str:
        return str(Path(value).expanduser().resolve())

    def model_post_init(self, _context: object) -> None:
        self._points = read_trace(Path(self.path))

    @property
    def points(self) -> tuple[tuple[float, float], ...]:
        """The trace's (time_s, level) rows in time order, scale not applied."""
        return self._points

    @property
    def length_s(self) -> float:
        """The load's length: ``duration_s`` or the last row's time."""
        return self.duration_s if self.duration_s is not None else self._points[-1][0]


def read_trace(path: Path) -> tuple[tuple[float, float], ...]:
    """The rows of a trace CSV; ValueError naming the line when one is not two numbers."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise ValueError(f"cannot read trace {path}: {exc.strerror or exc}") from None
    points: list[tuple[float, float]] = []
    for number, line in enumerate(lines, start=1):
        cells = [c.strip() for c in line.split(",")]
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if number == 1 and cells[0] == "time_s":
            continue
        try:
            t, level = float(cells[0]), float(cells[1])
        except (ValueError, IndexError):
            raise ValueError(f"{path}:{number}: expected 'time_s,level' numbers") from None
        if t < 0 or level < 0 or (points and t <= points[-1][0]):
            raise ValueError(f"{path}:{number}: times must rise from 0, levels be >= 0")
        points.append((t, level))
    if len(points) < 2:
        raise ValueError(f"{path}: a trace needs at least two rows")
    return tuple(points)


def _shape_kind(value: object) -> str:
    kind = value.get("kind", "spike") if isinstance(value, dict) else getattr(value, "kind", "")
    return str(kind)


Shape = Annotated[
    Annotated[SpikeShape, Tag("spike")]
    | Annotated[StepShape, Tag("step")]
    | Annotated[RampShape, Tag("ramp")]
    | Annotated[DiurnalShape, Tag("diurnal")]
    | Annotated[TraceShape, Tag("trace")],
    Discriminator(_shape_kind),
]


class LengthDistribution(StrictModel):
    """A seeded random length: drawn per request, rounded, clamped to [min, max]."""

    dist: Literal["uniform", "normal", "lognormal"] = Field(
        description="uniform(min, max), normal(mean, std) or lognormal(median=mean, sigma=std)."
    )
    min: int = Field(default=1, ge=1, description="Smallest length drawn.")
    max: int = Field(ge=1, description="Largest length drawn.")
    mean: float | None = Field(
        default=None, gt=0, description="normal: the mean; lognormal: the median."
    )
    std: float | None = Field(
        default=None, gt=0, description="normal: the standard deviation; lognormal: sigma."
    )

    @model_validator(mode="after")
    def _complete(self) -> LengthDistribution:
        if self.max < self.min:
            raise ValueError(f"max ({self.max}) must not be below min ({self.min})")
        if self.dist != "uniform" and (self.mean is None or self.std is None):
            raise ValueError(f"a {self.dist} distribution needs mean and std")
        return self


class LoadSpec(StrictModel):
    """The Locust load: which user, what requests, which shape, open or closed loop."""

    user: Literal["openai-stream", "openai", "kserve-v2"] = Field(
        default="openai-stream",
        description=(
            "Locust user: 'openai-stream' (streaming /v1/completions, records TTFT), 'openai' "
            "(non-streaming), 'kserve-v2' (POST /v2/models/{model}/infer)."
        ),
    )
    shape: Shape = Field(description="The load shape: spike, step, ramp, diurnal or trace.")
    mode: Literal["closed", "open"] = Field(
        default="closed",
        description=(
            "closed: the shape's level is concurrent users, each waiting for its answer; open: "
            "the level is requests/s, sent on schedule whatever the latency."
        ),
    )
    arrivals: Literal["poisson", "uniform"] = Field(
        default="poisson", description="Open loop: Poisson or evenly spaced arrivals."
    )
    max_in_flight: int = Field(
        default=512,
        ge=1,
        description=(
            "Open loop: requests in flight at once; later arrivals wait in the client queue "
            "(recorded as queue_ms, and counted in their latency)."
        ),
    )
    model: str | None = Field(
        default=None,
        description="Model name sent (openai) or addressed (kserve-v2, default 'classifier').",
    )
    prompt_words: int | LengthDistribution = Field(
        default=8, description="Words in each prompt: a number or a length distribution."
    )
    max_tokens: int | LengthDistribution = Field(
        default=16, description="Tokens requested per completion: a number or a distribution."
    )
    request_timeout_s: float = Field(default=30.0, gt=0, description="Client-side timeout.")
    wait_s: float = Field(
        default=0.0, ge=0, description="Closed loop: think time between a user's requests."
    )
    seed: int = Field(default=0, description="Seed of prompts, lengths, inputs and arrivals.")
    workers: int = Field(
        default=0,
        ge=0,
        le=64,
        description=(
            "Locust workers: 0 runs the load in one process; N runs a Locust master and N "
            "local worker processes, each writing its own records file, merged into "
            "requests.csv as they come and sorted by start time when the load stops."
        ),
    )
    workers_on: Literal["local", "kubernetes"] = Field(
        default="local",
        description=(
            "Where the Locust master and workers run: 'local' (processes of the harness) or "
            "'kubernetes' (a master Job behind a Service and an indexed Job of 'workers' "
            "workers in the platform's namespace, sending to the workload's in-cluster "
            "Service URL; needs platform.kind: kubernetes and workers >= 1)."
        ),
    )
    workers_image: str = Field(
        default="ghcr.io/gpuchaos/load:0.1.0",
        min_length=1,
        description=(
            "workers_on 'kubernetes': image of the Locust Jobs (built from "
            "workloads/load.Dockerfile, the same harness version as this one)."
        ),
    )
    workers_start_s: float = Field(
        default=30.0,
        gt=0,
        le=3600,
        description=(
            "workers_on 'kubernetes': seconds between creating the Jobs and the start of the "
            "load shape, for scheduling and image pulls; the run fails when no request record "
            "is in the workers' logs 15 s after that."
        ),
    )

    @field_validator("prompt_words", "max_tokens")
    @classmethod
    def _positive(cls, value: int | LengthDistribution) -> int | LengthDistribution:
        if isinstance(value, int) and value < 1:
            raise ValueError("must be at least 1")
        return value

    @model_validator(mode="after")
    def _jobs_need_workers(self) -> LoadSpec:
        if self.workers_on == "kubernetes" and self.workers < 1:
            raise ValueError("workers_on: kubernetes needs workers >= 1")
        return self


class EndpointSpec(StrictModel):
    """An inference server that is already running (vLLM, TGI, Triton, ...): no deployment."""

    url: str = Field(
        description="Base URL the load goes to, e.g. http://10.0.0.5:8000.",
        pattern=r"^https?://[^\s/]+(/\S*)?$",
    )
    ready_path: str | None = Field(
        default=None,
        description="Path polled until it answers 200 before the load starts (unset: no wait).",
    )
    ready_timeout_s: float = Field(
        default=60.0, gt=0, description="How long the endpoint may take to answer ready_path."
    )


#: SLO names of :class:`SLOSpec`, in scorecard order (``recovery_s`` last).
SLO_NAMES: tuple[str, ...] = (
    "p50_latency_ms",
    "p95_latency_ms",
    "p99_latency_ms",
    "ttft_p95_ms",
    "ttft_p99_ms",
    "tpot_p95_ms",
    "tpot_p99_ms",
    "error_rate",
    "availability",
    "throughput_rps",
    "goodput_rps",
    "recovery_s",
)

#: Named evaluation windows (see the README's Scoring section); ``load:NAME`` and a number of
#: seconds (rolling window) are accepted too.
WINDOW_NAMES: tuple[str, ...] = ("run", "baseline", "fault", "recovery", "steady")


class SLOSpec(StrictModel):
    """Service level objectives and scoring knobs. Unset objectives are not scored.

    Every objective is evaluated over the whole load unless ``windows`` names another window
    for it: ``baseline``, ``fault``, ``recovery``, ``steady`` (phases from the timeline),
    ``load:NAME`` (a load-shape phase, e.g. ``load:spike``), or a number of seconds (a rolling
    window: the worst such window must meet the objective).
    """

    p50_latency_ms: float | None = Field(default=None, gt=0, description="Max p50 latency.")
    p95_latency_ms: float | None = Field(default=None, gt=0, description="Max p95 latency.")
    p99_latency_ms: float | None = Field(default=None, gt=0, description="Max p99 latency.")
    ttft_p95_ms: float | None = Field(default=None, gt=0, description="Max p95 TTFT.")
    ttft_p99_ms: float | None = Field(default=None, gt=0, description="Max p99 TTFT.")
    tpot_p95_ms: float | None = Field(
        default=None,
        gt=0,
        description="Max p95 time per output token: (latency - TTFT) / (output tokens - 1).",
    )
    tpot_p99_ms: float | None = Field(
        default=None, gt=0, description="Max p99 time per output token (see tpot_p95_ms)."
    )
    error_rate: float | None = Field(
        default=None, ge=0, le=1, description="Max share of failed requests (0-1)."
    )
    availability: float | None = Field(
        default=None,
        ge=0,
        le=1,
        description="Min share of successful requests (0-1); sets the error budget.",
    )
    throughput_rps: float | None = Field(
        default=None, ge=0, description="Min successful requests per second."
    )
    goodput_rps: float | None = Field(
        default=None,
        ge=0,
        description="Min requests per second that succeeded and met every latency objective.",
    )
    recovery_s: float | None = Field(
        default=None, gt=0, description="Max seconds from fault start until SLIs hold again."
    )
    hold_s: int = Field(
        default=3, ge=1, description="Seconds in a row the SLIs must hold to count as recovered."
    )
    windows: dict[str, str | float] = Field(
        default_factory=dict,
        description=(
            "Evaluation window per objective: run (default), baseline, fault, recovery, "
            "steady, load:NAME, or seconds of a rolling window."
        ),
    )
    weights: dict[str, float] = Field(
        default_factory=dict,
        description="Weight of each objective in the score (default 1 each).",
    )
    price_per_gpu_hour: float | None = Field(
        default=None, ge=0, description="Price of one GPU-hour, for the cost of the run."
    )

    @model_validator(mode="after")
    def _known_names(self) -> SLOSpec:
        for field in ("windows", "weights"):
            unknown = sorted(set(getattr(self, field)) - set(SLO_NAMES))
            if unknown:
                raise ValueError(
                    f"{field}: unknown objective(s) {', '.join(unknown)}; "
                    f"expected one of {', '.join(SLO_NAMES)}"
                )
        for name, window in self.windows.items():
            if name == "recovery_s":
                raise ValueError("windows: recovery_s is measured from the fault, no window")
            if isinstance(window, str):
                if window in WINDOW_NAMES or (window.startswith("load:") and len(window) > 5):
                    continue
                raise ValueError(
                    f"windows.{name}: {window!r}: expected {', '.join(WINDOW_NAMES)}, "
                    "load:NAME or a number of seconds"
                )
            if not window >= 1:
                raise ValueError(f"windows.{name}: a rolling window must be >= 1 s, got {window}")
        for name, weight in self.weights.items():
            if not weight >= 0:
                raise ValueError(f"weights.{name}: expected a weight >= 0, got {weight}")
        return self

    def window(self, name: str) -> str | float:
        """The evaluation window of objective ``name`` (``"run"`` unless set)."""
        return self.windows.get(name, "run")


class StopCondition(StrictModel):
    """An abort guard (like an AWS FIS stop condition): when ``metric`` stays beyond its
    bound for ``for_s`` seconds, the method is stopped, rollbacks run and the run is
    marked aborted."""

    metric: Literal["error_rate", "availability", "p99_latency_ms", "ready_replicas"] = Field(
        description=(
            "What is watched: error_rate or availability (0-1) and p99_latency_ms over the "
            "last window_s seconds of requests, or the number of Ready replicas."
        )
    )
    above: float | None = Field(default=None, description="Trips when the metric is above this.")
    below: float | None = Field(default=None, description="Trips when the metric is below this.")
    for_s: float = Field(
        default=20.0, ge=0, description="Seconds the bound must be crossed without a break."
    )
    window_s: float = Field(
        default=5.0, gt=0, description="Request metrics: seconds of requests each check covers."
    )
    min_requests: int = Field(
        default=5, ge=1, description="Request metrics: fewer requests in the window: no check."
    )

    @model_validator(mode="after")
    def _one_bound(self) -> StopCondition:
        if (self.above is None) == (self.below is None):
            raise ValueError("set exactly one of above and below")
        return self

    def describe(self) -> str:
        bound = f"> {self.above:g}" if self.above is not None else f"< {self.below:g}"
        return f"{self.metric} {bound} for {self.for_s:g} s"


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
        default=10.0, ge=0, description="Seconds of load before the experiment starts."
    )
    telemetry_interval_s: float = Field(
        default=1.0, gt=0, description="Sampling period of telemetry, seconds."
    )
    stop_conditions: list[StopCondition] = Field(
        default_factory=list,
        description="Abort guards checked every second while the experiment runs.",
    )

    @model_validator(mode="after")
    def _platform_or_endpoint(self) -> HarnessSpec:
        if (self.platform is None) == (self.endpoint is None):
            raise ValueError("set exactly one of platform (deploy the workload) and endpoint")
        return self
