"""Run analytics beyond recovery: phases, evaluation windows, error budget and autoscaler
reaction (GPU utilization is in :mod:`harness.scoring.gpu`). All times are unix seconds
unless a name ends in ``_s`` and says "from t0".

Definitions:

- **Phases** (from the timeline, ``f`` fault start, ``e`` fault end or the load end when the
  fault never ended, ``r`` the recovery point ``f + time_to_recover_s``, ``L`` the load end):
  ``baseline`` ``[t0, f)``; ``fault`` ``[f, e)``; ``recovery`` ``[e, max(e, r))`` (to ``L``
  when the service never recovered); ``steady`` ``[max(e, r), L)`` (empty when it never
  recovered). Without a fault, ``baseline`` and ``steady`` are both the whole load and
  ``fault`` and ``recovery`` are empty.
- **Load phases**: each ``phase`` event (``details.phase``, e.g. ``baseline``, ``spike``)
  lasts until the next one or the load end; ``load:NAME`` is the union of NAME's spans.
- A **window** selects the requests that *ended* inside it. Figures over a window use its
  length as the duration (throughput, goodput). A **rolling** window of ``N`` seconds slides
  over the per-second buckets one second at a time; the measured value is the worst window
  (highest for ``<=`` objectives, lowest for ``>=``); windows without requests are skipped
  for percentiles and error rates but count as zero throughput.
- **Error budget** (Google SRE workbook): with availability objective ``A`` (``availability``,
  else ``1 - error_rate``) the budget is the share ``1 - A`` of the requests in the
  objective's window (the whole run for a rolling window); ``spent`` = failed requests /
  (``(1 - A)`` x requests) (1.0 = all of it, above 1 = overspent); ``burn_rate`` = observed
  error rate / ``(1 - A)``, over the window and per phase. Over the budget's own window the
  two coincide; per phase the burn rate shows where the budget went.
- **Autoscaler reaction**: from the spike start (the first load ``phase`` event named
  ``spike``, else the load start) to the first ``scale`` event at or after it that decides a
  scale-up (``direction: up``, replicas ``added``, or ``to``/``desired`` above ``from``;
  ``decision_s``), and to the first ``replica_ready`` after that event, of the replica it
  names (``replica`` or the first of ``added``) when it names one (``replica_ready_s``).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from harness.config import SLOSpec
from harness.scoring.slis import RequestArrays, figures

log = logging.getLogger(__name__)

Interval = tuple[float, float]

#: Analytic phases, in order.
PHASES: tuple[str, ...] = ("baseline", "fault", "recovery", "steady")

#: (objective, figure key, comparator) of every windowed SLO.
WINDOWED: dict[str, tuple[str, str]] = {
    "p50_latency_ms": ("p50_latency_ms", "<="),
    "p95_latency_ms": ("p95_latency_ms", "<="),
    "p99_latency_ms": ("p99_latency_ms", "<="),
    "ttft_p95_ms": ("ttft_p95_ms", "<="),
    "ttft_p99_ms": ("ttft_p99_ms", "<="),
    "tpot_p95_ms": ("tpot_p95_ms", "<="),
    "tpot_p99_ms": ("tpot_p99_ms", "<="),
    "error_rate": ("error_rate", "<="),
    "availability": ("availability", ">="),
    "throughput_rps": ("throughput_rps", ">="),
    "goodput_rps": ("goodput_rps", ">="),
}


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def phase_windows(
    t0: float,
    load_end: float,
    fault_start: float | None,
    fault_end: float | None,
    recovery: Mapping[str, Any],
) -> dict[str, Interval | None]:
    """The analytic phases as ``(start, end)`` unix times, None when empty (see module)."""
    if fault_start is None:
        whole = (t0, load_end) if load_end > t0 else None
        return {"baseline": whole, "fault": None, "recovery": None, "steady": whole}
    f = min(max(fault_start, t0), load_end)
    e = min(max(fault_end if fault_end is not None else load_end, f), load_end)
    ttr = recovery.get("time_to_recover_s")
    if recovery.get("recovered") and isinstance(ttr, int | float) and _is_number(ttr):
        settled = min(max(e, fault_start + float(ttr)), load_end)
        rec: Interval = (e, settled)
        steady: Interval = (settled, load_end)
    else:
        rec, steady = (e, load_end), (load_end, load_end)

    def keep(span: Interval) -> Interval | None:
        return span if span[1] > span[0] else None

    return {
        "baseline": keep((t0, f)),
        "fault": keep((f, e)),
        "recovery": keep(rec),
        "steady": keep(steady),
    }


def load_phases(timeline: Sequence[Mapping[str, Any]], load_end: float) -> list[dict[str, Any]]:
    """Load-shape phases from ``phase`` events: ``{"name", "start", "end"}`` unix times."""
    marks = sorted(
        (float(e["time"]), str((e.get("details") or {}).get("phase") or e.get("target") or ""))
        for e in timeline
        if e.get("kind") == "phase" and _is_number(e.get("time"))
    )
    spans = []
    for i, (start, name) in enumerate(marks):
        end = marks[i + 1][0] if i + 1 < len(marks) else max(load_end, start)
        if name and end > start:
            spans.append({"name": name, "start": start, "end": end})
    return spans


def window_mask(end: np.ndarray, spans: Sequence[Interval]) -> np.ndarray:
    """Which of the requests ending at ``end`` ended inside ``spans``."""
    mask = np.zeros(end.size, dtype=bool)
    for a, b in spans:
        mask |= (end >= a) & (end < b)
    return mask


def resolve_window(
    window: str | float,
    phases: Mapping[str, Interval | None],
    loads: Sequence[Mapping[str, Any]],
) -> tuple[list[Interval] | None, str | None]:
    """The spans of a named window (None for ``run``) and a note when it is empty."""
    if window == "run":
        return None, None
    if isinstance(window, str) and window.startswith("load:"):
        name = window[5:]
        spans = [(float(p["start"]), float(p["end"])) for p in loads if p["name"] == name]
        return spans, None if spans else f"no load phase '{name}' in the timeline"
    span = phases.get(str(window))
    if span is None:
        why = {
            "fault": "no fault was injected",
            "recovery": "no fault was injected, or nothing was left to recover",
            "steady": "the service did not recover",
            "baseline": "the fault started with the load",
        }.get(str(window), "unknown window")
        return [], f"window '{window}' is empty ({why})"
    return [span], None


def window_figures(
    arrays: RequestArrays,
    spans: Sequence[Interval] | None,
    run_duration_s: float,
    *,
    light: bool = False,
) -> dict[str, Any]:
    """:func:`figures` over the requests that ended inside ``spans`` (the run when None)."""
    if spans is None:
        return figures(arrays, None, run_duration_s, light=light)
    duration = float(sum(b - a for a, b in spans))
    return figures(arrays, window_mask(arrays.end, spans), duration, light=light)


#: The array and quantile of every percentile objective a rolling window may measure.
ROLLING_QUANTILES: dict[str, tuple[str, float]] = {
    "p50_latency_ms": ("latency", 0.5),
    "p95_latency_ms": ("latency", 0.95),
    "p99_latency_ms": ("latency", 0.99),
    "ttft_p95_ms": ("ttft", 0.95),
    "ttft_p99_ms": ("ttft", 0.99),
    "tpot_p95_ms": ("tpot", 0.95),
    "tpot_p99_ms": ("tpot", 0.99),
}
#: The requests each rate objective counts (a :class:`RequestArrays` mask, ``ok``: not
#: failed), over all requests of the window.
ROLLING_RATES: dict[str, str] = {
    "error_rate": "failed",
    "availability": "failed",
    "throughput_rps": "ok",
    "goodput_rps": "good",
}


def rolling_starts(
    t0: float, load_end: float, window_s: float, seconds: int
) -> tuple[int, int, np.ndarray]:
    """``(window length in seconds, seconds covered, window starts)`` of a rolling window
    over a load whose requests end in ``seconds`` seconds from ``t0``."""
    n_win = max(1, math.ceil(window_s))
    size = max(math.ceil(load_end - t0), seconds, 1)
    return n_win, size, np.arange(0, max(1, size - n_win + 1))


def rolling_rates(
    key: str, total: np.ndarray, hits: np.ndarray, starts: np.ndarray, n_win: int
) -> np.ndarray:
    """Rate objective ``key`` of each rolling window from the requests per second
    (``total``) and those it counts per second (``hits``), both over the covered seconds."""
    size = total.size
    total = np.concatenate(([0], np.cumsum(total)))
    hits = np.concatenate(([0], np.cumsum(hits)))
    stop = np.minimum(starts + n_win, size)
    count = total[stop] - total[starts]
    hit = (hits[stop] - hits[starts]).astype("float64")
    if key in ("throughput_rps", "goodput_rps"):
        return hit / n_win
    with np.errstate(invalid="ignore", divide="ignore"):
        rate = np.where(count > 0, hit / np.maximum(count, 1), np.nan)
    return rate if key == "error_rate" else 1.0 - rate


def rolling_pick(values: np.ndarray, starts: np.ndarray, name: str) -> tuple[float, float | None]:
    """The worst of the windows' ``values`` for objective ``name`` and where it starts."""
    if np.all(np.isnan(values)):
        return math.nan, None
    comparator = WINDOWED[name][1]
    pick = int(np.nanargmax(values) if comparator == "<=" else np.nanargmin(values))
    return float(values[pick]), float(starts[pick])


