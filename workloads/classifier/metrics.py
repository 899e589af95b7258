"""Prometheus metrics of one classifier replica.

Queue and running gauges use the LLM server's (vLLM) names, so the harness's telemetry and
autoscaler read both workloads the same way; the rest is gpuchaos_* and shared with the LLM
server where the meaning is the same (OOM count, engine errors, rejections, startup, memory).
"""

from __future__ import annotations

from prometheus_client import Counter, Histogram

from workloads.metrics import ReplicaMetrics

LATENCY_BUCKETS = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 10.0,
    30.0, 60.0,
)  # fmt: skip


class ClassifierMetrics(ReplicaMetrics):
    """All metrics of one classifier process, in a registry of its own."""

    def __init__(self, model_name: str, replica_id: str, device: str) -> None:
        super().__init__(
            model_name,
            replica_id,
            device,
            batch_help="Images per batch.",
            oom_help="Batches that ran out of memory.",
            engine_errors_help=(
                "Batches that raised (kind: oom or other); their requests failed with 503."
            ),
            rejected_help=(
                "Requests refused or dropped (reason: queue_full -> 429, timeout -> 504, "
                "draining -> 503)."
            ),
        )
        reg = self.registry
        self.waiting = self.model_gauge("vllm:num_requests_waiting", "Requests queued for a batch.")
        self.running = self.model_gauge(
            "vllm:num_requests_running", "Images in the batch being computed."
        )
        self.request_latency = self._latency(
            "gpuchaos_request_latency_seconds", "Time from arrival to the result."
        )
        self.queue_time = self._latency(
            "gpuchaos_queue_time_seconds", "Time a request waited for its batch."
        )
        self.compute_time = self._latency(
            "gpuchaos_batch_compute_seconds", "Forward time of one batch."
        )
        self.images = Counter("gpuchaos_images", "Images classified.", registry=reg)

    def _latency(self, name: str, documentation: str) -> Histogram:
        return Histogram(name, documentation, buckets=LATENCY_BUCKETS, registry=self.registry)
