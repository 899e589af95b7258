"""GPU telemetry from the NVIDIA DCGM exporter, read through the Prometheus HTTP API.

Why: on a cluster the GPUs are on other machines, and what a GPU fleet already runs is
``dcgm-exporter`` (the GPU Operator installs it) scraped by Prometheus. With
``telemetry.prometheus_url`` set, the sampler asks that Prometheus once per interval for
the DCGM series (one instant query, ``GET /api/v1/query``) and writes them as the same
``gpuN`` rows of ``telemetry.csv`` that NVML gives locally, so utilization, idle GPU-seconds
and XIDs are scored the same way on both platforms.

Mapping (:data:`SERIES`): ``DCGM_FI_DEV_GPU_UTIL`` -> ``utilization_pct`` (else
``DCGM_FI_PROF_GR_ENGINE_ACTIVE`` x 100), ``DCGM_FI_DEV_FB_USED`` -> ``memory_used_mib``,
used + ``DCGM_FI_DEV_FB_FREE`` (+ ``DCGM_FI_DEV_FB_RESERVED``) -> ``memory_total_mib``,
``DCGM_FI_DEV_POWER_USAGE`` -> ``power_w``, ``DCGM_FI_DEV_GPU_TEMP`` -> ``temperature_c``,
``DCGM_FI_DEV_SM_CLOCK`` -> ``sm_clock_mhz``, ``DCGM_FI_DEV_CLOCK_THROTTLE_REASONS`` (or its
newer name ``DCGM_FI_DEV_CLOCKS_EVENT_REASONS``) -> ``throttle_reasons``, and
``DCGM_FI_DEV_XID_ERRORS`` -> an ``xid`` row (value: the XID) each time it changes to a new
non-zero value. DCGM keeps the last XID in that field, so the first reading is a baseline:
an XID from before the run is logged, not counted.

Which ``gpuN``: a GPU is known by its host (``Hostname``, else ``node``, else ``instance``),
its ``gpu`` label and its ``UUID``. It gets ``gpu<gpu label>`` when that number is free,
else the next free number, in the order first seen (sorted within a reading), and keeps it
for the run: on one node the numbers are the node's own GPU indexes, as NVML's are.
"""

from __future__ import annotations

import json
import logging
import math
import urllib.parse
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass, field

from harness.config import TelemetrySpec

log = logging.getLogger(__name__)

#: DCGM exporter series -> the telemetry metric they become (scale applied to the value).
SERIES: dict[str, tuple[str, float]] = {
    "DCGM_FI_DEV_GPU_UTIL": ("utilization_pct", 1.0),
    "DCGM_FI_PROF_GR_ENGINE_ACTIVE": ("utilization_pct", 100.0),  # a 0-1 ratio
    "DCGM_FI_DEV_FB_USED": ("memory_used_mib", 1.0),
    "DCGM_FI_DEV_POWER_USAGE": ("power_w", 1.0),
    "DCGM_FI_DEV_GPU_TEMP": ("temperature_c", 1.0),
    "DCGM_FI_DEV_SM_CLOCK": ("sm_clock_mhz", 1.0),
    "DCGM_FI_DEV_CLOCK_THROTTLE_REASONS": ("throttle_reasons", 1.0),
    "DCGM_FI_DEV_CLOCKS_EVENT_REASONS": ("throttle_reasons", 1.0),
}
FB_FREE = "DCGM_FI_DEV_FB_FREE"
FB_RESERVED = "DCGM_FI_DEV_FB_RESERVED"
XID = "DCGM_FI_DEV_XID_ERRORS"
#: Every series asked for, in one query.
ASKED: tuple[str, ...] = (*SERIES, FB_FREE, FB_RESERVED, XID)
#: Series that only stand in when the first-choice series of their metric is absent.
_FALLBACK = {
    "DCGM_FI_PROF_GR_ENGINE_ACTIVE": "DCGM_FI_DEV_GPU_UTIL",
    "DCGM_FI_DEV_CLOCKS_EVENT_REASONS": "DCGM_FI_DEV_CLOCK_THROTTLE_REASONS",
}

#: One sample of a series: its labels (with ``__name__``) and its value.
Sample = tuple[dict[str, str], float]
Row = tuple[str, str, float]


def query(selector: str = "") -> str:
    """The PromQL of one reading: every :data:`ASKED` series, with ``selector`` (label
    matchers without braces) added."""
    names = "|".join(ASKED)
    extra = f",{selector}" if selector.strip() else ""
    return f'{{__name__=~"{names}"{extra}}}'


def gpu_key(labels: dict[str, str]) -> tuple[str, str, str]:
    """(host, gpu index, UUID) of a DCGM series."""
    host = labels.get("Hostname") or labels.get("node") or labels.get("instance") or ""
    return host, labels.get("gpu", ""), labels.get("UUID", "")


