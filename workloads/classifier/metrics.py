"""Prometheus metrics of one classifier replica.

Queue and running gauges use the LLM server's (vLLM) names, so the harness's telemetry and
autoscaler read both workloads the same way; the rest is gpuchaos_* and shared with the LLM
server where the meaning is the same (OOM count, engine errors, rejections, startup, memory).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from workloads.common import track_gpu_memory

LATENCY_BUCKETS = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 10.0,
    30.0, 60.0,
)  # fmt: skip
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
STARTUP_STAGES = ("import", "device_init", "weights", "warmup")
REJECT_REASONS = ("queue_full", "timeout", "draining")


class ClassifierMetrics:
    """All metrics of one classifier process, in a registry of its own."""

    def __init__(self, model_name: str, replica_id: str, device: str) -> None:
        self.registry = reg = CollectorRegistry()
        m = ("model_name",)
        self.waiting = Gauge(
            "vllm:num_requests_waiting", "Requests queued for a batch.", m, registry=reg
        ).labels(model_name)
        self.running = Gauge(
            "vllm:num_requests_running", "Images in the batch being computed.", m, registry=reg
        ).labels(model_name)
        self.request_latency = Histogram(
            "gpuchaos_request_latency_seconds",
            "Time from arrival to the result.",
            buckets=LATENCY_BUCKETS,
            registry=reg,
        )
        self.queue_time = Histogram(
            "gpuchaos_queue_time_seconds",
            "Time a request waited for its batch.",
            buckets=LATENCY_BUCKETS,
            registry=reg,
        )
        self.compute_time = Histogram(
            "gpuchaos_batch_compute_seconds",
            "Forward time of one batch.",
            buckets=LATENCY_BUCKETS,
            registry=reg,
        )
        self.batch_size = Histogram(
            "gpuchaos_batch_size", "Images per batch.", buckets=BATCH_BUCKETS, registry=reg
        )
        self.images = Counter("gpuchaos_images", "Images classified.", registry=reg)
        self.oom = Counter("gpuchaos_oom", "Batches that ran out of memory.", registry=reg)
        self._engine_errors = Counter(
            "gpuchaos_engine_errors",
            "Batches that raised (kind: oom or other); their requests failed with 503.",
            ("kind",),
            registry=reg,
        )
        self.failed_requests = Counter(
            "gpuchaos_request_failures", "Requests failed by the engine.", registry=reg
        )
        self._rejected = Counter(
            "gpuchaos_requests_rejected",
            "Requests refused or dropped (reason: queue_full -> 429, timeout -> 504, "
            "draining -> 503).",
            ("reason",),
            registry=reg,
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
        for reason in REJECT_REASONS:
            self._rejected.labels(reason)

    def engine_error(self, kind: str) -> None:
        self._engine_errors.labels(kind).inc()
        if kind == "oom":
            self.oom.inc()

    def rejected(self, reason: str) -> None:
        self._rejected.labels(reason).inc()

    def startup_stage(self, stage: str, seconds: float) -> None:
        self._startup.labels(stage).set(seconds)

    def track_gpu_memory(self, device: str) -> None:
        track_gpu_memory(self.registry, device)

    def render(self) -> bytes:
        return generate_latest(self.registry)
