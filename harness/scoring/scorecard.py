"""The scorecard: SLO verdicts and recovery figures of one run, as a JSON-ready dict.

Definitions:

- ``t0``: time of the first ``load_start`` event, else the earliest request start.
  **Load end**: the first ``load_end`` event after ``t0``, else the last request end.
  Load duration = load end - ``t0``.
- **Fault window**: the first ``fault_start`` event and the first ``fault_end`` with the same
  target at or after it (null when the fault never ended). The recovery figures, the phases
  and the score are those of this first fault; ``recovery.per_fault`` gives every fault's
  own (each paired with the first unclaimed ``fault_end`` of its target), analysed as if it
  were the only one: in a cascade their impact windows may overlap.
- **SLOs**, one entry per set objective, in the order of :data:`SLO_ORDER`: latency, TTFT
  and TPOT percentiles (effective values, ``<=``), ``error_rate`` (``<=``), ``availability``
  (``>=``), ``throughput_rps`` and ``goodput_rps`` (per second of the window, ``>=``), each
  over its window (``slos.windows``, the whole load by default; see
  :mod:`harness.scoring.analytics`), and ``recovery_s`` (``time_to_recover_s`` ``<=``; fails
  when the service did not recover or no fault was injected). An SLO with nothing to measure
  (no requests, an empty window) fails with ``measured`` null and a ``note``.
  The GPU objectives follow (:mod:`harness.scoring.gpu_slos`), and the ``gpu`` block adds
  the XIDs seen with NVIDIA's action and the time a lost GPU was unschedulable.
- **Score**: see :mod:`harness.scoring.resilience`.
- **Verdict**: ``aborted`` (exit 2) when the timeline has an ``abort`` event (the runner
  stopped the run and said why); else ``incomplete`` (exit 2) when the run did not finish
  (a harness that was killed: no ``run_end``; see :mod:`harness.scoring.intake`), with every
  figure of what was recorded; else ``fail`` (exit 1) when any SLO failed or no request was
  recorded; else ``pass`` (exit 0). ``warnings`` lists what the scorer stepped over in a
  damaged run folder (torn lines, bad rows, missing files).
- The result holds no NaN or infinity (they become null) and no numpy types.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from harness.config import SLOSpec
from harness.scoring.analytics import (
    PHASES,
    autoscaler_reaction,
    error_budget,
    load_phases,
    phase_windows,
    resolve_window,
)
from harness.scoring.capacity import capacity_chain
from harness.scoring.gpu import gpu_figures
from harness.scoring.gpu_slos import gpu_fault_figures, gpu_slo_entries
from harness.scoring.instrument import instrument_figures
from harness.scoring.recovery import analyze_recovery
from harness.scoring.resilience import resilience_score
from harness.scoring.slis import goodput_thresholds
from harness.scoring.source import MemoryRequests, RequestSource, Window
from harness.scoring.spans import events_of, fault_windows, run_window

log = logging.getLogger(__name__)

SCHEMA_VERSION = 2

#: (SLO name, comparator, unit), in scorecard order.
SLO_ORDER: tuple[tuple[str, str, str], ...] = (
    ("p50_latency_ms", "<=", "ms"),
    ("p95_latency_ms", "<=", "ms"),
    ("p99_latency_ms", "<=", "ms"),
    ("ttft_p95_ms", "<=", "ms"),
    ("ttft_p99_ms", "<=", "ms"),
    ("tpot_p95_ms", "<=", "ms"),
    ("tpot_p99_ms", "<=", "ms"),
    ("error_rate", "<=", "ratio"),
    ("availability", ">=", "ratio"),
    ("throughput_rps", ">=", "rps"),
    ("goodput_rps", ">=", "rps"),
    ("recovery_s", "<=", "s"),
)
EXIT_CODES = {"pass": 0, "fail": 1, "aborted": 2, "incomplete": 2}


def _shape_duration(timeline: Sequence[Mapping[str, Any]]) -> float | None:
    """The load shape's length in seconds (``duration_s`` of the first ``load_start``), None
    when the event does not give a finite, non-negative number."""
    starts = events_of(timeline, "load_start")
    details = starts[0].get("details") if starts else None
    duration = details.get("duration_s") if isinstance(details, Mapping) else None
    if not isinstance(duration, int | float) or isinstance(duration, bool):
        return None
    return float(duration) if math.isfinite(duration) and duration >= 0 else None


def _within_shape(table: pd.DataFrame, timeline: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """The seconds of the load shape itself: Locust keeps finishing in-flight requests for a
    moment after its shape ended, and those partial seconds are not the service's doing."""
    duration = _shape_duration(timeline)
    if duration is None:
        return table
    return table[table["second"] < math.floor(duration)]