@dataclass
class GpuNames:
    """The ``gpuN`` of each GPU, fixed for the run (see the module)."""

    names: dict[tuple[str, str, str], str] = field(default_factory=dict)

    def name(self, key: tuple[str, str, str]) -> str:
        found = self.names.get(key)
        if found is not None:
            return found
        taken = {int(n[3:]) for n in self.names.values()}
        wanted = int(key[1]) if key[1].isdigit() else -1
        number = wanted if wanted >= 0 and wanted not in taken else max(taken, default=-1) + 1
        while number in taken:
            number += 1
        self.names[key] = f"gpu{number}"
        host, gpu, uuid = key
        log.info("DCGM GPU %s (host %s, gpu %s) is gpu%d", uuid, host, gpu, number)
        return self.names[key]


@dataclass
class XidTracker:
    """Turns the last-XID field into events: a row each time it changes to a new non-zero
    value; the first reading of a GPU is a baseline."""

    last: dict[str, float] = field(default_factory=dict)

    def see(self, source: str, value: float) -> Row | None:
        before = self.last.get(source)
        self.last[source] = value
        if before is None:
            if value:
                log.warning("%s reports XID %g from before the run (not counted)", source, value)
            return None
        if value and value != before:
            return (source, "xid", value)
        return None


def to_rows(samples: Iterable[Sample], names: GpuNames, xids: XidTracker) -> list[Row]:
    """Telemetry rows of one reading of the DCGM series (contract C2)."""
    per_gpu: dict[tuple[str, str, str], dict[str, float]] = {}
    for labels, value in samples:
        if not math.isfinite(value):
            continue
        series = per_gpu.setdefault(gpu_key(labels), {})
        series[labels.get("__name__", "")] = value
    rows: list[Row] = []
    for key in sorted(per_gpu):
        series, source = per_gpu[key], names.name(key)
        for dcgm, (metric, scale) in SERIES.items():
            if dcgm not in series or _FALLBACK.get(dcgm) in series:
                continue
            rows.append((source, metric, series[dcgm] * scale))
        if "DCGM_FI_DEV_FB_USED" in series and FB_FREE in series:
            total = series["DCGM_FI_DEV_FB_USED"] + series[FB_FREE] + series.get(FB_RESERVED, 0.0)
            rows.append((source, "memory_total_mib", total))
        if XID in series:
            event = xids.see(source, series[XID])
            if event is not None:
                rows.append(event)
    return rows


def parse_vector(body: bytes) -> list[Sample]:
    """The samples of an instant-query answer (``resultType: vector``); ValueError when it
    is not one."""
    doc = json.loads(body)
    if doc.get("status") != "success" or doc.get("data", {}).get("resultType") != "vector":
        raise ValueError(f"not a successful vector answer: {str(doc)[:200]}")
    out: list[Sample] = []
    for item in doc["data"]["result"]:
        try:
            out.append((dict(item["metric"]), float(item["value"][1])))
        except (KeyError, IndexError, TypeError, ValueError):
            continue
    return out


class DcgmReader:
    """Reads the DCGM series from Prometheus, once per call of :meth:`rows`."""

    def __init__(self, prometheus_url: str, selector: str = "", timeout_s: float = 2.0) -> None:
        self.url = prometheus_url.rstrip("/")
        self.selector = selector
        self.timeout_s = timeout_s
        self.names = GpuNames()
        self.xids = XidTracker()
        self.errors = 0
        self._warned = False

    def fetch(self) -> list[Sample]:
        """One instant query; raises OSError or ValueError when Prometheus cannot answer."""
        params = urllib.parse.urlencode({"query": query(self.selector)})
        req = urllib.request.Request(f"{self.url}/api/v1/query?{params}")
        with urllib.request.urlopen(req, timeout=self.timeout_s) as resp:
            return parse_vector(resp.read())

    def rows(self) -> list[Row]:
        """The GPU rows of now; none (logged once) when Prometheus cannot answer."""
        try:
            samples = self.fetch()
        except (OSError, ValueError) as exc:
            self.errors += 1
            if not self._warned:
                log.warning("DCGM telemetry from %s failed: %s", self.url, exc)
                self._warned = True
            return []
        if not samples and not self._warned:
            log.warning("Prometheus at %s has no DCGM series (%s)", self.url, query(self.selector))
            self._warned = True
        return to_rows(samples, self.names, self.xids)


def dcgm_reader(spec: TelemetrySpec) -> DcgmReader | None:
    """The reader the ``telemetry`` block asks for (None without ``prometheus_url``)."""
    if spec.prometheus_url is None:
        return None
    return DcgmReader(spec.prometheus_url, spec.dcgm_selector, spec.prometheus_timeout_s)
