"""Recovery analytics: which seconds hold the SLOs, and how a fault bent them.

Definitions (all figures in seconds relative to the fault start ``f``; seconds are the
per-second buckets of :func:`harness.scoring.persecond.per_second`, bucket ``s`` covering
``[t0 + s, t0 + s + 1)``):

- A second **holds** when every *set* per-second objective of the :class:`SLOSpec` is met:
  ``error_rate`` (and ``1 - availability``), ``p50``/``p95``/``p99`` latency, ``p95``/``p99``
  TTFT and ``p95``/``p99`` TPOT each ``<=`` its objective (a NaN TTFT or TPOT, i.e. no samples
  that second, is not checked). The throughput and goodput floors are not part of the
  per-second check; evaluation windows do not apply to it. A second with no completed
  requests does **not** hold, unless it comes before the first second with any completion.
  With no per-second objective set, only empty seconds can breach.
- The seconds **after the fault** are those whose bucket contains or follows ``f``
  (``s >= floor(f)``); a **breach** is a non-holding second among them.
- ``time_to_detect_s``: start of the first breach minus ``f`` (at least 0); null if none.
- ``time_to_recover_s``: start of the first run of ``hold_s`` consecutive holding seconds that
  begins after the first breach, minus ``f`` (at least 0); ``0.0`` when nothing breached;
  null with ``recovered: false`` when no such run exists before the data ends, or when there
  is no second at or after the fault at all (then with a ``note``).
- **Impact window**: from ``f`` to the later of the recovery point and the fault end; to the
  end of the data when the service never recovered or the fault never ended.
  ``worst_error_rate`` and ``worst_p99_ms`` are maxima over the seconds overlapping it;
  ``degraded_s`` counts the non-holding seconds among them; ``requests_lost`` counts failed
  requests whose start or end lies in it (with only per-second data: failed completions in
  its seconds). ``worst_throughput_ratio``: the lowest successful requests/s of a second in
  the impact window over the median of the seconds with completions before the fault (null
  without such seconds).
- ``capacity_return_s``: time of the last ``replica_ready`` event at or after the fault
  start, minus ``f``; null if none.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd

from harness.config import SLOSpec
from harness.scoring.slis import failed_mask

log = logging.getLogger(__name__)

#: Per-second objectives: (SLOSpec field, per-second column).
PER_SECOND_OBJECTIVES: tuple[tuple[str, str], ...] = (
    ("error_rate", "error_rate"),
    ("p50_latency_ms", "p50_ms"),
    ("p95_latency_ms", "p95_ms"),
    ("p99_latency_ms", "p99_ms"),
    ("ttft_p95_ms", "ttft_p95_ms"),
    ("ttft_p99_ms", "ttft_p99_ms"),
    ("tpot_p95_ms", "tpot_p95_ms"),
    ("tpot_p99_ms", "tpot_p99_ms"),
)

#: Per-second columns where NaN (no samples that second) is not checked.
_NAN_OK = frozenset({"ttft_p95_ms", "ttft_p99_ms", "tpot_p95_ms", "tpot_p99_ms"})


def holding_seconds(per_second: pd.DataFrame, slos: SLOSpec) -> pd.Series:
    """Boolean Series aligned with ``per_second``: True where that second holds (see module)."""
    requests = per_second["requests"].to_numpy()
    has = requests > 0
    holds = np.ones(len(per_second), dtype=bool)
    checks = [(getattr(slos, field), column) for field, column in PER_SECOND_OBJECTIVES]
    if slos.availability is not None:
        checks.append((1.0 - slos.availability, "error_rate"))
    for objective, column in checks:
        if objective is None or column not in per_second:
            continue
        values = per_second[column].to_numpy(dtype="float64")
        ok = values <= objective
        if column in _NAN_OK:
            ok |= np.isnan(values)
        holds &= ok | ~has
    before_first = np.ones(len(per_second), dtype=bool)
    if has.any():
        before_first[int(np.argmax(has)) :] = False
    holds &= has | before_first
    return pd.Series(holds, index=per_second.index, name="holds")


def _nanmax(values: np.ndarray) -> float | None:
    values = values[~np.isnan(values)]
    return float(values.max()) if values.size else None


def failed_touching(
    start: np.ndarray, end: np.ndarray, failed: np.ndarray, lo: float, hi: float
) -> int:
    """How many failed requests started or ended in ``[lo, hi)`` (``requests_lost``)."""
    inside = ((start >= lo) & (start < hi)) | ((end >= lo) & (end < hi))
    return int(np.count_nonzero(inside & failed))


def analyze_recovery(
    per_second: pd.DataFrame,
    t0: float,
    fault_start: float | None,
    fault_end: float | None,
    slos: SLOSpec,
    capacity_events: Iterable[Mapping[str, Any]] = (),
    *,
    requests: pd.DataFrame | None = None,
    lost: Callable[[float, float], int] | None = None,
) -> dict[str, Any]:
    """Recovery figures for the fault starting at unix time ``fault_start`` (see module).

    ``per_second`` is the table of :func:`per_second` for the same ``t0`` (contiguous seconds);
    ``capacity_events`` are timeline events (only ``replica_ready`` ones are used);
    ``requests``, when given, makes ``requests_lost`` exact, as ``lost`` does (a count of
    the failed requests that started or ended in ``[lo, hi)``, for a log read in parts:
    :func:`failed_touching`). With ``fault_start`` None the
    result is ``{"fault": False}``. Otherwise keys: ``fault`` (True), ``hold_s``, ``breached``,
    ``time_to_detect_s``, ``time_to_recover_s``, ``recovered``, ``capacity_return_s``,
    ``worst_error_rate``, ``worst_p99_ms``, ``worst_throughput_ratio``, ``requests_lost``,
    ``degraded_s``, and ``note``
    when there is no data after the fault.
    """
    if fault_start is None:
        return {"fault": False}
    # seconds after the last completed request carry no evidence either way (the load
    # stopped): they are neither a breach nor a recovery
    has_data = np.flatnonzero(per_second["requests"].to_numpy() > 0)
    if has_data.size:
        per_second = per_second.iloc[: int(has_data[-1]) + 1]
    f = fault_start - t0
    hold = slos.hold_s
    seconds = per_second["second"].to_numpy(dtype=np.int64)
    holds = holding_seconds(per_second, slos).to_numpy()
    after = seconds >= math.floor(f)
    breaches = np.flatnonzero(after & ~holds)

    time_to_detect: float | None = None
    time_to_recover: float | None
    recovered: bool
    recovery_point: float
    note: str | None = None
    if not after.any():
        time_to_recover, recovered = None, False
        recovery_point = math.inf
        note = "no data at or after the fault start"
    elif breaches.size == 0:
        time_to_recover, recovered = 0.0, True
        recovery_point = f
    else:
        first = int(breaches[0])
        time_to_detect = max(0.0, float(seconds[first]) - f)
        n = len(holds)
        csum = np.concatenate(([0], np.cumsum(holds, dtype=np.int64)))
        starts = np.arange(0, max(0, n - hold + 1))
        full = (csum[starts + hold] - csum[starts]) == hold
        candidates = starts[full & (starts > first)]
        if candidates.size:
            run_start = float(seconds[int(candidates[0])])
            time_to_recover, recovered = max(0.0, run_start - f), True
            recovery_point = max(f, run_start)
        else:
            time_to_recover, recovered = None, False
            recovery_point = math.inf
    if recovered and fault_end is not None:
        window_end = max(recovery_point, fault_end - t0)
    else:
        window_end = math.inf

    in_window = (seconds + 1 > f) & (seconds < window_end)
    worst_error_rate = _nanmax(per_second["error_rate"].to_numpy(dtype="float64")[in_window])
    worst_p99 = _nanmax(per_second["p99_ms"].to_numpy(dtype="float64")[in_window])
    degraded_s = float(np.count_nonzero(in_window & ~holds))
    ok_rps = per_second["throughput_rps"].to_numpy(dtype="float64")
    before = (seconds + 1 <= f) & (per_second["requests"].to_numpy() > 0)
    reference = float(np.median(ok_rps[before])) if before.any() else 0.0
    worst_ratio = (
        float(ok_rps[in_window].min()) / reference if reference > 0 and in_window.any() else None
    )
    if lost is not None:
        requests_lost = lost(t0 + f, t0 + window_end)
    elif requests is not None and len(requests):
        requests_lost = failed_touching(
            requests["start"].to_numpy(dtype="float64"),
            requests["end"].to_numpy(dtype="float64"),
            failed_mask(requests).to_numpy(),
            t0 + f,
            t0 + window_end,
        )
    else:
        requests_lost = int(per_second["errors"].to_numpy()[in_window].sum())

    ready = [
        float(e["time"])
        for e in capacity_events
        if e.get("kind") == "replica_ready" and float(e.get("time", -math.inf)) >= fault_start
    ]
    capacity_return = max(ready) - fault_start if ready else None
    log.debug(
        "recovery: detect=%s recover=%s recovered=%s capacity=%s lost=%d",
        time_to_detect,
        time_to_recover,
        recovered,
        capacity_return,
        requests_lost,
    )
    result: dict[str, Any] = {
        "fault": True,
        "hold_s": hold,
        "breached": bool(breaches.size),
        "time_to_detect_s": time_to_detect,
        "time_to_recover_s": time_to_recover,
        "recovered": recovered,
        "capacity_return_s": capacity_return,
        "worst_error_rate": worst_error_rate,
        "worst_p99_ms": worst_p99,
        "worst_throughput_ratio": worst_ratio,
        "requests_lost": requests_lost,
        "degraded_s": degraded_s,
    }
    if note:
        result["note"] = note
    return result
