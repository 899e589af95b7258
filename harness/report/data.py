"""Everything a report needs, read from a run folder (nothing from the live run).

:func:`load_run` reads the scorecard (scoring the folder when ``scorecard.json`` is
missing), the resolved experiment, the request records, the timeline and the telemetry.
:func:`per_second_figures` turns the requests into the per-second series the plots show.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from harness.config import HarnessSpec, SLOSpec
from harness.errors import ReportError
from harness.rundir import EXPERIMENT_FILE, SCORECARD_FILE, TELEMETRY_FILE
from harness.scoring import (
    effective_latency_ms,
    effective_ttft_ms,
    failed_mask,
    fault_pairs,
)
from harness.scoring.rundir import load_run_spec, read_run_logs, score_run_dir

log = logging.getLogger(__name__)

TELEMETRY_COLUMNS = ("time", "source", "metric", "value")


@dataclass
class RunData:
    """A run folder, read."""

    run_dir: Path
    scorecard: dict[str, Any]
    experiment_text: str
    spec: HarnessSpec | None
    requests: pd.DataFrame
    timeline: list[dict[str, Any]]
    telemetry: pd.DataFrame
    t0: float
    load_end: float

    @property
    def slos(self) -> SLOSpec:
        return self.spec.slos if self.spec is not None else SLOSpec()

    @property
    def timeout_ms(self) -> float:
        return self.spec.load.request_timeout_s * 1000.0 if self.spec is not None else 30000.0

    @property
    def title(self) -> str:
        meta = self.scorecard.get("meta") or {}
        exp = meta.get("experiment") or {}
        return str(exp.get("title") or exp.get("name") or self.run_dir.name)

    @property
    def name(self) -> str:
        exp = (self.scorecard.get("meta") or {}).get("experiment") or {}
        return str(exp.get("name") or self.run_dir.name)

    @property
    def telemetry_interval_s(self) -> float:
        return self.spec.telemetry_interval_s if self.spec is not None else 1.0

    @property
    def duration_s(self) -> float:
        return max(0.0, self.load_end - self.t0)


def read_telemetry(path: Path) -> pd.DataFrame:
    """``telemetry.csv`` as a frame (time, source, metric, value); torn lines are skipped."""
    if not path.is_file():
        return pd.DataFrame({c: pd.Series(dtype="object") for c in TELEMETRY_COLUMNS})
    df = pd.read_csv(
        path,
        on_bad_lines="skip",
        dtype={"source": "string", "metric": "string"},
        engine="c",
    )
    missing = [c for c in TELEMETRY_COLUMNS if c not in df.columns]
    if missing:
        raise ReportError(f"{path}: not a telemetry file (missing {', '.join(missing)})")
    df["time"] = pd.to_numeric(df["time"], errors="coerce")
    df["value"] = pd.to_numeric(df["value"], errors="coerce")
    return df.dropna(subset=["time", "value"]).reset_index(drop=True)


def load_run(run_dir: str | Path, scorecard: dict[str, Any] | None = None) -> RunData:
    """Read a run folder; raises :class:`ReportError` when it is not one."""
    run_dir = Path(run_dir)
    if not (run_dir / EXPERIMENT_FILE).is_file():
        raise ReportError(f"{run_dir}: not a run folder (no {EXPERIMENT_FILE})")
    if scorecard is None:
        card_path = run_dir / SCORECARD_FILE
        if card_path.is_file():
            try:
                scorecard = json.loads(card_path.read_text(encoding="utf-8"))
            except json.JSONDecodeError as exc:
                raise ReportError(f"{card_path}: unreadable ({exc})") from None
        else:
            log.info("%s has no %s: scoring it first", run_dir, SCORECARD_FILE)
            scorecard = score_run_dir(run_dir)
    assert scorecard is not None
    try:
        _, spec = load_run_spec(run_dir)
    except Exception as exc:  # the report still shows what there is
        log.warning("%s: experiment unreadable (%s); reporting without SLOs", run_dir, exc)
        spec = None
    requests, timeline = read_run_logs(run_dir)
    telemetry = read_telemetry(run_dir / TELEMETRY_FILE)
    run = scorecard.get("run") or {}
    t0 = run.get("t0")
    if not t0:
        times = [float(e["time"]) for e in timeline if isinstance(e.get("time"), int | float)]
        t0 = min(times) if times else 0.0
    load_end = run.get("load_end") or t0
    if len(requests):
        load_end = max(float(load_end), float(requests["end"].max()))
    return RunData(
        run_dir=run_dir,
        scorecard=scorecard,
        experiment_text=(run_dir / EXPERIMENT_FILE).read_text(encoding="utf-8"),
        spec=spec,
        requests=requests,
        timeline=timeline,
        telemetry=telemetry,
        t0=float(t0),
        load_end=float(load_end),
    )


#: columns of :func:`per_second_figures`
FIGURE_COLUMNS = (
    "second",
    "requests",
    "errors",
    "error_rate",
    "p50_ms",
    "p95_ms",
    "p99_ms",
    "ttft_p50_ms",
    "ttft_p95_ms",
    "throughput_rps",
    "goodput_rps",
)


def goodput_limits(slos: SLOSpec) -> tuple[float | None, float | None]:
    """(latency, TTFT) limits a successful request must meet to count as goodput: the
    tightest tail objective that is set (p99, else p95, else p50 latency; p99, else p95 TTFT),
    the scorer's definition of a good request."""

    def first(*names: str) -> float | None:
        for name in names:
            value = getattr(slos, name, None)
            if value is not None:
                return float(value)
        return None

    return (
        first("p99_latency_ms", "p95_latency_ms", "p50_latency_ms"),
        first("ttft_p99_ms", "ttft_p95_ms"),
    )


