"""Prometheus metrics both reference servers expose (OOM count, engine errors, rejections,
readiness, startup, identity, GPU memory), and builders for the per-model ones."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
REJECT_REASONS = ("queue_full", "timeout", "draining")
STARTUP_STAGES = ("import", "device_init", "weights", "warmup")
_MODEL_LABEL = ("model_name",)


def track_gpu_memory(registry: CollectorRegistry, device: str) -> None:
    """GPU memory gauges of this process, read at scrape time (CUDA only)."""
    import torch

    dev = torch.device(device)
    Gauge(
        "gpuchaos_gpu_memory_allocated_bytes",
        "GPU memory used by tensors of this process.",
        registry=registry,
    ).set_function(lambda: float(torch.cuda.memory_allocated(dev)))
    Gauge(
        "gpuchaos_gpu_memory_reserved_bytes",
        "GPU memory reserved by this process's caching allocator.",
        registry=registry,
    ).set_function(lambda: float(torch.cuda.memory_reserved(dev)))


class ReplicaMetrics:
    """The metrics of one server process, in a registry of its own; a server adds its own.

    The help texts that say what a batch and a failure are come from the server.
    """

    def __init__(
        self,
        model_name: str,
        replica_id: str,
        device: str,
        *,
        batch_help: str,
        oom_help: str,
        engine_errors_help: str,
        rejected_help: str,
    ) -> None:
        self.registry = reg = CollectorRegistry()
        self.model_name = model_name
        self.batch_size = Histogram(
            "gpuchaos_batch_size", batch_help, buckets=BATCH_BUCKETS, registry=reg
        )
        self.oom = Counter("gpuchaos_oom", oom_help, registry=reg)
        self._engine_errors = Counter(
            "gpuchaos_engine_errors", engine_errors_help, ("kind",), registry=reg
        )
        self.failed_requests = Counter(
            "gpuchaos_request_failures", "Requests failed by the engine.", registry=reg
        )
        self._rejected = Counter(
            "gpuchaos_requests_rejected", rejected_help, ("reason",), registry=reg
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

    def model_gauge(self, name: str, documentation: str) -> Gauge:
        """A gauge labelled with this replica's model name."""
        return Gauge(name, documentation, _MODEL_LABEL, registry=self.registry).labels(
            self.model_name
        )

    def model_counter(self, name: str, documentation: str) -> Counter:
        """A counter labelled with this replica's model name."""
        return Counter(name, documentation, _MODEL_LABEL, registry=self.registry).labels(
            self.model_name
        )

    def model_histogram(self, name: str, documentation: str, buckets: Sequence[float]) -> Histogram:
        """A histogram labelled with this replica's model name."""
        return Histogram(
            name, documentation, _MODEL_LABEL, buckets=buckets, registry=self.registry
        ).labels(self.model_name)

    def engine_error(self, kind: str) -> None:
        self._engine_errors.labels(kind).inc()
        if kind == "oom":
            self.oom.inc()

    def rejected(self, reason: str) -> None:
        self._rejected.labels(reason).inc()

    def startup_stage(self, stage: str, seconds: float) -> None:
        self._startup.labels(stage).set(seconds)

    def track_gpu_memory(self, device: str) -> None:
        """Expose GPU memory used and reserved, read at scrape time (CUDA only)."""
        track_gpu_memory(self.registry, device)

    def track_sharing(
        self,
        memory_fraction: float | None,
        mps_active: bool,
        mps_memory_limit_bytes: int | None,
        hog_bytes: Callable[[], float],
    ) -> Gauge:
        """How this replica shares its device (workloads/sharing.py): the memory fraction
        asked for (1 when none), whether MPS serves it and its MPS memory limit (0: none),
        and the bytes the fault hook's ``hog`` holds (read at scrape time). Returns the
        ``gpuchaos_memory_fraction_enforced`` gauge (0 until the cap is set on CUDA)."""
        reg = self.registry
        Gauge(
            "gpuchaos_memory_fraction",
            "Share of the device's memory this process may allocate (--memory-fraction; "
            "1 when unset).",
            registry=reg,
        ).set(1.0 if memory_fraction is None else memory_fraction)
        enforced = Gauge(
            "gpuchaos_memory_fraction_enforced",
            "1 when the CUDA caching allocator enforces the memory fraction; 0 on CPU (the "
            "platform's RLIMIT_AS caps a CPU replica) or without a fraction.",
            registry=reg,
        )
        Gauge(
            "gpuchaos_mps_active",
            "1 when an MPS control daemon's pipe is present for this CUDA process.",
            registry=reg,
        ).set(1 if mps_active else 0)
        Gauge(
            "gpuchaos_mps_memory_limit_bytes",
            "This MPS client's pinned device memory limit (CUDA_MPS_PINNED_DEVICE_MEM_LIMIT); "
            "0 when none.",
            registry=reg,
        ).set(mps_memory_limit_bytes or 0)
        Gauge(
            "gpuchaos_fault_hog_bytes",
            "Memory the fault hook's hog holds in this process (until clear).",
            registry=reg,
        ).set_function(hog_bytes)
        return enforced

    def render(self) -> bytes:
        return generate_latest(self.registry)
