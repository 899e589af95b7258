"""The scorecard: SLO verdicts and recovery figures of one run, as a JSON-ready dict.

Definitions:

- ``t0``: time of the first ``load_start`` event, else the earliest request start.
  **Load end**: the first ``load_end`` event after ``t0``, else the last request end.
  Load duration = load end - ``t0``.
- **Fault window**: the first ``fault_start`` event and the first ``fault_end`` with the same
  target at or after it (null when the fault never ended).
- **SLOs**, one entry per set objective, in the order ``p50_latency_ms``, ``p99_latency_ms``,
  ``ttft_p95_ms`` (whole-run effective percentiles, ``<=``), ``error_rate`` (``<=``),
  ``throughput_rps`` (successes / load duration, ``>=``), ``recovery_s`` (``time_to_recover_s``
  ``<=``; fails when the service did not recover or no fault was injected). An SLO with nothing
  to measure fails with ``measured`` null and a ``note``.
- **Verdict**: ``aborted`` (exit 2) when the timeline has an ``abort`` event; else ``fail``
  (exit 1) when any SLO failed or no request was recorded; else ``pass`` (exit 0).
- The result holds no NaN or infinity (they become null) and no numpy types.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from harness.config import SLOSpec
from harness.scoring.recovery import analyze_recovery
from harness.scoring.slis import overall, per_second

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1

#: (SLO name, comparator, unit), in scorecard order.
SLO_ORDER: tuple[tuple[str, str, str], ...] = (
    ("p50_latency_ms", "<=", "ms"),
    ("p99_latency_ms", "<=", "ms"),
    ("ttft_p95_ms", "<=", "ms"),
    ("error_rate", "<=", "ratio"),
    ("throughput_rps", ">=", "rps"),
    ("recovery_s", "<=", "s"),
)

EXIT_CODES = {"pass": 0, "fail": 1, "aborted": 2}


def _events(timeline: Sequence[Mapping[str, Any]], kind: str) -> list[Mapping[str, Any]]:
    found = [e for e in timeline if e.get("kind") == kind and _is_number(e.get("time"))]
    return sorted(found, key=lambda e: float(e["time"]))


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def run_window(
    requests: pd.DataFrame, timeline: Sequence[Mapping[str, Any]]
) -> tuple[float, float]:
    """``(t0, load_end)`` of a run as unix seconds (see module); ``(0.0, 0.0)`` with no data."""
    starts = _events(timeline, "load_start")
    if starts:
        t0 = float(starts[0]["time"])
    elif len(requests):
        t0 = float(requests["start"].min())
    else:
        times = [float(e["time"]) for e in timeline if _is_number(e.get("time"))]
        t0 = min(times) if times else 0.0
    ends = [e for e in _events(timeline, "load_end") if float(e["time"]) >= t0]
    if ends:
        load_end = float(ends[0]["time"])
    elif len(requests):
        load_end = float(requests["end"].max())
    else:
        load_end = t0
    return t0, max(t0, load_end)


def fault_window(
    timeline: Sequence[Mapping[str, Any]],
) -> tuple[float | None, float | None, str | None]:
    """``(fault_start, fault_end, target)`` of the first fault; all None without one."""
    starts = _events(timeline, "fault_start")
    if not starts:
        return None, None, None
    first = starts[0]
    start = float(first["time"])
    target = str(first.get("target", ""))
    ends = [
        e
        for e in _events(timeline, "fault_end")
        if str(e.get("target", "")) == target and float(e["time"]) >= start
    ]
    return start, (float(ends[0]["time"]) if ends else None), target


def _clean(value: Any) -> Any:
    """JSON-safe copy: numpy scalars to Python, NaN/inf to None, floats rounded to 6 places."""
    if isinstance(value, Mapping):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, bool) or value is None or isinstance(value, int | str):
        return value
    if isinstance(value, float):
        return round(value, 6) if math.isfinite(value) else None
    return str(value)


def _measured(value: Any) -> float | None:
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _slo_entries(
    slos: SLOSpec, run: Mapping[str, Any], recovery: Mapping[str, Any]
) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = []
    no_requests = run["requests"] == 0
    for name, comparator, unit in SLO_ORDER:
        objective = getattr(slos, name)
        if objective is None:
            continue
        note: str | None = None
        measured: float | None
        if name == "recovery_s":
            measured = _measured(recovery.get("time_to_recover_s"))
        else:
            measured = _measured(run.get(name))
        if no_requests:
            measured, note = None, "no requests recorded"
        elif name == "recovery_s" and not recovery.get("fault"):
            note = "no fault in the timeline"
        elif name == "recovery_s" and recovery.get("note"):
            note = str(recovery["note"])
        elif name == "recovery_s" and not recovery.get("recovered"):
            note = f"did not recover ({recovery.get('hold_s')} s holding) before the data ended"
        elif measured is None:
            note = (
                "no TTFT samples (non-streaming requests)"
                if name == "ttft_p95_ms"
                else "nothing to measure"
            )
        if measured is None:
            passed = False
        elif comparator == "<=":
            passed = measured <= objective
        else:
            passed = measured >= objective
        entry: dict[str, Any] = {
            "name": name,
            "objective": float(objective),
            "comparator": comparator,
            "measured": measured,
            "unit": unit,
            "passed": bool(passed),
        }
        if note:
            entry["note"] = note
        entries.append(entry)
    return entries


def build_scorecard(
    requests: pd.DataFrame,
    timeline: Sequence[Mapping[str, Any]],
    slos: SLOSpec,
    *,
    timeout_ms: float,
    meta: Mapping[str, Any],
) -> dict[str, Any]:
    """Score one run (see module). Returns a JSON-serialisable dict.

    Keys: ``schema`` (1), ``meta`` (as passed), ``run`` (``t0``, ``load_end``, ``duration_s``
    and the figures of :func:`overall`), ``slos`` (list of ``name``, ``objective``,
    ``comparator``, ``measured``, ``unit``, ``passed`` and maybe ``note``), ``recovery``
    (:func:`analyze_recovery` plus ``fault_start``, ``fault_end`` as seconds from ``t0`` and
    ``fault_target``), ``verdict``, ``exit_code``, and ``abort_reason`` when aborted.
    """
    t0, load_end = run_window(requests, timeline)
    duration = load_end - t0
    run: dict[str, Any] = {"t0": t0, "load_end": load_end}
    run.update(overall(requests, timeout_ms, duration_s=duration))

    start, end, target = fault_window(timeline)
    if start is None:
        recovery: dict[str, Any] = {"fault": False}
    else:
        table = per_second(requests, t0, timeout_ms, until=load_end)
        recovery = analyze_recovery(
            table,
            t0,
            start,
            end,
            slos,
            _events(timeline, "replica_ready"),
            requests=requests,
        )
        recovery["fault_start"] = start - t0
        recovery["fault_end"] = None if end is None else end - t0
        recovery["fault_target"] = target

    entries = _slo_entries(slos, run, recovery)
    aborts = _events(timeline, "abort")
    scorecard: dict[str, Any] = {
        "schema": SCHEMA_VERSION,
        "meta": dict(meta),
        "run": run,
        "slos": entries,
        "recovery": recovery,
    }
    if aborts:
        details = aborts[0].get("details") or {}
        reason = details.get("reason") if isinstance(details, Mapping) else None
        scorecard["verdict"] = "aborted"
        scorecard["abort_reason"] = str(reason or aborts[0].get("target") or "aborted")
    elif run["requests"] == 0 or not all(e["passed"] for e in entries):
        scorecard["verdict"] = "fail"
    else:
        scorecard["verdict"] = "pass"
    scorecard["exit_code"] = EXIT_CODES[scorecard["verdict"]]
    log.info(
        "scored %d requests: verdict %s (%d/%d SLOs met)",
        run["requests"],
        scorecard["verdict"],
        sum(e["passed"] for e in entries),
        len(entries),
    )
    cleaned: dict[str, Any] = _clean(scorecard)
    return cleaned


def _fmt(value: Any, unit: str = "") -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        text = f"{value:.4f}" if unit == "ratio" else f"{value:.1f}"
    else:
        text = str(value)
    if unit and unit != "ratio":
        text += f" {unit}"
    return text


def scorecard_table(scorecard: Mapping[str, Any]) -> str:
    """A short plain-text table: one line per SLO, recovery lines, then the verdict."""
    rows = [("SLO", "objective", "measured", "result")]
    for e in scorecard.get("slos", []):
        rows.append(
            (
                str(e["name"]),
                f"{e['comparator']} {_fmt(e['objective'], e['unit'])}",
                _fmt(e["measured"], e["unit"]),
                ("PASS" if e["passed"] else "FAIL") + (f" ({e['note']})" if e.get("note") else ""),
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    lines = ["  ".join(r[i].ljust(widths[i]) for i in range(3)) + "  " + r[3] for r in rows]
    rec = scorecard.get("recovery") or {}
    pairs: list[tuple[str, str]] = []
    if rec.get("fault"):
        pairs.append(
            ("fault", f"{rec.get('fault_target') or '-'} at {_fmt(rec.get('fault_start'), 's')}")
        )
        pairs.append(("time to detect", _fmt(rec.get("time_to_detect_s"), "s")))
        recover = _fmt(rec.get("time_to_recover_s"), "s")
        if not rec.get("recovered"):
            recover = "not recovered"
        pairs.append(("time to recover", recover))
        pairs.append(("capacity return", _fmt(rec.get("capacity_return_s"), "s")))
        pairs.append(("requests lost", _fmt(rec.get("requests_lost"))))
    else:
        pairs.append(("fault", "none"))
    verdict = str(scorecard.get("verdict", "?")).upper()
    if scorecard.get("abort_reason"):
        verdict += f": {scorecard['abort_reason']}"
    pairs.append(("verdict", f"{verdict} (exit {scorecard.get('exit_code')})"))
    key_width = max(len(k) for k, _ in pairs)
    lines.append("")
    lines.extend(f"{k.ljust(key_width)}  {v}" for k, v in pairs)
    return "\n".join(line.rstrip() for line in lines)


def write_per_second(df: pd.DataFrame, path: str | os.PathLike[str]) -> None:
    """Write the :func:`per_second` table as CSV (``slis.csv``), empty cells for NaN."""
    df.to_csv(path, index=False)
