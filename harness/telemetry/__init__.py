"""Telemetry: NVML per GPU (psutil on CPU) and each replica's Prometheus metrics."""

from harness.telemetry.sampler import TelemetrySampler

__all__ = ["TelemetrySampler"]