def rolling_worst(
    arrays: RequestArrays, t0: float, load_end: float, window_s: float, name: str
) -> tuple[float, float | None]:
    """Worst value of objective ``name`` over rolling windows of ``window_s`` seconds:
    ``(value, start of that window in seconds from t0)``; ``(nan, None)`` with no data."""
    key = WINDOWED[name][0]
    sec = np.clip(np.floor(arrays.end - t0), 0, None).astype(np.int64)
    n_win, size, starts = rolling_starts(
        t0, load_end, window_s, int(sec.max()) + 1 if sec.size else 0
    )
    if key in ROLLING_RATES:
        hit = {"failed": arrays.failed, "ok": ~arrays.failed, "good": arrays.good}
        weights = hit[ROLLING_RATES[key]]
        values = rolling_rates(
            key,
            np.bincount(sec, minlength=size),
            np.bincount(sec[weights], minlength=size),
            starts,
            n_win,
        )
    else:
        column, q = ROLLING_QUANTILES[key]
        column_values = getattr(arrays, column)
        keep = ~np.isnan(column_values)
        order = np.argsort(sec[keep], kind="stable")
        vals = column_values[keep][order]
        bounds = np.searchsorted(sec[keep][order], np.arange(size + 1))
        values = np.full(starts.size, np.nan)
        for i, s in enumerate(starts.tolist()):
            chunk = vals[int(bounds[s]) : int(bounds[min(s + n_win, size)])]
            if chunk.size:
                values[i] = np.quantile(chunk, q)
    return rolling_pick(values, starts, name)


