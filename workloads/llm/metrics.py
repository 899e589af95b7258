"""Prometheus metrics of one replica, with vLLM's names so dashboards and autoscalers know them."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

from workloads.metrics import ReplicaMetrics

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


class Metrics(ReplicaMetrics):
    """All metrics of one server process, in a registry of its own."""

    def __init__(self, model_name: str, replica_id: str, device: str) -> None:
        super().__init__(
            model_name,
            replica_id,
            device,
            batch_help="Requests per decode step.",
            oom_help="Forward passes (or cache growths) that ran out of memory.",
            engine_errors_help=(
                "Forward passes that raised (kind: oom or other); their requests failed with 503."
            ),
            rejected_help=(
                "Requests refused or dropped before finishing (reason: queue_full -> 429, "
                "timeout -> 504, draining -> 503)."
            ),
        )
        self.num_requests_waiting = self.model_gauge(
            "vllm:num_requests_waiting", "Requests queued, not yet in the batch."
        )
        self.num_requests_running = self.model_gauge(
            "vllm:num_requests_running", "Requests in the running batch."
        )
        self.cache_usage = self.model_gauge(
            "vllm:gpu_cache_usage_perc", "Fraction of KV cache slots in use (1 = full)."
        )
        self.time_to_first_token = self.model_histogram(
            "vllm:time_to_first_token_seconds",
            "Time from arrival to the first generated token.",
            TTFT_BUCKETS,
        )
        self.e2e_request_latency = self.model_histogram(
            "vllm:e2e_request_latency_seconds",
            "Time from arrival to the last generated token.",
            E2E_BUCKETS,
        )
        self.time_per_output_token = self.model_histogram(
            "vllm:time_per_output_token_seconds",
            "Time between two generated tokens of a request.",
            TPOT_BUCKETS,
        )
        self.queue_time = self.model_histogram(
            "vllm:request_queue_time_seconds",
            "Time a request waited before its prefill.",
            TTFT_BUCKETS,
        )
        self.kv_cache_bytes = Gauge(
            "gpuchaos_kv_cache_bytes",
            "Memory the KV-cache pool holds now (constant when preallocated).",
            registry=self.registry,
        )
        self.prompt_tokens = self.model_counter("vllm:prompt_tokens", "Prompt tokens prefilled.")
        self.generation_tokens = self.model_counter("vllm:generation_tokens", "Tokens generated.")
        self._request_success = Counter(
            "vllm:request_success",
            "Requests that finished generating.",
            ("model_name", "finished_reason"),
            registry=self.registry,
        )
        self._request_success.labels(model_name, "length")

    def request_success(self, finished_reason: str) -> None:
        self._request_success.labels(self.model_name, finished_reason).inc()
