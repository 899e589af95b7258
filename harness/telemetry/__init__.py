"""Telemetry: NVML per GPU (psutil on CPU), DCGM through Prometheus on a cluster, and each
replica's Prometheus metrics."""

from harness.telemetry.dcgm import dcgm_reader
from harness.telemetry.sampler import TelemetrySampler

__all__ = ["TelemetrySampler", "dcgm_reader"]
