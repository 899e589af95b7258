"""Everything a report needs, read from a run folder (nothing from the live run).

:func:`load_run` reads the scorecard (scoring the folder when ``scorecard.json`` is
missing), the resolved experiment, the request records, the timeline and the telemetry.
:func:`per_second_figures` gives the per-second series the plots show: the scorer's own
(:func:`harness.scoring.per_second`), so a plot never disagrees with the verdict; likewise
:func:`instrument_windows` shades the seconds the scorecard found the load generator
saturated.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from harness.config import HarnessSpec, SLOSpec
from harness.errors import ReportError
from harness.report.tenancy import is_tenancy
from harness.rundir import EXPERIMENT_FILE, SCORECARD_FILE, RunDir
from harness.scoring import per_second, read_telemetry
from harness.scoring.intake import read_events
from harness.scoring.rundir import load_run_spec, no_requests, read_run_logs, score_run_dir

log = logging.getLogger(__name__)


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


def load_run(run_dir: str | Path, scorecard: dict[str, Any] | None = None) -> RunData:
    """Read a run folder; raises :class:`ReportError` when it is not one."""
    run_dir = Path(run_dir)
    paths = RunDir(run_dir)
    if not paths.experiment.is_file():
        raise ReportError(f"{run_dir}: not a run folder (no {EXPERIMENT_FILE})")
    if scorecard is None:
        card_path = paths.scorecard
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
    if is_tenancy(scorecard) and not paths.requests.is_file():
        # a tenancy run's records are its tenants' (tenants/<name>/requests.csv)
        requests, timeline = no_requests(), read_events(paths.timeline, None) or []
    else:
        requests, timeline = read_run_logs(run_dir)
    telemetry = read_telemetry(paths.telemetry, missing_ok=True)
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
        experiment_text=paths.experiment.read_text(encoding="utf-8"),
        spec=spec,
        requests=requests,
        timeline=timeline,
        telemetry=telemetry,
        t0=float(t0),
        load_end=float(load_end),
    )


def per_second_figures(data: RunData) -> pd.DataFrame:
    """The scorer's per-second frame of the run (:func:`harness.scoring.per_second`: counts,
    error rate, effective latency and TTFT percentiles, throughput, goodput by the run's
    SLOs, TPOT included), over the load and at least one second, as the plots draw it."""
    until = max(data.load_end, data.t0 + 1.0)
    return per_second(data.requests, data.t0, data.timeout_ms, until=until, slos=data.slos)


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


def instrument_windows(scorecard: dict[str, Any]) -> list[tuple[float, float]]:
    """(start, end) in seconds since ``t0`` of each run of seconds the scorecard's
    ``instrument`` section found the load generator saturated (none when it has none)."""
    inst = scorecard.get("instrument")
    windows = inst.get("windows") if isinstance(inst, dict) else None
    out: list[tuple[float, float]] = []
    for w in windows if isinstance(windows, list) else []:
        if isinstance(w, dict) and isinstance(w.get("start_s"), int | float):
            out.append((float(w["start_s"]), float(w.get("end_s") or w["start_s"] + 1)))
    return out
