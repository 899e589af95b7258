"""The blast radius of a tenancy run: what each fault aimed at one tenant cost the others.

Why: the point of choosing a sharing mode is what it protects. A noisy neighbour on a
time-sliced GPU should cost the other tenant requests; the same fault under MIG should cost
it nothing. This module turns that into one figure and one line per (fault, other tenant).

Definitions:

- **Faults**: every ``fault_start`` paired with its ``fault_end``
  (:func:`harness.scoring.spans.fault_pairs`); one that never ended lasts to the load end.
- **Aimed at**: ``details.tenant`` of the ``fault_start``, else its ``details.arguments``'
  ``tenant``, else the ``details.tenant`` of a ``fault_effect`` of the same target within the
  window, else the target itself (a tenant name, or a replica or view node id
  ``<tenant>-...``). A fault aimed at no tenant (a pool node) has no blast radius entry.
- **Windows**, by request end time (as the scorer buckets requests): *inside*
  ``[fault start, fault end)``; *before* ``[previous fault's end, fault start)``, the
  previous end being the latest end of another fault at or before this start, else ``t0``;
  when that window holds no request (faults back to back), the baseline before the first
  fault, ``[t0, first fault start)``.
- For each other tenant: ``failed_requests`` (failed inside, :func:`failed_mask`),
  ``error_rate`` and ``error_rate_before``, ``p99_ms`` and ``p99_before_ms`` (effective
  latency: a failed request counts as at least the tenant's client timeout, as in its SLOs),
  ``p99_delta_ms``, and ``slos_failed``: the tenant's SLOs that failed over the run.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from harness.config.tenancy_layout import tenant_of
from harness.scoring.slis import effective_latency_ms, failed_mask
from harness.scoring.spans import fault_pairs
from harness.scoring.tenancy_view import event_tenant


def aimed_at(
    start: Mapping[str, Any],
    window: tuple[float, float],
    events: Sequence[Mapping[str, Any]],
    names: list[str],
) -> str | None:
    """The tenant a fault was aimed at (see module), or None."""
    found = event_tenant(start)
    if found in names:
        return found
    args = (start.get("details") or {}).get("arguments")
    if isinstance(args, Mapping) and args.get("tenant") in names:
        return str(args["tenant"])
    target = str(start.get("target", ""))
    for e in events:
        if (
            e.get("kind") == "fault_effect"
            and str(e.get("target", "")) == target
            and window[0] <= float(e["time"]) <= window[1]
            and event_tenant(e) in names
        ):
            return event_tenant(e)
    return target if target in names else tenant_of(target, names)


def window_figures(
    requests: pd.DataFrame, lo: float, hi: float, timeout_ms: float
) -> dict[str, Any]:
    """Requests that ended in ``[lo, hi)``: how many, how many failed, error rate, p99."""
    inside = requests[(requests["end"] >= lo) & (requests["end"] < hi)]
    if inside.empty:
        return {"requests": 0, "failed": 0, "error_rate": None, "p99_ms": None}
    failed = failed_mask(inside)
    latency = effective_latency_ms(inside, timeout_ms, failed=failed).to_numpy(dtype="float64")
    latency = latency[np.isfinite(latency)]
    return {
        "requests": len(inside),
        "failed": int(failed.sum()),
        "error_rate": float(failed.mean()),
        "p99_ms": float(np.percentile(latency, 99)) if len(latency) else None,
    }


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100.0 * value:.1f}%"


def blast_line(entry: Mapping[str, Any]) -> str:
    """``teamb's spike_neighbour_memory cost teama 37 failed requests (12.3% errors vs 0.0%
    before), p99 +340 ms``, and the SLOs the victim missed."""
    delta = entry.get("p99_delta_ms")
    p99 = "p99 n/a" if delta is None else f"p99 {delta:+,.0f} ms"
    n = int(entry.get("failed_requests") or 0)
    text = (
        f"{entry['tenant']}'s {entry['fault']} cost {entry['victim']} {n} failed "
        f"request{'' if n == 1 else 's'} ({_pct(entry.get('error_rate'))} errors vs "
        f"{_pct(entry.get('error_rate_before'))} before), {p99}"
    )
    missed = entry.get("slos_failed") or []
    if missed:
        text += f"; {entry['victim']} missed {', '.join(missed)}"
    return text


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def blast_radius(
    events: Sequence[Mapping[str, Any]],
    requests: Mapping[str, pd.DataFrame],
    timeouts_ms: Mapping[str, float],
    cards: Mapping[str, Mapping[str, Any]],
    t0: float,
    load_end: float,
) -> list[dict[str, Any]]:
    """One entry per (fault aimed at a tenant, other tenant), in fault order (see module)."""
    names = list(requests)
    pairs = fault_pairs(events)
    ends = [float(end["time"]) for _, end in pairs if end is not None]
    first = min((float(start["time"]) for start, _ in pairs), default=t0)
    out: list[dict[str, Any]] = []
    for start, end in pairs:
        began = float(start["time"])
        finish = float(end["time"]) if end is not None else load_end
        tenant = aimed_at(start, (began, finish), events, names)
        if tenant is None:
            continue
        before_from = max([t0, *(t for t in ends if t <= began)])
        fault = str((start.get("details") or {}).get("fault") or "fault")
        for victim in names:
            if victim == tenant:
                continue
            frame, timeout = requests[victim], timeouts_ms[victim]
            inside = window_figures(frame, began, finish, timeout)
            baseline = before_from
            before = window_figures(frame, before_from, began, timeout)
            if not before["requests"] and first < began:  # faults back to back
                baseline = t0
                before = window_figures(frame, t0, first, timeout)
            p99, p99_before = _number(inside["p99_ms"]), _number(before["p99_ms"])
            card = cards.get(victim) or {}
            entry: dict[str, Any] = {
                "fault": fault,
                "tenant": tenant,
                "target": str(start.get("target", "")),
                "victim": victim,
                "start_s": began - t0,
                "end_s": None if end is None else finish - t0,
                "before_start_s": baseline - t0,
                "requests": inside["requests"],
                "failed_requests": inside["failed"],
                "error_rate": inside["error_rate"],
                "requests_before": before["requests"],
                "failed_before": before["failed"],
                "error_rate_before": before["error_rate"],
                "p99_ms": p99,
                "p99_before_ms": p99_before,
                "p99_delta_ms": None if p99 is None or p99_before is None else p99 - p99_before,
                "slos_failed": [
                    str(e.get("name")) for e in card.get("slos") or [] if not e.get("passed")
                ],
            }
            entry["line"] = blast_line(entry)
            out.append(entry)
    return out
