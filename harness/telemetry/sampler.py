"""Samples telemetry once per interval into ``telemetry.csv`` (time, source, metric, value).

Sources and metrics (one row each per sample; see docs/telemetry-and-reports.md, "Telemetry"):

- ``system``: ``cpu_pct``, ``memory_used_mib`` (psutil).
- ``gpuN``: ``utilization_pct``, ``memory_used_mib``, ``memory_total_mib``, ``power_w``,
  ``temperature_c``, ``sm_clock_mhz``, ``throttle_reasons`` (bit mask); critical NVML events
  as they happen: ``xid``, ``ecc_single_bit``, ``ecc_double_bit``, ``power_source_change``
  (the value is the event's data, the XID number for ``xid``).
- with ``telemetry.prometheus_url`` (a cluster): the ``gpuN`` rows come from the DCGM
  exporter's series through Prometheus instead of NVML (:mod:`harness.telemetry.dcgm`).
- each replica id: ``cpu_pct``, ``rss_mib`` (psutil), ``gpuN_memory_mib`` (its process's GPU
  memory, NVML), and from its Prometheus ``/metrics``: ``queue_waiting``, ``running``,
  ``kv_cache_usage`` (0-1), ``oom_total``. A pod's ``/metrics`` is read through the API
  server's pod proxy (the platform's ``metrics_text``). A GPU process that is no replica
  is ``pid-<pid>``.
- each node name and ``platform``: ``replicas_ready``.
- ``harness``: ``sample_ms``, the wall time one sample took, and ``sample_cpu_ms``, the CPU
  time the sampling thread spent on it (the sampler's own overhead; scrapes run in a small
  thread pool and are not counted in the CPU figure).
- each local Locust process (``locust``, ``locust-worker-N``; named by the load runner's
  ``load_pids``): ``cpu_percent``, percent of one core since its previous sample (the
  instrument's saturation check, :mod:`harness.scoring.instrument`). A process's first
  sample only primes its counter and writes no row.
"""

from __future__ import annotations

import contextlib
import csv
import http.client
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Protocol

import psutil

from harness.telemetry.dcgm import DcgmReader
from harness.telemetry.nvml import GpuEvent, Nvml
from harness.telemetry.scrape import metrics_text

log = logging.getLogger(__name__)


class ReplicaView(Protocol):
    """What the sampler reads of a replica (a platform's ``ReplicaInfo``)."""

    @property
    def id(self) -> str: ...

    @property
    def node(self) -> str: ...

    @property
    def pid(self) -> int | None: ...

    @property
    def port(self) -> int | None: ...

    @property
    def state(self) -> str: ...


class Observed(Protocol):
    """What the sampler reads of a platform: telemetry sits below nothing it watches, so
    it names the two calls it makes instead of importing the platforms."""

    def nodes(self) -> list[str]: ...

    def replicas(self) -> Sequence[ReplicaView]: ...


#: The load generator's local processes, ``{telemetry source: pid}`` (a load runner's
#: ``load_pids``): telemetry takes a callable, so it imports no load runner.
LoadPids = Callable[[], Mapping[str, int]]


#: Replica metrics scraped from /metrics, and the name they get in telemetry.
SCRAPED = {
    "vllm:num_requests_waiting": "queue_waiting",
    "vllm:num_requests_running": "running",
    "vllm:gpu_cache_usage_perc": "kv_cache_usage",
    "gpuchaos_oom_total": "oom_total",
}


def parse_metrics(body: str) -> dict[str, float]:
    """The :data:`SCRAPED` series of a Prometheus text body, summed over their labels."""
    out: dict[str, float] = {}
    for line in body.splitlines():
        if not line or line[0] == "#":
            continue
        name, _, rest = line.partition(" ")
        if "{" in name:
            # labels may hold spaces: the value follows the closing brace
            name, _, after = line.partition("{")
            rest = after.rpartition("}")[2]
        key = SCRAPED.get(name.strip())
        if key is None:
            continue
        try:
            out[key] = out.get(key, 0.0) + float(rest.split()[0])
        except (ValueError, IndexError):
            continue
    return out


def scrape_metrics(port: int, timeout_s: float = 0.5) -> dict[str, float]:
    """Read the scraped gauges from a replica's Prometheus text on 127.0.0.1:port."""
    return parse_metrics(metrics_text(port, timeout_s))


#: A platform's own reader of a replica's /metrics text (the kubernetes platform's goes
#: through the API server's pod proxy); raises OSError or ValueError when it cannot.
MetricsText = Callable[[str, float], str]


def _scrape(
    rep: ReplicaView, timeout_s: float, reader: MetricsText | None = None
) -> list[tuple[str, str, float]]:
    with contextlib.suppress(OSError, http.client.HTTPException, ValueError):
        if rep.port is not None:
            return [(rep.id, k, v) for k, v in scrape_metrics(rep.port, timeout_s).items()]
        if reader is not None:
            return [(rep.id, k, v) for k, v in parse_metrics(reader(rep.id, timeout_s)).items()]
    return []