def per_second_figures(data: RunData) -> pd.DataFrame:
    """One row per second since ``t0`` (requests bucketed by end time): counts, error rate,
    effective latency p50/p95/p99 and TTFT p50/p95 (failed requests count as at least the
    client timeout, as in the scorecard), throughput (successes/s) and goodput (successes/s
    that also met the latency and TTFT objectives that are set)."""
    df = data.requests
    size = max(1, math.ceil(data.duration_s))
    if len(df):
        size = max(size, int(np.floor(df["end"].max() - data.t0)) + 1)
    out = pd.DataFrame({"second": np.arange(size)})
    if not len(df):
        for c in FIGURE_COLUMNS[1:]:
            out[c] = 0.0 if c in ("requests", "errors", "throughput_rps", "goodput_rps") else np.nan
        return out
    failed = failed_mask(df)
    lat = effective_latency_ms(df, data.timeout_ms, failed=failed)
    ttft = effective_ttft_ms(df, data.timeout_ms, failed=failed)
    sec = np.clip(np.floor(df["end"].to_numpy(dtype="float64") - data.t0), 0, size - 1)
    good = ~failed.to_numpy(dtype=bool)
    met = good.copy()
    lat_limit, ttft_limit = goodput_limits(data.slos)
    if lat_limit is not None:
        met &= lat.to_numpy() <= lat_limit
    if ttft_limit is not None:
        met &= ~(ttft.to_numpy() > ttft_limit)  # no TTFT (non-streaming) does not count against
    frame = pd.DataFrame(
        {
            "second": sec.astype(np.int64),
            "lat": lat.to_numpy(),
            "ttft": ttft.to_numpy(),
            "failed": ~good,
            "ok": good,
            "met": met,
        }
    )
    g = frame.groupby("second")
    agg = pd.DataFrame(
        {
            "requests": g.size(),
            "errors": g["failed"].sum(),
            "p50_ms": g["lat"].quantile(0.5),
            "p95_ms": g["lat"].quantile(0.95),
            "p99_ms": g["lat"].quantile(0.99),
            "ttft_p50_ms": g["ttft"].quantile(0.5),
            "ttft_p95_ms": g["ttft"].quantile(0.95),
            "throughput_rps": g["ok"].sum(),
            "goodput_rps": g["met"].sum(),
        }
    )
    out = out.join(agg, on="second")
    for c in ("requests", "errors", "throughput_rps", "goodput_rps"):
        out[c] = out[c].fillna(0).astype("float64")
    out["error_rate"] = np.where(out["requests"] > 0, out["errors"] / out["requests"], np.nan)
    return out[list(FIGURE_COLUMNS)]


def telemetry_series(data: RunData, source: str, metric: str) -> tuple[list[float], list[float]]:
    """(seconds since ``t0``, values) of one telemetry series."""
    df = data.telemetry
    if df.empty:
        return [], []
    sel = df[(df["source"] == source) & (df["metric"] == metric)]
    xs = (sel["time"] - data.t0).tolist()
    ys = sel["value"].tolist()
    return with_gaps(xs, ys, gap_s=2.5 * data.telemetry_interval_s)


def with_gaps(xs: list[float], ys: list[float], gap_s: float) -> tuple[list[float], list[float]]:
    """Insert a NaN where consecutive samples are more than ``gap_s`` apart (a replica that
    was gone), so a plotted line breaks there instead of bridging the gap."""
    out_x: list[float] = []
    out_y: list[float] = []
    for i, (x, y) in enumerate(zip(xs, ys, strict=True)):
        if i and x - xs[i - 1] > gap_s:
            out_x.append((x + xs[i - 1]) / 2)
            out_y.append(math.nan)
        out_x.append(x)
        out_y.append(y)
    return out_x, out_y


def fault_windows(data: RunData) -> list[tuple[float, float, str]]:
    """(start, end, label) of every fault in seconds since ``t0``, paired as the scorecard
    pairs them; a fault that never ended lasts until the load ended."""
    out: list[tuple[float, float, str]] = []
    for start, end in fault_pairs(data.timeline):
        target = str(start.get("target", ""))
        details = start.get("details")
        fault = str((details if isinstance(details, dict) else {}).get("fault") or "fault")
        label = f"{fault} {target}"
        if end is None:
            out.append((float(start["time"]) - data.t0, data.duration_s, label + " (not reverted)"))
        else:
            out.append((float(start["time"]) - data.t0, float(end["time"]) - data.t0, label))
    return sorted(out)
