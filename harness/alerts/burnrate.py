"""The SRE workbook's multi-window, multi-burn-rate alerts, scaled to the run, evaluated over
its per-second SLIs (:mod:`harness.alerts.sli`).

The alerts (The Site Reliability Workbook, "Alerting on SLOs", table 5-8), for a 30-day SLO
period, one set per objective (availability and latency):

============  ===========  ============  =========  =========================
severity      long window  short window  burn rate  error budget spent
============  ===========  ============  =========  =========================
page          1 h          5 min         14.4       2% in the long window
page          6 h          30 min        6          5% in the long window
ticket        3 days       6 h           1          10% in the long window
============  ===========  ============  =========  =========================

An alert fires at an evaluation when the bad-event ratio over **both** its windows is
above ``burn_rate x (1 - target)`` (the burn rate that spends the budget that fast).

**Scaling to the run.** A chaos run lasts minutes, not 30 days, so the run is taken as the
SLO period: every window is multiplied by ``run length / 30 days`` and rounded to whole
seconds, with a floor of :data:`MIN_WINDOW_S` seconds (the per-second SLIs cannot resolve
less, and a window of one or two seconds alerts on noise). A 10-minute run gets 1 h -> 5 s
(floor), 6 h -> 5 s, 3 days -> 60 s, 6 h (ticket's short) -> 5 s. Burn-rate thresholds are
not scaled (they are ratios).

**Evaluation** follows Prometheus: every second ``T`` (seconds from ``t0``; the counters'
sample at ``T`` holds the requests that ended before ``t0 + T``), a window of ``w`` seconds
covers the requests that ended in ``[t0 + T - w, t0 + T)``; a window without requests gives
no ratio (no alert). An alert is *firing* at ``T`` when its condition holds (no ``for:``, as
in the workbook), *resolved* at the first ``T`` after it where it no longer holds. **Time to
alert** is measured from the first fault's start to the first firing at or after it (0 when
the alert was already firing then).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from harness.alerts.sli import RunSLIs

#: The SLO period the workbook's windows are written for.
SLO_PERIOD_S = 30 * 86_400
#: The shortest window after scaling, seconds.
MIN_WINDOW_S = 5
#: ``(severity, burn rate, long window s, short window s)`` of the workbook.
WORKBOOK: tuple[tuple[str, float, int, int], ...] = (
    ("page", 14.4, 3_600, 300),
    ("page", 6.0, 21_600, 1_800),
    ("ticket", 1.0, 259_200, 21_600),
)


def duration_text(seconds: int) -> str:
    """A Prometheus duration: ``3d``, ``1h``, ``5m``, ``90s`` -> ``1m30s``."""
    out, left = "", int(seconds)
    for unit, size in (("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1)):
        if left >= size:
            out += f"{left // size}{unit}"
            left %= size
    return out or "0s"


@dataclass(frozen=True)
class BurnRateAlert:
    """One default alert: an objective, a severity, a burn rate and its two windows."""

    slo: str  # "availability" or "latency"
    severity: str
    burn_rate: float
    long_s: int  # the workbook's windows (production)
    short_s: int
    target: float  # share of good events the objective promises

    @property
    def name(self) -> str:
        """``AvailabilityBurnRatePage1h``: objective, severity, production long window."""
        return f"{self.slo.capitalize()}BurnRate{self.severity.capitalize()}" + duration_text(
            self.long_s
        )

    @property
    def threshold(self) -> float:
        """The bad-event ratio above which the alert fires (rounded to 12 digits)."""
        return round(self.burn_rate * (1.0 - self.target), 12)

    def windows(self, run_s: float | None) -> tuple[int, int]:
        """``(long, short)`` seconds: the workbook's, or scaled to a run of ``run_s``."""
        if run_s is None:
            return self.long_s, self.short_s
        return scaled_window(self.long_s, run_s), scaled_window(self.short_s, run_s)


def scaled_window(window_s: int, run_s: float) -> int:
    """``window_s`` of a 30-day period scaled to a run of ``run_s`` seconds (see module)."""
    return max(MIN_WINDOW_S, round(window_s * run_s / SLO_PERIOD_S))


def default_alerts(objectives: Any) -> list[BurnRateAlert]:
    """The workbook's alerts for each objective that is set (an
    :class:`~harness.alerts.sli.Objectives`)."""
    out = []
    for slo, target in (
        ("availability", objectives.availability),
        ("latency", objectives.latency_target if objectives.latency_ms is not None else None),
    ):
        if target is None:
            continue
        out += [
            BurnRateAlert(slo, sev, rate, lo, sh, float(target)) for sev, rate, lo, sh in WORKBOOK
        ]
    return out


