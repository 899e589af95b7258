"""Samples telemetry once per interval into ``telemetry.csv`` (time, source, metric, value).

Sources: ``system`` (psutil), ``gpuN`` (NVML), and each replica (its process's CPU and
memory, and queue figures scraped from its Prometheus ``/metrics``).
"""

from __future__ import annotations

import contextlib
import csv
import http.client
import logging
import threading
import time
from pathlib import Path

import psutil

from harness.platforms.base import Platform
from harness.telemetry.nvml import Nvml

log = logging.getLogger(__name__)

#: Replica metrics scraped from /metrics, and the name they get in telemetry.
SCRAPED = {
    "vllm:num_requests_waiting": "queue_waiting",
    "vllm:num_requests_running": "running",
}


def scrape_metrics(port: int, timeout_s: float = 0.5) -> dict[str, float]:
    """Read the scraped gauges from a replica's Prometheus text on 127.0.0.1:port."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout_s)
    try:
        conn.request("GET", "/metrics")
        body = conn.getresponse().read().decode("utf-8", "replace")
    finally:
        conn.close()
    out: dict[str, float] = {}
    for line in body.splitlines():
        if not line or line[0] == "#":
            continue
        name, _, rest = line.partition(" ")
        base = name.split("{", 1)[0]
        if base in SCRAPED:
            try:
                out[SCRAPED[base]] = out.get(SCRAPED[base], 0.0) + float(rest.split()[0])
            except (ValueError, IndexError):
                continue
    return out


class TelemetrySampler:
    """A daemon thread writing one batch of rows per interval, flushed as it goes."""

    def __init__(self, platform: Platform, path: Path, interval_s: float = 1.0) -> None:
        self._platform = platform
        self._path = path
        self._interval = interval_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._procs: dict[int, psutil.Process] = {}
        self.samples = 0

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="telemetry", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _proc(self, pid: int) -> psutil.Process | None:
        proc = self._procs.get(pid)
        if proc is None:
            try:
                proc = psutil.Process(pid)
                proc.cpu_percent(None)  # prime the counter
            except psutil.Error:
                return None
            self._procs[pid] = proc
        return proc

    def _rows(self) -> list[tuple[str, str, float]]:
        vm = psutil.virtual_memory()
        rows: list[tuple[str, str, float]] = [
            ("system", "cpu_pct", psutil.cpu_percent(None)),
            ("system", "memory_used_mib", (vm.total - vm.available) / 2**20),
        ]
        rows += self._nvml.sample()
        ready = 0
        for rep in self._platform.replicas():
            ready += rep.state == "ready"
            if rep.pid is None:
                continue
            proc = self._proc(rep.pid)
            if proc is not None:
                try:
                    rows.append((rep.id, "cpu_pct", proc.cpu_percent(None)))
                    rows.append((rep.id, "rss_mib", proc.memory_info().rss / 2**20))
                except psutil.Error:
                    pass
            if rep.state == "ready" and rep.port:
                with contextlib.suppress(OSError, http.client.HTTPException):
                    rows += [(rep.id, k, v) for k, v in scrape_metrics(rep.port).items()]
        rows.append(("platform", "replicas_ready", float(ready)))
        return rows

    def _loop(self) -> None:
        self._nvml = Nvml()
        psutil.cpu_percent(None)
        with open(self._path, "a", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            if fh.tell() == 0:
                writer.writerow(["time", "source", "metric", "value"])
            next_at = time.monotonic()
            while not self._stop.is_set():
                now = time.time()
                try:
                    rows = self._rows()
                except Exception:
                    log.warning("telemetry sample failed", exc_info=True)
                    rows = []
                writer.writerows((f"{now:.3f}", s, m, f"{v:.4g}") for s, m, v in rows)
                fh.flush()
                self.samples += 1
                next_at += self._interval
                self._stop.wait(max(0.0, next_at - time.monotonic()))
        self._nvml.close()
