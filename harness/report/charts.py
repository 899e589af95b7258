"""The report's charts, built from a run folder's files: one renderer for ``report.html``
and the live page of ``gpuchaos run --serve`` (:mod:`harness.live`).

:func:`build_charts` turns a :class:`RunData` into the report's :class:`Chart` list
(latency and TTFT percentiles, error rate, throughput and goodput, replicas Ready per node,
GPU utilization and memory per GPU or CPU and RSS per replica, queue depth and KV-cache
usage, the Locust processes' CPU), with the fault windows and the load generator's
saturated seconds shaded. :func:`read_current` reads a folder whose run is still going
(partial files, a torn last line, no scorecard yet) into the same :class:`RunData`, and
:func:`chart_svgs` renders the charts to SVG strings: so the live page and the final
report can never draw different plots.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd

from harness.config import HarnessSpec
from harness.report.data import (
    RunData,
    instrument_windows,
    per_second_figures,
    telemetry_series,
)
from harness.report.svg import Chart, Series, Window, render
from harness.rundir import RunDir
from harness.scoring import fault_windows, read_telemetry
from harness.scoring.instrument import CPU_SATURATED_PERCENT, LOCUST_SOURCE
from harness.scoring.rundir import load_run_spec, read_run_logs

#: A filter over timeline events: the event to keep (maybe a changed copy), or None to hide it.
EventFilter = Callable[[dict[str, Any]], dict[str, Any] | None]

#: The readers' loggers that speak up about a torn last line or a missing file: right for
#: the scorer, noise when a live page reads a growing folder every second.
_READER_LOGGERS = ("harness.scoring.lenient", "harness.scoring.slis")
_quiet = threading.local()


class _QuietWhileLive(logging.Filter):
    """Drops the readers' records on a thread inside :func:`_quietly` (other threads, the
    scorer's included, keep theirs)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not getattr(_quiet, "on", False)


_QUIET = _QuietWhileLive()
for _name in _READER_LOGGERS:
    logging.getLogger(_name).addFilter(_QUIET)


@contextmanager
def _quietly() -> Iterator[None]:
    _quiet.on = True
    try:
        yield
    finally:
        _quiet.on = False


def _cols(df: pd.DataFrame, col: str, scale: float = 1.0) -> list[float]:
    return [float(v) * scale for v in df[col].tolist()]


def build_charts(data: RunData) -> list[Chart]:
    """The report's charts of ``data``, in the order the pages show them."""
    sec = per_second_figures(data)
    x = [float(s) + 0.5 for s in sec["second"].tolist()]
    x_max = max(data.duration_s, float(len(sec)))
    faults = fault_windows(data.timeline, t0=data.t0, open_until=data.load_end, labels=True)
    windows = [Window(s, e, label) for s, e, label in sorted(faults)]
    windows += [
        Window(s, e, "load generator saturated", kind="instrument")
        for s, e in instrument_windows(data.scorecard)
    ]
    slos = data.slos
    charts: list[Chart] = []

    def add(chart_id: str, title: str, y_label: str, series: list[Series], **kw: Any) -> None:
        charts.append(Chart(chart_id, title, y_label, series, x_max, windows, **kw))

    lat_refs = [
        (f"{name} objective", float(v))
        for name, v in (
            ("p50", getattr(slos, "p50_latency_ms", None)),
            ("p99", getattr(slos, "p99_latency_ms", None)),
        )
        if v is not None
    ]
    add(
        "latency",
        "Latency percentiles",
        "ms (log)",
        [
            Series("p50", x, _cols(sec, "p50_ms")),
            Series("p95", x, _cols(sec, "p95_ms")),
            Series("p99", x, _cols(sec, "p99_ms")),
        ],
        refs=lat_refs,
        log_y=True,
    )
    ttft_obj = getattr(slos, "ttft_p95_ms", None)
    add(
        "ttft",
        "Time to first token",
        "ms (log)",
        [Series("p50", x, _cols(sec, "ttft_p50_ms")), Series("p95", x, _cols(sec, "ttft_p95_ms"))],
        refs=[("p95 objective", float(ttft_obj))] if ttft_obj is not None else [],
        log_y=True,
    )
    err_obj = getattr(slos, "error_rate", None)
    add(
        "errors",
        "Error rate",
        "failed / completed",
        [Series("error rate", x, _cols(sec, "error_rate"), color="#cf222e")],
        refs=[("objective", float(err_obj))] if err_obj is not None else [],
        percent=True,
    )
    tput_obj = getattr(slos, "throughput_rps", None)
    add(
        "throughput",
        "Throughput and goodput",
        "requests / s",
        [
            Series("throughput (successes)", x, _cols(sec, "throughput_rps")),
            Series("goodput (within objectives)", x, _cols(sec, "goodput_rps")),
            Series("completed", x, _cols(sec, "requests"), dashed=True, color="#8c959f"),
        ],
        refs=[("throughput objective", float(tput_obj))] if tput_obj is not None else [],
    )
    tel = data.telemetry
    sources = sorted(set(tel["source"].dropna().tolist())) if not tel.empty else []
    metrics_of: dict[str, set[str]] = {}
    for s, m in zip(tel["source"].tolist(), tel["metric"].tolist(), strict=False):
        metrics_of.setdefault(str(s), set()).add(str(m))

    def series_of(
        metric: str, pick: list[str], scale: float = 1.0, step: bool = False
    ) -> list[Series]:
        out = []
        for src in pick:
            xs, ys = telemetry_series(data, src, metric)
            if xs:
                out.append(Series(src, xs, [v * scale for v in ys], step=step))
        return out

    replicas = sorted(s for s in sources if "rss_mib" in metrics_of.get(s, set()))
    nodes = sorted(
        s
        for s in sources
        if "replicas_ready" in metrics_of.get(s, set()) and s not in ("platform",)
    )
    ready = series_of("replicas_ready", nodes, step=True)
    total_x, total_y = telemetry_series(data, "platform", "replicas_ready")
    if total_x:
        ready.append(Series("total", total_x, total_y, step=True, dashed=True, color="#000000"))
    add("replicas", "Replicas Ready", "replicas", ready)
    gpus = sorted(s for s in sources if s.startswith("gpu") and "utilization_pct" in metrics_of[s])
    if gpus:
        add(
            "gpu_util",
            "GPU utilization",
            "%",
            series_of("utilization_pct", gpus),
            y_max=100.0,
        )
        mem = series_of("memory_used_mib", gpus, scale=1 / 1024)
        for g in gpus:
            owners = sorted(s for s in sources if f"{g}_memory_mib" in metrics_of.get(s, set()))
            for o in owners:
                xs, ys = telemetry_series(data, o, f"{g}_memory_mib")
                mem.append(Series(f"{o} on {g}", xs, [v / 1024 for v in ys], dashed=True))
        totals = [telemetry_series(data, g, "memory_total_mib")[1] for g in gpus]
        cap = max((max(t) for t in totals if t), default=None)
        add(
            "gpu_memory",
            "GPU memory used",
            "GiB",
            mem,
            refs=[("GPU memory", cap / 1024)] if cap else [],
        )
    else:
        cpu = series_of("cpu_pct", ["system", *replicas])
        add("cpu", "CPU (no GPU: psutil)", "% of one core (system: of all)", cpu)
        add("rss", "Replica memory (RSS)", "MiB", series_of("rss_mib", replicas))
    queue = series_of("queue_waiting", replicas)
    for s in series_of("running", replicas):
        s.name += " running"
        s.dashed = True
        queue.append(s)
    add("queue", "Queue depth (waiting; dashed: running)", "requests", queue)
    kv = series_of("kv_cache_usage", replicas)
    if kv:
        add("kv_cache", "KV-cache usage", "share of slots", kv, y_max=1.0, percent=True)
    locusts = sorted(s for s in sources if LOCUST_SOURCE.match(s))
    if locusts:
        limit = [("saturated above", CPU_SATURATED_PERCENT)]
        cpu = series_of("cpu_percent", locusts)
        add("locust_cpu", "Load generator CPU (Locust)", "% of one core", cpu, refs=limit)
    return charts