def window_ratio(bad: np.ndarray, total: np.ndarray, window_s: int) -> np.ndarray:
    """The bad-event ratio over the last ``window_s`` seconds at each evaluation ``T`` in
    ``0 .. len(total)`` (NaN where the window has no events; ``T = 0`` has no data)."""
    cb = np.concatenate([[0], np.cumsum(bad)])
    ct = np.concatenate([[0], np.cumsum(total)])
    t = np.arange(ct.size)
    lo = np.maximum(t - window_s, 0)
    n_bad, n_all = cb - cb[lo], ct - ct[lo]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n_all > 0, n_bad / np.maximum(n_all, 1), np.nan)


def firing(alert: BurnRateAlert, slis: RunSLIs) -> np.ndarray:
    """Whether ``alert`` (scaled to the run) fires at each evaluation ``T`` in
    ``0 .. slis.seconds``."""
    bad = slis.errors if alert.slo == "availability" else slis.slow
    long_s, short_s = alert.windows(slis.run_s)
    long_r = window_ratio(bad, slis.requests, long_s)
    short_r = window_ratio(bad, slis.requests, short_s)
    with np.errstate(invalid="ignore"):
        return np.asarray((long_r > alert.threshold) & (short_r > alert.threshold), dtype=bool)


def episodes(fires: np.ndarray) -> list[tuple[int, int | None]]:
    """``(first firing T, resolved T or None when still firing at the end)`` of each run of
    ``True`` in ``fires`` (indexed by evaluation time ``T``)."""
    edges = np.diff(np.concatenate([[0], fires.astype(np.int8), [0]]))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    return [
        (int(s), None if int(e) >= fires.size else int(e))
        for s, e in zip(starts, ends, strict=True)
    ]


def outcome(
    spans: list[tuple[int, int | None]], fault_start_s: float | None, evaluations: int
) -> dict[str, Any]:
    """What happened to one alert, from its firing ``spans`` (see :func:`episodes`):
    ``fired``, ``first_firing_s`` and ``resolved_s`` (of the first firing, seconds from
    ``t0``), ``firing_s`` (evaluations firing), ``episodes``, ``fired_before_fault`` and
    ``time_to_alert_s`` (see module)."""
    first = spans[0] if spans else None
    tta = None
    before = False
    if fault_start_s is not None:
        before = any(s < fault_start_s for s, _e in spans)
        after = [(s, e) for s, e in spans if e is None or e > fault_start_s]
        if after:
            tta = round(max(0.0, after[0][0] - fault_start_s), 3)
    return {
        "fired": bool(spans),
        "first_firing_s": None if first is None else first[0],
        "resolved_s": None if first is None else first[1],
        "firing_s": sum((evaluations if e is None else e) - s for s, e in spans),
        "episodes": [[s, e] for s, e in spans],
        "fired_before_fault": before,
        "time_to_alert_s": tta,
    }


def evaluate(slis: RunSLIs) -> list[dict[str, Any]]:
    """Every default alert of the run, scaled and evaluated (see :func:`outcome`), with its
    ``name``, ``slo``, ``severity``, ``burn_rate``, ``threshold``, the workbook's
    ``windows`` and the scaled ``long_window_s`` and ``short_window_s``."""
    out = []
    for alert in default_alerts(slis.objectives):
        long_s, short_s = alert.windows(slis.run_s)
        fires = firing(alert, slis)
        row: dict[str, Any] = {
            "name": alert.name,
            "slo": alert.slo,
            "severity": alert.severity,
            "burn_rate": alert.burn_rate,
            "threshold": alert.threshold,
            "windows": f"{duration_text(alert.long_s)}/{duration_text(alert.short_s)}",
            "long_window_s": long_s,
            "short_window_s": short_s,
        }
        row.update(outcome(episodes(fires), slis.fault_start_s, int(fires.size)))
        out.append(row)
    return out


def _earliest(rows: list[dict[str, Any]], key: str) -> float | None:
    values = [r[key] for r in rows if r.get(key) is not None]
    return min(values) if values else None


def alerts_block(slis: RunSLIs) -> dict[str, Any]:
    """The scorecard's ``alerts``: the scaling (``slo_period_s``, ``run_s``, ``scale``,
    ``min_window_s``), ``fault_start_s``, ``objectives``, ``rules`` (:func:`evaluate`),
    ``fired`` (names), and the headline ``time_to_alert_s`` (any alert) and
    ``time_to_page_s`` (a page), each None when nothing fired after the fault."""
    rows = evaluate(slis)
    pages = [r for r in rows if r["severity"] == "page"]
    return {
        "slo_period_s": SLO_PERIOD_S,
        "run_s": round(slis.run_s, 3),
        "scale": slis.run_s / SLO_PERIOD_S,
        "min_window_s": MIN_WINDOW_S,
        "fault_start_s": None if slis.fault_start_s is None else round(slis.fault_start_s, 3),
        "objectives": slis.objectives.as_dict(),
        "rules": rows,
        "fired": [r["name"] for r in rows if r["fired"]],
        "first_firing_s": _earliest(rows, "first_firing_s"),
        "time_to_alert_s": _earliest(rows, "time_to_alert_s"),
        "time_to_page_s": _earliest(pages, "time_to_alert_s"),
    }
