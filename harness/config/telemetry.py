"""The ``telemetry`` block: where GPU figures come from besides the local devices.

Why a block of its own: on the local platform the harness reads the GPUs it runs on (NVML);
on a cluster the GPUs are on other machines, and what a GPU fleet already has is the NVIDIA
DCGM exporter scraped by Prometheus. With ``prometheus_url`` set, the sampler reads the
DCGM series through the Prometheus HTTP API and writes them as the same ``gpuN`` rows of
``telemetry.csv`` (see :mod:`harness.telemetry.dcgm`).
"""

from __future__ import annotations

from pydantic import Field, field_validator

from harness.config.base import MAX_INTERVAL_S, StrictModel, check_url_port


class TelemetrySpec(StrictModel):
    """Extra telemetry sources of a run."""

    prometheus_url: str | None = Field(
        default=None,
        description=(
            "Base URL of a Prometheus that scrapes the NVIDIA DCGM exporter (e.g. "
            "http://prometheus-operated.monitoring.svc:9090); GPU rows (utilization, memory, "
            "power, temperature, SM clock, throttle reasons, XIDs) come from its "
            "DCGM_FI_DEV_* series. Unset: no DCGM telemetry."
        ),
        pattern=r"^https?://[^\s/]+(/\S*)?$",
    )
    dcgm_selector: str = Field(
        default="",
        description=(
            "PromQL label matchers added to every DCGM query, without braces, e.g. "
            "'Hostname=~\"gpu-node-.*\"' or 'cluster=\"staging\"' (empty: every GPU the "
            "Prometheus knows)."
        ),
        max_length=1000,
        pattern=r"^[^{}]*$",
    )
    prometheus_timeout_s: float = Field(
        default=2.0,
        gt=0,
        le=MAX_INTERVAL_S,
        description=(
            "Time limit of one query to Prometheus, seconds; at most "
            f"{MAX_INTERVAL_S} (1 hour). A slow or failing query skips that sample's GPU rows."
        ),
    )

    @field_validator("prometheus_url")
    @classmethod
    def _port(cls, value: str | None) -> str | None:
        return None if value is None else check_url_port(value)
