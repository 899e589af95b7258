"""Prometheus metrics of one replica, with vLLM's names so dashboards and autoscalers know them."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from workloads.common import track_gpu_memory

TTFT_BUCKETS = (
    0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75,
    1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0,
)  # fmt: skip
E2E_BUCKETS = (
    0.01, 0.025, 0.05, 0.1, 0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0,
    10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0, 120.0,
)  # fmt: skip
TPOT_BUCKETS = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5,
    0.75, 1.0, 2.5,
)  # fmt: skip
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
REJECT_REASONS = ("queue_full", "timeout", "draining")
STARTUP_STAGES = ("import", "device_init", "weights", "warmup")


class Metrics:
    """All metrics of one server process, in a registry of its own."""

    def __init__(self, model_name: str, replica_id: str, device: str) -> None:
        self.registry = CollectorRegistry()
        reg = self.registry
        m = ("model_name",)
        self.num_requests_waiting = Gauge(
            "vllm:num_requests_waiting", "Requests queued, not yet in the batch.", m, registry=reg
        ).labels(model_name)
        self.num_requests_running = Gauge(
            "vllm:num_requests_running", "Requests in the running batch.", m, registry=reg
        ).labels(model_name)
        self.cache_usage = Gauge(
            "vllm:gpu_cache_usage_perc",
            "Fraction of KV cache slots in use (1 = full).",
            m,
            registry=reg,
        ).labels(model_name)
        self.time_to_first_token = Histogram(
            "vllm:time_to_first_token_seconds",
            "Time from arrival to the first generated token.",
            m,
            buckets=TTFT_BUCKETS,
            registry=reg,
        ).labels(model_name)
        self.e2e_request_latency = Histogram(
            "vllm:e2e_request_latency_seconds",
            "Time from arrival to the last generated token.",
            m,
            buckets=E2E_BUCKETS,
            registry=reg,
        ).labels(model_name)
        self.time_per_output_token = Histogram(
            "vllm:time_per_output_token_seconds",
            "Time between two generated tokens of a request.",
            m,
            buckets=TPOT_BUCKETS,
            registry=reg,
        ).labels(model_name)
        self.queue_time = Histogram(
            "vllm:request_queue_time_seconds",
            "Time a request waited before its prefill.",
            m,
            buckets=TTFT_BUCKETS,
            registry=reg,
        ).labels(model_name)
        self.kv_cache_bytes = Gauge(
            "gpuchaos_kv_cache_bytes",
            "Memory the KV-cache pool holds now (constant when preallocated).",
            registry=reg,
        )
        self._rejected = Counter(
            "gpuchaos_requests_rejected",
            "Requests refused or dropped before finishing (reason: queue_full -> 429, "
            "timeout -> 504, draining -> 503).",
            ("reason",),
            registry=reg,
        )
        for reason in REJECT_REASONS:
            self._rejected.labels(reason)
        self.prompt_tokens = Counter(
            "vllm:prompt_tokens", "Prompt tokens prefilled.", m, registry=reg
        ).labels(model_name)
        self.generation_tokens = Counter(
            "vllm:generation_tokens", "Tokens generated.", m, registry=reg
        ).labels(model_name)
        self._request_success = Counter(
            "vllm:request_success",
            "Requests that finished generating.",
            ("model_name", "finished_reason"),
            registry=reg,
        )
        self._model_name = model_name
        self.batch_size = Histogram(
            "gpuchaos_batch_size", "Requests per decode step.", buckets=BATCH_BUCKETS, registry=reg
        )
        self.oom = Counter(
            "gpuchaos_oom",
            "Forward passes (or cache growths) that ran out of memory.",
            registry=reg,
        )
        self._engine_errors = Counter(
            "gpuchaos_engine_errors",
            "Forward passes that raised (kind: oom or other); their requests failed with 503.",
            ("kind",),
            registry=reg,
        )
        self.failed_requests = Counter(
            "gpuchaos_request_failures", "Requests failed by the engine.", registry=reg
        )
        self.ready = Gauge("gpuchaos_ready", "1 once the model is loaded and warm.", registry=reg)
        self._startup = Gauge(
            "gpuchaos_startup_seconds", "Startup time by stage.", ("stage",), registry=reg
        )
        Gauge(
            "gpuchaos_replica_info",
            "Identity of this replica (always 1).",
            ("replica_id", "device", "model"),
            registry=reg,
        ).labels(replica_id, device, model_name).set(1)
        for kind in ("oom", "other"):
            self._engine_errors.labels(kind)
        self._request_success.labels(model_name, "length")

    def request_success(self, finished_reason: str) -> None:
        self._request_success.labels(self._model_name, finished_reason).inc()

    def engine_error(self, kind: str) -> None:
        self._engine_errors.labels(kind).inc()
        if kind == "oom":
            self.oom.inc()

    def startup_stage(self, stage: str, seconds: float) -> None:
        self._startup.labels(stage).set(seconds)

    def rejected(self, reason: str) -> None:
        self._rejected.labels(reason).inc()

    def track_gpu_memory(self, device: str) -> None:
        """Expose GPU memory used and reserved, read at scrape time (CUDA only)."""
        track_gpu_memory(self.registry, device)

    def render(self) -> bytes:
        return generate_latest(self.registry)
