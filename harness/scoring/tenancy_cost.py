"""What each tenant of a tenancy run paid for, used and was refused: GPU-seconds, cost,
utilization, capacity denied by its quota, admission denials and VPA-style recreations.

Why a module of its own: "are we paying for GPUs we do not use?" is asked per team, and the
answer depends on the sharing mode (a MIG slice bills a fraction of a GPU, a time-sliced
replica its contract's share), so it is computed from the run's timeline and telemetry with
the layout the run deployed from (:func:`harness.config.tenancy_layout.layout`).

Definitions (all within the load: from ``t0`` to the load end):

- **Ready span** of a replica: from its ``replica_ready`` event to the next
  ``replica_unready``, ``replica_exit`` or ``replica_recreated`` of the same id (or the load
  end); spans that began before ``t0`` count from ``t0``.
- **Share** of a replica: the ``share`` of the layout slot it runs on (its view node, from
  ``details.node`` of ``replica_ready``, else the longest view-node prefix of its id).
- **GPU-seconds allocated** = sum over the tenant's replicas of Ready seconds x share.
- **GPU-seconds used**: with GPU telemetry (``gpuN`` ``utilization_pct`` samples during the
  load; ``source`` "gpu"): allocated x the mean utilization of the replica's device during
  its Ready spans (the device's, shared by every tenant on it: NVML has no per-process
  utilization). On the CPU stand-in (``source`` "cpu"): per replica, Ready seconds x
  min(share, mean ``cpu_pct`` / 100 / cores of its pool node), the cores being the pool
  node's pinned ``cpus`` (1 when unpinned): the part of the node it kept busy, capped at what
  it is billed for (a time-sliced tenant may borrow an idle neighbour's share; it is not
  billed for it, and its utilization shows at most 100%). A replica without samples counts
  as unused and is named in ``note``.
- **Idle** = allocated - used; **utilization %** = 100 x used / allocated (null when nothing
  was allocated); ``wasted`` when under :data:`WASTE_PCT` (the rule of thumb: below 60% the
  money is wasted). **Cost** = ``slos.price_per_gpu_hour`` of the tenant x allocated / 3600
  (``idle_cost`` the same of idle); null without a price.
- **Denied capacity** (``quota_refused`` events): ``refusals`` (events) and
  ``replica_seconds_denied`` = sum over refusals of (``wanted`` - ``quota``) x the time until
  the tenant's next refusal, else the load end.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from harness.config import HarnessSpec
from harness.config.tenancy_layout import Slot, TenantLayout, layout, tenant_of
from harness.scoring.tenancy_view import event_tenant

#: Utilization below this percentage: GPU capacity paid for and left idle.
WASTE_PCT = 60.0

_ENDS = ("replica_unready", "replica_exit", "replica_recreated")
_GPU_SOURCE = re.compile(r"^gpu(\d+)$")


def _num(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def ready_spans(
    events: Sequence[Mapping[str, Any]], t0: float, load_end: float
) -> dict[str, list[tuple[float, float]]]:
    """Each replica's Ready spans within ``[t0, load_end]`` (see module), by replica id."""
    open_at: dict[str, float] = {}
    spans: dict[str, list[tuple[float, float]]] = {}
    for e in sorted(events, key=lambda e: float(e["time"])):
        kind, rid, at = e.get("kind"), str(e.get("target", "")), float(e["time"])
        if kind == "replica_ready" and rid not in open_at:
            open_at[rid] = at
            spans.setdefault(rid, [])
        elif kind in _ENDS and rid in open_at:
            spans[rid].append((open_at.pop(rid), at))
    for rid, began in open_at.items():
        spans[rid].append((began, load_end))
    out: dict[str, list[tuple[float, float]]] = {}
    for rid, items in spans.items():
        clipped = [(max(a, t0), min(b, load_end)) for a, b in items]
        out[rid] = [(a, b) for a, b in clipped if b > a]
    return out