def _shape_end(timeline: Sequence[Mapping[str, Any]], t0: float, load_end: float) -> float:
    """The end of the load shape itself (``t0`` + its duration), or the load end when that
    came first: Locust's shutdown after the shape (its summary, its exit) sends nothing."""
    duration = _shape_duration(timeline)
    return load_end if duration is None else min(load_end, t0 + duration)


#: The figures of each fault kept in ``recovery.per_fault``.
PER_FAULT_KEYS = (
    "time_to_detect_s",
    "recovered",
    "time_to_recover_s",
    "capacity_return_s",
    "requests_lost",
    "worst_error_rate",
    "worst_p99_ms",
)


def _fault_figures(
    rec: Mapping[str, Any], t0: float, start: float, end: float | None, target: str
) -> dict[str, Any]:
    """One entry of ``recovery.per_fault``: where the fault was and how the service took it."""
    entry: dict[str, Any] = {
        "target": target,
        "start_s": start - t0,
        "end_s": None if end is None else end - t0,
    }
    entry.update({k: rec.get(k) for k in PER_FAULT_KEYS})
    return entry


def json_safe(value: Any) -> Any:
    """JSON-safe copy: numpy scalars to Python, NaN/inf to None, floats rounded to 6 places."""
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
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


def _window_label(window: str | float) -> str:
    return window if isinstance(window, str) else f"rolling {float(window):g}s"


def _slo_entries(
    slos: SLOSpec,
    run: Mapping[str, Any],
    recovery: Mapping[str, Any],
    *,
    source: RequestSource,
    phases: Mapping[str, Any],
    loads: Sequence[Mapping[str, Any]],
) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = []
    no_requests = run["requests"] == 0
    cache: dict[str, dict[str, Any]] = {"run": dict(run)}
    for name, comparator, unit in SLO_ORDER:
        objective = getattr(slos, name)
        if objective is None:
            continue
        note: str | None = None
        measured: float | None
        window = "fault" if name == "recovery_s" else slos.window(name)
        worst_at: float | None = None
        if name == "recovery_s":
            measured = _measured(recovery.get("time_to_recover_s"))
        elif not isinstance(window, str):
            value, worst_at = source.rolling_worst(run["t0"], run["load_end"], float(window), name)
            measured = _measured(value)
        else:
            if window not in cache:
                spans, empty = resolve_window(window, phases, loads)
                cache[window] = (
                    {"note": empty} if empty else source.figures(spans, float(run["duration_s"]))
                )
            figs = cache[window]
            measured = _measured(figs.get(name))
            if figs.get("note"):
                note = str(figs["note"])
            elif not figs.get("requests") and not no_requests:
                note = f"no requests ended in window '{window}'"
        if no_requests:
            measured, note = None, "no requests recorded"
        elif note:
            pass
        elif name == "recovery_s" and not recovery.get("fault"):
            note = "no fault in the timeline"
        elif name == "recovery_s" and recovery.get("note"):
            note = str(recovery["note"])
        elif name == "recovery_s" and not recovery.get("recovered"):
            note = f"did not recover ({recovery.get('hold_s')} s holding) before the data ended"
        elif measured is None:
            note = (
                "no TTFT samples (non-streaming requests)"
                if name.startswith("ttft")
                else "no TPOT samples (no request streamed 2 or more tokens)"
                if name.startswith("tpot")
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
            "window": _window_label(window),
            "passed": bool(passed),
        }
        if worst_at is not None:
            entry["worst_window_start_s"] = worst_at
        if note:
            entry["note"] = note
        entries.append(entry)
    return entries