def budget_objective(slos: SLOSpec) -> tuple[str, float] | None:
    """``(objective name, availability objective)`` that sets the error budget, if any."""
    if slos.availability is not None:
        return "availability", float(slos.availability)
    if slos.error_rate is not None:
        return "error_rate", 1.0 - float(slos.error_rate)
    return None


Spans = Sequence[Interval] | None
#: Requests and failed requests that ended in each of several windows (None: all).
Counts = Callable[[Sequence[Spans]], list[tuple[int, int]]]


def span_counts(arrays: RequestArrays, windows: Sequence[Spans]) -> list[tuple[int, int]]:
    """Requests and failed requests of ``arrays`` that ended in each window (see
    :data:`Counts`)."""
    out = []
    for spans in windows:
        failed = arrays.failed if spans is None else arrays.failed[window_mask(arrays.end, spans)]
        out.append((int(failed.size), int(np.count_nonzero(failed))))
    return out


def error_budget(
    arrays: RequestArrays | Counts,
    slos: SLOSpec,
    phases: Mapping[str, Interval | None],
    loads: Sequence[Mapping[str, Any]],
) -> dict[str, Any]:
    """Error budget spent and burn rates (see module); ``arrays`` may be a :data:`Counts`
    (a log read in parts)."""
    chosen = budget_objective(slos)
    if chosen is None:
        return {"objective": None, "note": "no availability or error_rate objective"}
    name, target = chosen
    budget = 1.0 - target
    window = slos.window(name)
    if not isinstance(window, str):
        window = "run"  # a rolling window applies to the SLO check, the budget is the run's
    spans, note = resolve_window(window, phases, loads)
    counts: Counts = arrays if callable(arrays) else (lambda windows: span_counts(arrays, windows))
    spanned = [(phase, phases.get(phase)) for phase in PHASES]
    tally = counts([spans] + [[span] for _phase, span in spanned if span is not None])
    requests, errors = tally.pop(0)

    def burn(n: int, bad: int) -> float | None:
        if n == 0:
            return None
        if budget <= 0:
            return 0.0 if bad == 0 else None
        return (bad / n) / budget

    result: dict[str, Any] = {
        "objective": target,
        "from": name,
        "window": window,
        "budget": budget,
        "requests": requests,
        "failed": errors,
        "allowed_failures": budget * requests,
    }
    if requests == 0:
        result.update(spent=None, remaining=None, burn_rate=None)
        result["note"] = note or "no requests in the window"
    elif budget <= 0:
        spent = 0.0 if errors == 0 else None
        result.update(spent=spent, remaining=None if spent is None else 1.0, burn_rate=spent)
        result["note"] = "an availability objective of 1.0 leaves no error budget"
    else:
        spent = errors / (budget * requests)
        result.update(spent=spent, remaining=1.0 - spent, burn_rate=burn(requests, errors))
    by_phase: dict[str, float | None] = {}
    for phase, span in spanned:
        by_phase[phase] = None if span is None else burn(*tally.pop(0))
    result["burn_rate_by_phase"] = by_phase
    return result