def _first_time(timeline: list[dict[str, Any]], kind: str) -> float | None:
    for e in timeline:
        if e.get("kind") == kind and isinstance(e.get("time"), int | float):
            return float(e["time"])
    return None


_SPECS: dict[Path, tuple[tuple[int, int], HarnessSpec | None]] = {}


def _spec(run_dir: Path) -> HarnessSpec | None:
    """The run's harness spec (None while unwritten or unreadable: plots without
    objectives), parsed again only when ``experiment.yaml`` changed: a live page reads the
    folder every second and the experiment does not change during a run."""
    path = RunDir(run_dir).experiment
    try:
        st = path.stat()
    except OSError:
        return None
    key = (st.st_mtime_ns, st.st_size)
    cached = _SPECS.get(path)
    if cached is not None and cached[0] == key:
        return cached[1]
    try:
        _, spec = load_run_spec(run_dir)
    except Exception:
        spec = None
    _SPECS[path] = (key, spec)
    return spec


def read_current(run_dir: str | Path, event_filter: EventFilter | None = None) -> RunData:
    """A run folder as it is now, for a run that may still be going: the request records,
    timeline and telemetry written so far (a torn last line is stepped over by the scorer's
    readers), no scorecard. ``t0`` is the first ``load_start`` (the scorer's), else the
    first request, else ``run_start``; the end is the latest record of any kind, so the
    plots grow as the run goes. ``event_filter`` hides or changes timeline events before
    anything is drawn from them (the fault windows too)."""
    run_dir = Path(run_dir)
    paths = RunDir(run_dir)
    spec = _spec(run_dir)
    with _quietly():  # a torn last line is normal while the run writes
        requests, timeline = read_run_logs(run_dir)
        telemetry = read_telemetry(paths.telemetry, missing_ok=True)
    if event_filter is not None:
        timeline = [kept for e in timeline if (kept := event_filter(dict(e))) is not None]
    t0 = _first_time(timeline, "load_start")
    if t0 is None and len(requests):
        t0 = float(requests["start"].min())
    if t0 is None:
        t0 = _first_time(timeline, "run_start")
    if t0 is None:
        t0 = time.time()
    ends = [t0]
    if len(requests):
        ends.append(float(requests["end"].max()))
    if not telemetry.empty:
        ends.append(float(telemetry["time"].max()))
    ends += [float(e["time"]) for e in timeline if isinstance(e.get("time"), int | float)]
    text = paths.experiment.read_text(encoding="utf-8") if paths.experiment.is_file() else ""
    return RunData(
        run_dir=run_dir,
        scorecard={},
        experiment_text=text,
        spec=spec,
        requests=requests,
        timeline=timeline,
        telemetry=telemetry,
        t0=t0,
        load_end=max(ends),
    )


def chart_svgs(data: RunData) -> list[dict[str, str]]:
    """Each chart's id, title and SVG: what the live page draws (report.html draws the same
    :func:`build_charts` with :func:`harness.report.svg.render`)."""
    return [{"id": c.id, "title": c.title, "svg": render(c)} for c in build_charts(data)]