def _ready_nodes(events: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    """The view node each replica turned Ready on (its last ``replica_ready``)."""
    out: dict[str, str] = {}
    for e in events:
        node = (e.get("details") or {}).get("node")
        if e.get("kind") == "replica_ready" and isinstance(node, str):
            out[str(e.get("target", ""))] = node
    return out


def slot_of(replica: str, node: str | None, tenant: TenantLayout) -> Slot | None:
    """The layout slot a replica runs on: its view node, else the longest view name its id
    starts with (``<view>-<i>``)."""
    if node is not None:
        try:
            return tenant.slot(node)
        except KeyError:
            pass
    best = [s for s in tenant.slots if replica.startswith(s.view + "-")]
    return max(best, key=lambda s: len(s.view)) if best else None


def _device_index(device: str) -> int | None:
    if device == "cpu":
        return None
    return int(device.split(":", 1)[1]) if ":" in device else 0


def _mean_in(samples: pd.DataFrame, spans: list[tuple[float, float]]) -> float | None:
    if samples.empty or not spans:
        return None
    times = samples["time"]
    inside = pd.Series(False, index=samples.index)
    for a, b in spans:
        inside |= (times >= a) & (times <= b)
    picked = samples.loc[inside, "value"]
    return float(picked.mean()) if len(picked) else None


def _samples(telemetry: pd.DataFrame | None, t0: float, load_end: float) -> pd.DataFrame:
    if telemetry is None or telemetry.empty:
        return pd.DataFrame(columns=["time", "source", "metric", "value"])
    within = (telemetry["time"] >= t0) & (telemetry["time"] <= load_end)
    return telemetry.loc[within & telemetry["metric"].isin(["utilization_pct", "cpu_pct"])]


def tenant_costs(
    spec: HarnessSpec,
    events: Sequence[Mapping[str, Any]],
    telemetry: pd.DataFrame | None,
    t0: float,
    load_end: float,
) -> dict[str, dict[str, Any]]:
    """Per tenant: GPU-seconds allocated, used and idle, utilization, cost (see module)."""
    assert spec.tenancy is not None and spec.platform is not None
    places = layout(spec.tenancy, spec.platform)  # type: ignore[arg-type]
    names = spec.tenancy.names()
    pool_cores = {n.name: len(n.cpus) if n.cpus else 1 for n in spec.platform.nodes}  # type: ignore[union-attr]
    samples = _samples(telemetry, t0, load_end)
    gpu_util = samples[
        (samples["metric"] == "utilization_pct")
        & samples["source"].astype("str").str.match(_GPU_SOURCE)
    ]
    source = "gpu" if len(gpu_util) else "cpu"
    cpu = samples[samples["metric"] == "cpu_pct"]
    spans = ready_spans(events, t0, load_end)
    nodes = _ready_nodes(events)
    out: dict[str, dict[str, Any]] = {}
    for tenant in spec.tenancy.tenants:
        mine = places[tenant.name]
        replicas: dict[str, dict[str, Any]] = {}
        unsampled: list[str] = []
        for rid, items in sorted(spans.items()):
            if tenant_of(rid, names) != tenant.name:
                continue
            slot = slot_of(rid, nodes.get(rid), mine)
            if slot is None:
                continue
            ready_s = sum(b - a for a, b in items)
            used: float | None
            if source == "gpu":
                index = _device_index(slot.device)
                series = gpu_util[gpu_util["source"] == f"gpu{index}"]
                util = _mean_in(series, items)
                used = None if util is None else ready_s * slot.share * min(util, 100.0) / 100.0
            else:
                busy = _mean_in(cpu[cpu["source"] == rid], items)
                cores = pool_cores.get(slot.node, 1)
                used = None if busy is None else ready_s * min(slot.share, busy / 100.0 / cores)
            if used is None:
                unsampled.append(rid)
            replicas[rid] = {
                "node": slot.view,
                "share": slot.share,
                "ready_s": ready_s,
                "gpu_seconds_allocated": ready_s * slot.share,
                "gpu_seconds_used": used,
            }
        out[tenant.name] = _totals(replicas, unsampled, source, tenant.slos.price_per_gpu_hour)
    return out


def _totals(
    replicas: dict[str, dict[str, Any]], unsampled: list[str], source: str, price: float | None
) -> dict[str, Any]:
    allocated = sum(r["gpu_seconds_allocated"] for r in replicas.values())
    used = sum(r["gpu_seconds_used"] or 0.0 for r in replicas.values())
    idle = max(0.0, allocated - used)
    util = 100.0 * used / allocated if allocated > 0 else None
    sampled = len(replicas) > len(unsampled)
    result: dict[str, Any] = {
        "source": source,
        "source_note": (
            "GPU utilization from NVML (the device's, shared by its tenants)"
            if source == "gpu"
            else "CPU stand-in: replica CPU busy against its pool node's cores"
        ),
        "replica_seconds_ready": sum(r["ready_s"] for r in replicas.values()),
        "gpu_seconds_allocated": allocated,
        "gpu_seconds_used": used if sampled else None,
        "gpu_seconds_idle": idle if sampled else None,
        "utilization_pct": util if sampled else None,
        "price_per_gpu_hour": price,
        "cost": None if price is None else price * allocated / 3600.0,
        "idle_cost": None if price is None or not sampled else price * idle / 3600.0,
        "wasted": bool(sampled and util is not None and util < WASTE_PCT),
        "replicas": replicas,
    }
    if unsampled:
        result["note"] = "no utilization samples for " + ", ".join(unsampled)
    if not replicas:
        result["note"] = "no replica of this tenant was Ready during the load"
    return result


def _tenant(event: Mapping[str, Any], names: list[str]) -> str | None:
    """The tenant of an event: ``details.tenant``, else its target (a tenant or one of its
    replicas)."""
    found = event_tenant(event)
    if found is not None:
        return found
    target = str(event.get("target", ""))
    return target if target in names else tenant_of(target, names)


def denied_capacity(
    events: Sequence[Mapping[str, Any]], names: list[str], t0: float, load_end: float
) -> dict[str, dict[str, Any]]:
    """Per tenant: quota refusals and the replica-seconds they denied (see module)."""
    out: dict[str, dict[str, Any]] = {}
    refused = sorted(
        (e for e in events if e.get("kind") == "quota_refused"), key=lambda e: float(e["time"])
    )
    for name in names:
        mine = [e for e in refused if _tenant(e, names) == name]
        denied = 0.0
        for i, e in enumerate(mine):
            d = e.get("details") or {}
            wanted, quota = _num(d.get("wanted")), _num(d.get("quota"))
            until = float(mine[i + 1]["time"]) if i + 1 < len(mine) else load_end
            held = max(0.0, min(until, load_end) - float(e["time"]))
            if wanted is not None and quota is not None:
                denied += max(0.0, wanted - quota) * held
        last = (mine[-1].get("details") or {}) if mine else {}
        out[name] = {
            "refusals": len(mine),
            "replica_seconds_denied": denied,
            "first_s": float(mine[0]["time"]) - t0 if mine else None,
            "max_wanted": max(
                (w for e in mine if (w := _num((e.get("details") or {}).get("wanted")))),
                default=None,
            ),
            "quota": _num(last.get("quota")),
        }
    return out


def admission_denials(
    events: Sequence[Mapping[str, Any]], names: list[str], t0: float
) -> dict[str, dict[str, Any]]:
    """Per tenant: ``admission_denied`` events, by rule, and the replicas denied."""
    out: dict[str, dict[str, Any]] = {}
    denied = [e for e in events if e.get("kind") == "admission_denied"]
    for name in names:
        mine = sorted((e for e in denied if _tenant(e, names) == name), key=lambda e: e["time"])
        rules: dict[str, int] = {}
        for e in mine:
            rule = str((e.get("details") or {}).get("rule") or "unknown")
            rules[rule] = rules.get(rule, 0) + 1
        out[name] = {
            "denials": len(mine),
            "rules": rules,
            "replicas": sorted({str(e.get("target", "")) for e in mine}),
            "first_s": float(mine[0]["time"]) - t0 if mine else None,
        }
    return out


def recreations(
    events: Sequence[Mapping[str, Any]], names: list[str], t0: float
) -> dict[str, list[dict[str, Any]]]:
    """Per tenant: each ``replica_recreated`` (VPA-style resize) with when it was."""
    out: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
    for e in sorted(events, key=lambda e: float(e["time"])):
        if e.get("kind") != "replica_recreated":
            continue
        name = _tenant(e, names)
        if name is None:
            continue
        d = e.get("details") or {}
        out[name].append(
            {
                "replica": str(e.get("target", "")),
                "at_s": float(e["time"]) - t0,
                "memory_mib": _num(d.get("memory_mib")),
                "old_pid": d.get("old_pid"),
                "new_pid": d.get("new_pid"),
            }
        )
    return out
