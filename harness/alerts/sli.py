"""The run's per-second SLIs for alerting, and the objectives the alerts protect.

Why a module of its own: the burn-rate evaluation, the OpenMetrics export and the promtool
test file must count the same events, so the counts are made once, here, by the rules of
:mod:`harness.scoring.slis` (failed = status not 200 or an error text; a failed request's
effective latency is at least the client timeout; requests are bucketed by their end time
into whole seconds from the run's ``t0``).

Per second ``s`` (the requests that ended in ``[t0 + s, t0 + s + 1)``):

- ``requests``: every request, failed included;
- ``errors``: failed requests (the availability SLI's bad events);
- ``slow``: requests whose effective latency is over the latency objective (the latency
  SLI's bad events; a failed request is slow unless the objective is above the timeout);
- ``buckets``: a cumulative latency histogram (``latency <= le``) over :data:`BUCKETS_MS`
  plus the latency objective, and ``latency_sum_s`` (for the OpenMetrics histogram).

Objectives: availability is ``slos.availability``, else ``1 - slos.error_rate``; latency is
the tail objective that sets the goodput threshold (``p99_latency_ms``, else ``p95``, else
``p50``) read as "that share of requests within that many ms": ``p99_latency_ms: 1000``
means 99% of requests within 1 s.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from harness.config.base import MAX_DURATION_S
from harness.scoring.persecond import seconds_of
from harness.scoring.slis import RequestArrays
from harness.scoring.spans import fault_windows, run_window

#: Latency histogram bounds (ms) of the export, besides the latency objective itself.
BUCKETS_MS: tuple[float, ...] = (
    50.0, 100.0, 250.0, 500.0, 1_000.0, 2_500.0, 5_000.0, 10_000.0, 30_000.0, 60_000.0,
)  # fmt: skip
#: The latency objectives and the share of requests each one promises.
_LATENCY_TARGETS: tuple[tuple[str, float], ...] = (
    ("p99_latency_ms", 0.99),
    ("p95_latency_ms", 0.95),
    ("p50_latency_ms", 0.50),
)


@dataclass(frozen=True)
class Objectives:
    """What the default alerts protect; None where the experiment sets no such objective."""

    availability: float | None  # share of requests that must succeed
    availability_from: str | None  # "availability" or "error_rate"
    latency_ms: float | None  # the latency threshold
    latency_target: float | None  # share of requests that must be within it
    latency_from: str | None  # "p99_latency_ms", ...

    def as_dict(self) -> dict[str, Any]:
        return {
            "availability": None
            if self.availability is None
            else {"target": self.availability, "from": self.availability_from},
            "latency": None
            if self.latency_ms is None
            else {
                "threshold_ms": self.latency_ms,
                "target": self.latency_target,
                "from": self.latency_from,
            },
        }


def objectives_of(slos: Any) -> Objectives:
    """The availability and latency objectives of an :class:`~harness.config.SLOSpec`."""
    availability, avail_from = None, None
    if getattr(slos, "availability", None) is not None:
        availability, avail_from = float(slos.availability), "availability"
    elif getattr(slos, "error_rate", None) is not None:
        availability, avail_from = round(1.0 - float(slos.error_rate), 12), "error_rate"
    for name, target in _LATENCY_TARGETS:
        value = getattr(slos, name, None)
        if value is not None:
            return Objectives(availability, avail_from, float(value), target, name)
    return Objectives(availability, avail_from, None, None, None)


@dataclass(frozen=True)
class RunSLIs:
    """Per-second counts of one run (see module); arrays of length ``seconds``."""

    t0: float
    run_s: float  # the load's length (load_end - t0), what the alert windows scale by
    fault_start_s: float | None  # the first fault's start, seconds from t0
    objectives: Objectives
    requests: np.ndarray
    errors: np.ndarray
    slow: np.ndarray  # zeros when there is no latency objective
    bounds_ms: tuple[float, ...]  # the histogram's bounds (+Inf not included)
    buckets: np.ndarray  # (seconds, len(bounds_ms)): requests with latency <= bound
    latency_sum_s: np.ndarray

    @property
    def seconds(self) -> int:
        return int(self.requests.size)


def histogram_bounds(objectives: Objectives) -> tuple[float, ...]:
    """:data:`BUCKETS_MS` with the latency objective added, in order."""
    extra = () if objectives.latency_ms is None else (objectives.latency_ms,)
    return tuple(sorted({*BUCKETS_MS, *extra}))


class _Counter:
    """Adds blocks of request arrays into per-second counts."""

    def __init__(self, t0: float, size: int, threshold_ms: float | None, bounds: Sequence[float]):
        self.t0, self.size, self.threshold = t0, size, threshold_ms
        self.bounds = np.asarray(bounds, dtype="float64")
        self.requests = np.zeros(size, np.int64)
        self.errors = np.zeros(size, np.int64)
        self.slow = np.zeros(size, np.int64)
        self.buckets = np.zeros((size, len(bounds)), np.int64)
        self.latency_sum_s = np.zeros(size, np.float64)

    def add(self, arrays: RequestArrays) -> None:
        sec = seconds_of(arrays.end, self.t0)
        keep = sec < self.size  # a request far past the load (clock skew) is left out
        sec, failed, latency = sec[keep], arrays.failed[keep], arrays.latency[keep]
        n = self.size
        self.requests += np.bincount(sec, minlength=n)
        self.errors += np.bincount(sec[failed], minlength=n)
        if self.threshold is not None:
            self.slow += np.bincount(sec[latency > self.threshold], minlength=n)
        for i, bound in enumerate(self.bounds):
            self.buckets[:, i] += np.bincount(sec[latency <= bound], minlength=n)
        finite = np.isfinite(latency)
        self.latency_sum_s += np.bincount(
            sec[finite], weights=latency[finite] / 1000.0, minlength=n
        )


def _size(t0: float, load_end: float, last_end: float | None) -> int:
    last = math.ceil(load_end - t0)
    if last_end is not None and math.isfinite(last_end):
        last = max(last, math.floor(last_end - t0) + 1)
    return int(min(max(last, 0), MAX_DURATION_S))


def fault_start_of(timeline: Sequence[Mapping[str, Any]], t0: float) -> float | None:
    """The first fault's start in seconds from ``t0`` (None without a fault)."""
    windows = fault_windows(timeline)
    return None if not windows else float(windows[0][0]) - t0


