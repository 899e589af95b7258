"""The per-second frame: one row per second of the run, figures of the requests that ended in it.

Why a module of its own: the recovery analysis, ``slis.csv`` and the report's plots all draw
on these rows, so a second's latency percentiles, throughput and goodput are defined once, by
the rules of :mod:`harness.scoring.slis` (effective latency, TTFT and TPOT; a *good* request
meets every tail objective that is set, TPOT included), and a plot cannot disagree with the
verdict.
"""

from __future__ import annotations

import math
import os
from typing import Any

import numpy as np
import pandas as pd

from harness.scoring.slis import DEFAULT_TIMEOUT_MS, RequestArrays

#: Columns of :func:`per_second`, in order (``slis.csv``).
PER_SECOND_COLUMNS: tuple[str, ...] = (
    "second",
    "requests",
    "errors",
    "error_rate",
    "p50_ms",
    "p99_ms",
    "ttft_p95_ms",
    "throughput_rps",
    "tokens_per_s",
    "p95_ms",
    "ttft_p99_ms",
    "tpot_p95_ms",
    "tpot_p99_ms",
    "ttft_p50_ms",
    "goodput_rps",
)


def per_second(
    df: pd.DataFrame,
    t0: float,
    timeout_ms: float = DEFAULT_TIMEOUT_MS,
    *,
    until: float | None = None,
    slos: Any = None,
) -> pd.DataFrame:
    """One row per whole second from ``t0``, requests bucketed by their end time.

    Rows run from second 0 to the bucket of the last request end, or to the last second that
    overlaps ``[t0, until)`` when ``until`` (the load end) is later; seconds without
    completions are present with ``requests == 0``. Columns (:data:`PER_SECOND_COLUMNS`):
    ``second`` (int offset from ``t0``), ``requests`` (completions, failed included),
    ``errors`` (failed), ``error_rate`` (errors / requests, NaN when no requests), ``p50_ms``,
    ``p95_ms`` and ``p99_ms`` (effective latency), ``ttft_p50_ms``, ``ttft_p95_ms`` and
    ``ttft_p99_ms`` (effective TTFT), ``tpot_p95_ms`` and ``tpot_p99_ms`` (effective TPOT),
    ``throughput_rps`` (successful completions that second), ``goodput_rps`` (good
    completions that second, the objectives of ``slos``, an SLOSpec; every success without
    it) and ``tokens_per_s`` (output tokens of the successful completions). Latency, TTFT and
    TPOT columns are NaN when there is nothing to measure.
    """
    arrays = RequestArrays.build(df, timeout_ms, slos)
    sec = seconds_of(arrays.end, t0)
    last = int(sec.max()) if sec.size else -1
    if until is not None:
        last = max(last, math.ceil(until - t0) - 1)
    return seconds_table(arrays, sec, last + 1)


def seconds_of(end: np.ndarray, t0: float) -> np.ndarray:
    """The second of each end time from ``t0`` (ends before ``t0`` in second 0)."""
    return np.clip(np.floor(end - t0), 0, None).astype(np.int64)


def seconds_table(arrays: RequestArrays, sec: np.ndarray, size: int) -> pd.DataFrame:
    """The rows of :func:`per_second` for seconds ``0 .. size - 1`` of ``arrays``, whose
    seconds are ``sec`` (each below ``size``): a second's figures depend on its own requests
    only, so the table of a long run can be built a few seconds at a time."""
    failed = arrays.failed
    ok = ~failed
    requests = np.bincount(sec, minlength=size)
    errors = np.bincount(sec[failed], minlength=size)
    successes = np.bincount(sec[ok], minlength=size)
    good = np.bincount(sec[arrays.good], minlength=size)
    tokens_ok = np.bincount(sec[ok], weights=arrays.tokens[ok], minlength=size).astype(np.int64)
    index = pd.RangeIndex(0, size, name="second")

    def grouped(values: np.ndarray, qs: list[float]) -> pd.DataFrame:
        q = pd.Series(values).groupby(sec).quantile(qs).unstack()
        return q.reindex(index=index, columns=qs)

    lat_q = grouped(arrays.latency, [0.5, 0.95, 0.99])
    ttft_q = grouped(arrays.ttft, [0.5, 0.95, 0.99])
    tpot_q = grouped(arrays.tpot, [0.95, 0.99])
    with np.errstate(invalid="ignore", divide="ignore"):
        error_rate = np.where(requests > 0, errors / np.maximum(requests, 1), np.nan)
    out = pd.DataFrame(
        {
            "second": np.arange(size, dtype=np.int64),
            "requests": requests.astype(np.int64),
            "errors": errors.astype(np.int64),
            "error_rate": error_rate,
            "p50_ms": lat_q[0.5].to_numpy(dtype="float64"),
            "p99_ms": lat_q[0.99].to_numpy(dtype="float64"),
            "ttft_p95_ms": ttft_q[0.95].to_numpy(dtype="float64"),
            "throughput_rps": successes.astype(np.int64),
            "tokens_per_s": tokens_ok,
            "p95_ms": lat_q[0.95].to_numpy(dtype="float64"),
            "ttft_p99_ms": ttft_q[0.99].to_numpy(dtype="float64"),
            "tpot_p95_ms": tpot_q[0.95].to_numpy(dtype="float64"),
            "tpot_p99_ms": tpot_q[0.99].to_numpy(dtype="float64"),
            "ttft_p50_ms": ttft_q[0.5].to_numpy(dtype="float64"),
            "goodput_rps": good.astype(np.int64),
        }
    )
    return out[list(PER_SECOND_COLUMNS)]


def write_per_second(df: pd.DataFrame, path: str | os.PathLike[str]) -> None:
    """Write the :func:`per_second` table as CSV (``slis.csv``), empty cells for NaN."""
    df.to_csv(path, index=False)