def _phase_table(
    source: RequestSource,
    phases: Mapping[str, tuple[float, float] | None],
    t0: float,
    budget: Mapping[str, Any],
) -> dict[str, Any]:
    """Per analytic phase: its span from t0 and a few figures over it (null when empty)."""
    burn = budget.get("burn_rate_by_phase") or {}
    out: dict[str, Any] = {}
    for name in PHASES:
        span = phases.get(name)
        if span is None:
            out[name] = None
            continue
        figs = source.figures([span], span[1] - span[0], light=True)
        out[name] = {
            "start_s": span[0] - t0,
            "end_s": span[1] - t0,
            "duration_s": span[1] - span[0],
            "requests": figs["requests"],
            "error_rate": figs["error_rate"],
            "p99_latency_ms": figs["p99_latency_ms"],
            "ttft_p95_ms": figs["ttft_p95_ms"],
            "throughput_rps": figs["throughput_rps"],
            "goodput_rps": figs["goodput_rps"],
            "burn_rate": burn.get(name),
        }
    return out


def _windows_to_figure(
    slos: SLOSpec,
    phases: Mapping[str, tuple[float, float] | None],
    loads: Sequence[Mapping[str, Any]],
    duration: float,
) -> list[Window]:
    """The windows the scorecard figures: the run, each SLO's named window, each phase."""
    out: list[Window] = [(None, duration, False)]
    for name, _comparator, _unit in SLO_ORDER:
        window = slos.window(name)
        if getattr(slos, name) is None or name == "recovery_s" or not isinstance(window, str):
            continue
        spans, empty = resolve_window(window, phases, loads)
        if not empty:
            out.append((spans, duration, False))
    for name in PHASES:
        span = phases.get(name)
        if span is not None:
            out.append(([span], span[1] - span[0], True))
    return out