def run_slis(
    requests: pd.DataFrame | Any,
    timeline: Sequence[Mapping[str, Any]],
    slos: Any,
    timeout_ms: float,
    blocks: Iterable[RequestArrays] | None = None,
) -> RunSLIs:
    """The per-second SLIs of a run: ``requests`` is the frame of
    :func:`~harness.scoring.slis.read_requests` or a log read in parts (anything with a
    length and ``time_range()``), whose request arrays ``blocks`` then gives."""
    t0, load_end = run_window(requests, timeline)
    objectives = objectives_of(slos)
    bounds = histogram_bounds(objectives)
    if isinstance(requests, pd.DataFrame):
        last_end = float(requests["end"].max()) if len(requests) else None
        blocks = [RequestArrays.build(requests, timeout_ms, slos)] if len(requests) else []
    else:
        last_end = requests.time_range()[1] if len(requests) else None
    counter = _Counter(t0, _size(t0, load_end, last_end), objectives.latency_ms, bounds)
    for arrays in blocks or ():
        counter.add(arrays)
    return RunSLIs(
        t0=t0,
        run_s=max(load_end - t0, 0.0),
        fault_start_s=fault_start_of(timeline, t0),
        objectives=objectives,
        requests=counter.requests,
        errors=counter.errors,
        slow=counter.slow,
        bounds_ms=bounds,
        buckets=counter.buckets,
        latency_sum_s=counter.latency_sum_s,
    )
