"""GPU figures of the failure-mode faults and the GPU objectives.

Why a module of its own: the same figures must come out of a local run (XIDs injected by
the faults, NVML samples on a real GPU) and a Kubernetes run (DCGM series written as the
same ``telemetry.csv`` rows), so they read only the timeline and the telemetry rows.

Definitions:

- **XIDs seen**: one per ``fault_effect`` event carrying ``xid`` (a fault that stands for an
  XID, e.g. ``poison_replica``, ``lose_gpu``) plus one per ``xid`` row of ``telemetry.csv``
  (``gpuN`` sources: NVML events or DCGM's XID series) between the first event of the run
  and its end. Each code is mapped to its meaning and NVIDIA's action
  (:mod:`harness.report.xid`).
- **GPU unschedulable**: per ``gpu_unhealthy`` event, the seconds until the ``gpu_healthy``
  of the same node (to the load's end when it never came back, marked ``ended: false``).
- **Ready elsewhere**: for the replicas that ran on that node when its GPU was lost (those
  of the ``lose_gpu`` proof), the seconds from ``gpu_unhealthy`` to their first
  ``replica_ready`` on another node; null for a replica that never was.
- **GPU objectives** (``gpu_min_utilization_pct`` ``>=``, ``gpu_max_idle_gpu_s`` ``<=``,
  ``gpu_max_xid_errors`` ``<=``), over the whole load; the utilization ones need GPU
  utilization samples, and without them they are not met, with the note "n/a: no GPU
  telemetry" (a CPU run cannot show it met a GPU utilization objective).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from harness.config import SLOSpec

NO_GPU_NOTE = "n/a: no GPU telemetry (no gpuN utilization_pct samples during the load)"


def _seen_xids(
    timeline: Sequence[Mapping[str, Any]], telemetry: pd.DataFrame | None
) -> list[tuple[float, str, int, str]]:
    # imported here: harness.report's package imports the scorer (a circle at import time)
    from harness.report.xid import xids_from_telemetry, xids_from_timeline

    seen = [(t, where, code, "injected") for t, where, code in xids_from_timeline(timeline)]
    if telemetry is not None and not telemetry.empty:
        rows = telemetry[
            (telemetry["metric"] == "xid")
            & telemetry["source"].astype("str").str.match(r"^gpu\d+$")
        ]
        triples = rows[["time", "source", "value"]].itertuples(index=False)
        seen += [(t, where, code, "telemetry") for t, where, code in xids_from_telemetry(triples)]
    return seen


def _unschedulable(
    timeline: Sequence[Mapping[str, Any]], t0: float, load_end: float
) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for i, event in enumerate(timeline):
        if event.get("kind") != "gpu_unhealthy":
            continue
        node, start = str(event.get("target", "")), float(event.get("time") or 0.0)
        later = timeline[i + 1 :]
        back = next(
            (e for e in later if e.get("kind") == "gpu_healthy" and e.get("target") == node),
            None,
        )
        end = float(back["time"]) if back is not None else load_end
        details = event.get("details") if isinstance(event.get("details"), Mapping) else {}
        replicas = _lost_replicas(later, node)
        elsewhere: dict[str, float | None] = {}
        for rid in replicas:
            ready = next(
                (
                    e
                    for e in later
                    if e.get("kind") == "replica_ready"
                    and e.get("target") == rid
                    and (e.get("details") or {}).get("node") not in (None, node)
                ),
                None,
            )
            elsewhere[rid] = None if ready is None else float(ready["time"]) - start
        out.append(
            {
                "node": node,
                "xid": (details or {}).get("xid"),
                "start_s": start - t0,
                "unschedulable_s": max(0.0, end - start),
                "ended": back is not None,
                "ready_elsewhere_s": elsewhere,
            }
        )
    return out


def _lost_replicas(later: Sequence[Mapping[str, Any]], node: str) -> list[str]:
    """The replicas the lose_gpu fault poisoned on ``node`` (from its proof)."""
    for e in later:
        details = e.get("details")
        if (
            e.get("kind") == "fault_effect"
            and e.get("target") == node
            and isinstance(details, Mapping)
            and details.get("fault") == "lose_gpu"
            and isinstance(details.get("replicas"), Mapping)
        ):
            return sorted(str(r) for r in details["replicas"])
    return []


def gpu_fault_figures(
    timeline: Sequence[Mapping[str, Any]],
    telemetry: pd.DataFrame | None,
    t0: float,
    load_end: float,
) -> dict[str, Any]:
    """``xids`` (one row per code: count, first_s, where, origin, meaning, action, scope),
    ``xid_count`` and ``gpu_unschedulable`` (see module)."""
    from harness.report.xid import xid_table  # see _seen_xids

    seen = _seen_xids(timeline, telemetry)
    return {
        "xid_count": len(seen),
        "xids": xid_table(seen, t0),
        "gpu_unschedulable": _unschedulable(timeline, t0, load_end),
    }


def gpu_slo_entries(slos: SLOSpec, gpu: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The scorecard entries of the GPU objectives that are set, from the ``gpu`` block
    (:func:`~harness.scoring.gpu.gpu_figures` plus :func:`gpu_fault_figures`)."""
    specs = (
        ("gpu_min_utilization_pct", ">=", "%", gpu.get("utilization_pct")),
        ("gpu_max_xid_errors", "<=", "errors", gpu.get("xid_count", 0)),
        ("gpu_max_idle_gpu_s", "<=", "s", gpu.get("idle_gpu_s")),
    )
    entries: list[dict[str, Any]] = []
    for name, comparator, unit, measured in specs:
        objective = getattr(slos, name)
        if objective is None:
            continue
        value = None if measured is None else float(measured)
        if value is None:
            passed = False
        elif comparator == ">=":
            passed = value >= objective
        else:
            passed = value <= objective
        entry: dict[str, Any] = {
            "name": name,
            "objective": float(objective),
            "comparator": comparator,
            "measured": value,
            "unit": unit,
            "window": "run",
            "passed": bool(passed),
        }
        if value is None:
            entry["note"] = NO_GPU_NOTE
        elif name == "gpu_max_xid_errors" and value > objective:
            codes = ", ".join(str(r["xid"]) for r in gpu.get("xids") or [])
            entry["note"] = f"XID {codes} seen (see the XID table for NVIDIA's action)"
        entries.append(entry)
    return entries