def build_scorecard(
    requests: pd.DataFrame | RequestSource,
    timeline: Sequence[Mapping[str, Any]],
    slos: SLOSpec,
    *,
    timeout_ms: float,
    meta: Mapping[str, Any],
    telemetry: pd.DataFrame | None = None,
    lag: pd.DataFrame | None = None,
    incomplete: str | None = None,
    warnings: Sequence[str] = (),
) -> dict[str, Any]:
    """Score one run (see module). Returns a JSON-serialisable dict. ``requests`` is the
    frame of :func:`~harness.scoring.slis.read_requests`, or a log read in parts
    (:class:`~harness.scoring.chunked.ChunkedRequests`).

    ``incomplete`` says why the run did not finish (the verdict is then ``incomplete``
    unless the run was aborted); ``warnings`` are what reading the run folder stepped over.

    Keys: ``schema`` (2), ``meta`` (as passed), ``run`` (``t0``, ``load_end`` and the figures
    of :func:`~harness.scoring.slis.figures` over the whole load, goodput by ``slos``),
    ``slos`` (list of ``name``, ``objective``, ``comparator``, ``measured``, ``unit``,
    ``window``, ``passed`` and maybe ``worst_window_start_s`` and ``note``), ``phases`` (the
    analytic phases with figures, and ``load`` phases), ``recovery``
    (:func:`analyze_recovery` plus ``fault_start``, ``fault_end`` as seconds from ``t0``,
    ``fault_target``, ``faults``, the number of ``fault_start`` events, and ``per_fault``, a
    list of ``target``, ``start_s``, ``end_s`` and :data:`PER_FAULT_KEYS` per fault),
    ``autoscaler``,
    ``error_budget``, ``goodput`` (thresholds and figures), ``gpu`` (from ``telemetry``),
    ``instrument`` (whether the load generator was saturated during the load shape, from the
    Locust CPU samples in ``telemetry`` and ``lag``, the ``start`` and ``lag_ms`` of the
    open-loop arrivals; see :mod:`harness.scoring.instrument`), ``score``, ``verdict``,
    ``warnings``, ``exit_code``, ``abort_reason`` when aborted and ``incomplete_reason`` when
    the run did not finish.
    """
    source = (
        MemoryRequests(requests, timeout_ms, slos)
        if isinstance(requests, pd.DataFrame)
        else requests
    )
    t0, load_end = run_window(source, timeline)
    duration = load_end - t0

    windows = fault_windows(timeline)
    start, end, target = windows[0] if windows else (None, None, None)
    if start is None:
        recovery: dict[str, Any] = {"fault": False}
    else:
        table = _within_shape(source.per_second(t0, until=load_end), timeline)
        ready = events_of(timeline, "replica_ready")
        analyses = [
            analyze_recovery(table, t0, begin, finish, slos, ready, lost=source.lost)
            for begin, finish, _who in windows
        ]
        per_fault = [
            _fault_figures(rec, t0, begin, finish, who)
            for rec, (begin, finish, who) in zip(analyses, windows, strict=True)
        ]
        recovery = dict(analyses[0])  # the first fault's figures are the headline
        recovery["fault_start"] = start - t0
        recovery["fault_end"] = None if end is None else end - t0
        recovery["fault_target"] = target
        recovery["faults"] = len(windows)
        recovery["per_fault"] = per_fault

    phases = phase_windows(t0, load_end, start, end, recovery)
    loads = load_phases(timeline, load_end)
    source.prefetch(_windows_to_figure(slos, phases, loads, duration))
    run: dict[str, Any] = {"t0": t0, "load_end": load_end}
    run.update(source.figures(None, duration))
    entries = _slo_entries(slos, run, recovery, source=source, phases=phases, loads=loads)
    gpu_block = gpu_figures(telemetry, t0, load_end, slos.price_per_gpu_hour)
    gpu_block.update(gpu_fault_figures(timeline, telemetry, t0, load_end))
    entries += gpu_slo_entries(slos, gpu_block)  # after the others, as in SLO_ORDER
    budget = error_budget(source.counts, slos, phases, loads)
    phase_block = _phase_table(source, phases, t0, budget)
    phase_block["load"] = [
        {"name": p["name"], "start_s": p["start"] - t0, "end_s": p["end"] - t0} for p in loads
    ]
    aborts = events_of(timeline, "abort")
    scorecard: dict[str, Any] = {
        "schema": SCHEMA_VERSION,
        "meta": dict(meta),
        "run": run,
        "slos": entries,
        "phases": phase_block,
        "recovery": recovery,
        "autoscaler": autoscaler_reaction(timeline, t0),
        "capacity": capacity_chain(timeline, t0, recovery),
        "error_budget": budget,
        "goodput": {
            "thresholds": goodput_thresholds(slos),
            "good": run["good"],
            "goodput_rps": run["goodput_rps"],
            "goodput_ratio": run["goodput_ratio"],
        },
        "gpu": gpu_block,
        "instrument": instrument_figures(telemetry, lag, t0, _shape_end(timeline, t0, load_end)),
        "score": resilience_score(entries, recovery, budget, slos, int(run["requests"])),
    }
    if aborts:
        details = aborts[0].get("details") or {}
        reason = details.get("reason") if isinstance(details, Mapping) else None
        scorecard["verdict"] = "aborted"
        scorecard["abort_reason"] = str(reason or aborts[0].get("target") or "aborted")
    elif incomplete:
        scorecard["verdict"] = "incomplete"
        scorecard["incomplete_reason"] = incomplete
    elif run["requests"] == 0 or not all(e["passed"] for e in entries):
        scorecard["verdict"] = "fail"
    else:
        scorecard["verdict"] = "pass"
    scorecard["warnings"] = list(warnings)
    scorecard["exit_code"] = EXIT_CODES[scorecard["verdict"]]
    log.info(
        "scored %d requests: verdict %s (%d/%d SLOs met), score %s",
        run["requests"],
        scorecard["verdict"],
        sum(e["passed"] for e in entries),
        len(entries),
        scorecard["score"]["value"],
    )
    cleaned: dict[str, Any] = json_safe(scorecard)
    return cleaned