def _is_scale_up(event: Mapping[str, Any]) -> bool:
    """A scale-up decision: ``direction: up``, replicas ``added``, or ``to``/``desired`` above
    ``from``; an event without any of these counts as one too."""
    details = event.get("details") or {}
    if not isinstance(details, Mapping):
        return True
    direction = str(details.get("direction", "")).lower()
    if direction in ("up", "down"):
        return direction == "up"
    if details.get("added"):
        return True
    old = details.get("from")
    targets = [details.get(k) for k in ("to", "desired")]
    numbers = [t for t in targets if isinstance(t, int | float) and _is_number(t)]
    if not (isinstance(old, int | float) and _is_number(old)) or not numbers:
        return not numbers and "from" not in details
    return max(float(t) for t in numbers) > float(old)


def _new_replica(event: Mapping[str, Any]) -> str | None:
    details = event.get("details") or {}
    if not isinstance(details, Mapping):
        return None
    if details.get("replica"):
        return str(details["replica"])
    added = details.get("added")
    if isinstance(added, list) and added:
        return str(added[0])
    return None


def autoscaler_reaction(timeline: Sequence[Mapping[str, Any]], t0: float) -> dict[str, Any]:
    """Spike start -> first scale-up decision -> the new replica Ready (see module)."""
    scales = sorted(
        (
            e
            for e in timeline
            if e.get("kind") == "scale"
            # not the scheduler moving a lost node's replicas, nor the cluster autoscaler's nodes
            and e.get("target") not in ("scheduler", "cluster-autoscaler")
            and _is_number(e.get("time"))
        ),
        key=lambda e: float(e["time"]),
    )
    if not scales:
        return {"autoscaler": False, "note": "no autoscaler: no scale event in the timeline"}
    spikes = sorted(
        float(e["time"])
        for e in timeline
        if e.get("kind") == "phase"
        and _is_number(e.get("time"))
        and str((e.get("details") or {}).get("phase")) == "spike"
    )
    origin = spikes[0] if spikes else t0
    result: dict[str, Any] = {
        "autoscaler": True,
        "scale_events": len(scales),
        "spike_start_s": origin - t0 if spikes else None,
    }
    up = [e for e in scales if float(e["time"]) >= origin and _is_scale_up(e)]
    if not up:
        result.update(decision_s=None, replica_ready_s=None)
        result["note"] = "the autoscaler never scaled up after the spike started"
        return result
    scale = up[0]
    at = float(scale["time"])
    named = _new_replica(scale)
    readies = sorted(
        (
            e
            for e in timeline
            if e.get("kind") == "replica_ready"
            and _is_number(e.get("time"))
            and float(e["time"]) >= at
            and (named is None or str(e.get("target")) == str(named))
        ),
        key=lambda e: float(e["time"]),
    )
    result["decision_s"] = at - origin
    result["scale_target"] = str(scale.get("target", ""))
    if readies:
        ready = float(readies[0]["time"])
        result["replica_ready_s"] = ready - origin
        result["scale_to_ready_s"] = ready - at
    else:
        result["replica_ready_s"] = None
        result["note"] = "no replica became Ready after the scale-up"
    if not spikes:
        result["note"] = "no spike phase in the timeline: measured from the load start"
    return result