class TelemetrySampler:
    """A daemon thread writing one batch of rows per interval, flushed as it goes.

    ``latest`` holds the last sample as ``{(source, metric): value}`` and ``gpu_events``
    every critical GPU event so far (both read by the live progress view).
    """

    def __init__(
        self,
        platform: Observed,
        path: Path,
        interval_s: float = 1.0,
        nvml: Nvml | None = None,
        dcgm: DcgmReader | None = None,
    ) -> None:
        self._platform = platform
        self._path = path
        self._interval = interval_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._procs: dict[int, psutil.Process] = {}
        self._load_pids: LoadPids | None = None
        self._load_procs: dict[int, psutil.Process] = {}
        self._nvml_given = nvml
        self._nvml: Nvml | None = None
        self._dcgm = dcgm
        self._pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="scrape")
        self.samples = 0
        self.sample_s_total = 0.0
        self.latest: dict[tuple[str, str], float] = {}
        self.gpu_events: list[GpuEvent] = []

    def watch_load(self, pids: LoadPids) -> None:
        """Sample the CPU of the load generator's processes, named by ``pids()`` (called at
        every sample: processes that start later or exit are picked up and dropped)."""
        self._load_pids = pids

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="telemetry", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._pool.shutdown(wait=False, cancel_futures=True)

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

    def _rows(self, now: float) -> list[tuple[str, str, float]]:
        vm = psutil.virtual_memory()
        rows: list[tuple[str, str, float]] = [
            ("system", "cpu_pct", psutil.cpu_percent(None)),
            ("system", "memory_used_mib", (vm.total - vm.available) / 2**20),
        ]
        replicas = self._platform.replicas()
        nvml = self._nvml
        if self._dcgm is not None:  # the GPUs are the cluster's: DCGM's, not this host's
            rows += self._dcgm.rows()
        elif nvml is not None and nvml.available:
            rows += nvml.sample({r.pid: r.id for r in replicas if r.pid is not None})
            for ev in nvml.poll_events(now):
                self.gpu_events.append(ev)
                rows.append((f"gpu{ev.gpu}", ev.kind, float(ev.data)))
        ready_per_node: dict[str, int] = {n: 0 for n in self._platform.nodes()}
        for rep in replicas:
            ready_per_node[rep.node] = ready_per_node.get(rep.node, 0) + (rep.state == "ready")
            if rep.pid is None:
                continue
            proc = self._proc(rep.pid)
            if proc is not None:
                try:
                    rows.append((rep.id, "cpu_pct", proc.cpu_percent(None)))
                    rows.append((rep.id, "rss_mib", proc.memory_info().rss / 2**20))
                except psutil.Error:
                    self._procs.pop(rep.pid, None)
        live = {r.pid for r in replicas}
        for pid in [p for p in self._procs if p not in live]:
            del self._procs[pid]
        scrape_timeout = min(0.5, max(0.05, self._interval * 0.5))
        reader: MetricsText | None = getattr(self._platform, "metrics_text", None)
        if reader is not None:  # through the API server: allow it a little longer
            scrape_timeout = min(1.0, max(0.2, self._interval * 0.8))
        ready = [r for r in replicas if r.state == "ready" and (r.port or reader is not None)]
        for scraped in self._pool.map(lambda r: _scrape(r, scrape_timeout, reader), ready):
            rows += scraped
        rows += [(node, "replicas_ready", float(n)) for node, n in ready_per_node.items()]
        rows.append(("platform", "replicas_ready", float(sum(ready_per_node.values()))))
        rows += self._load_rows()
        return rows

    def _load_rows(self) -> list[tuple[str, str, float]]:
        """``cpu_percent`` of each load generator process; a new one is primed, not read."""
        if self._load_pids is None:
            return []
        try:
            pids = dict(self._load_pids())
        except Exception:
            log.debug("reading the load generator's pids failed", exc_info=True)
            return []
        rows: list[tuple[str, str, float]] = []
        for source, pid in pids.items():
            proc = self._load_procs.get(pid)
            try:
                if proc is None:
                    proc = psutil.Process(pid)
                    proc.cpu_percent(None)  # prime: the first reading covers no interval
                    self._load_procs[pid] = proc
                    continue
                rows.append((source, "cpu_percent", proc.cpu_percent(None)))
            except psutil.Error:
                self._load_procs.pop(pid, None)
        live = set(pids.values())
        for pid in [p for p in self._load_procs if p not in live]:
            del self._load_procs[pid]
        return rows

    def _loop(self) -> None:
        self._nvml = self._nvml_given or Nvml()
        psutil.cpu_percent(None)
        with open(self._path, "a", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            if fh.tell() == 0:
                writer.writerow(["time", "source", "metric", "value"])
            next_at = time.monotonic()
            while not self._stop.is_set():
                now = time.time()
                began, began_cpu = time.perf_counter(), time.thread_time()
                try:
                    rows = self._rows(now)
                except Exception:
                    log.warning("telemetry sample failed", exc_info=True)
                    rows = []
                took = time.perf_counter() - began
                rows.append(("harness", "sample_ms", took * 1000.0))
                rows.append(("harness", "sample_cpu_ms", (time.thread_time() - began_cpu) * 1e3))
                writer.writerows((f"{now:.3f}", s, m, f"{v:.6g}") for s, m, v in rows)
                fh.flush()
                self.latest = {(s, m): v for s, m, v in rows}
                self.samples += 1
                self.sample_s_total += took
                next_at += self._interval
                if next_at < time.monotonic():  # fell behind: do not burst to catch up
                    next_at = time.monotonic() + self._interval
                self._stop.wait(max(0.0, next_at - time.monotonic()))
        self._nvml.close()
