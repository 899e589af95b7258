"""The capacity chain of a run: how long each link took from the queue growing to the SLOs
holding again, when capacity had to come from a node pool.

Three scalers must all work when a GPU service meets a spike it cannot absorb: the replica
autoscaler decides in seconds, the replica it adds is Pending (no node has room), the
cluster autoscaler requests a node, the node boots, loads its driver and pulls the image
(minutes), the replica loads its model and turns Ready, and only then do the SLOs hold
again. Read from the timeline (``scale`` events of the replica autoscaler, target
``autoscaler``, and of the cluster autoscaler, target ``cluster-autoscaler``;
``replica_pending``; ``replica_ready``; the spike's ``phase`` event; ``preflight`` events)
and the recovery figures. Each link: ``link``, ``at_s`` (seconds from the load's start) and
``delay_s`` (from the link before it that happened); a link that never happened is left out
of the delays and has ``at_s: null``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

CLUSTER = "cluster-autoscaler"
STAGE_LINKS = {"boot": "node booted", "driver": "GPU driver loaded", "image_pull": "image pulled"}


def _time(event: Mapping[str, Any]) -> float | None:
    t = event.get("time")
    return float(t) if isinstance(t, int | float) and not isinstance(t, bool) else None


def _details(event: Mapping[str, Any]) -> Mapping[str, Any]:
    d = event.get("details")
    return d if isinstance(d, Mapping) else {}


def _first(
    timeline: Sequence[Mapping[str, Any]], after: float, test: Any
) -> Mapping[str, Any] | None:
    hits = [e for e in timeline if (_time(e) or -1.0) >= after and test(e)]
    return min(hits, key=lambda e: _time(e) or 0.0) if hits else None


def _cluster(action: str, node: str | None = None) -> Any:
    def test(e: Mapping[str, Any]) -> bool:
        d = _details(e)
        return (
            e.get("kind") == "scale"
            and d.get("scaler") == CLUSTER
            and d.get("action") == action
            and (node is None or d.get("node") == node)
        )

    return test


def capacity_chain(
    timeline: Sequence[Mapping[str, Any]], t0: float, recovery: Mapping[str, Any]
) -> dict[str, Any]:
    """``preflight`` (the checks run before the faults), ``chain`` (the links), ``total_s``
    (from the earliest link that happened to the latest), ``nodes_added``/``nodes_removed`` (pool
    nodes), and ``note`` when there was no pool node to wait for."""
    preflight = [dict(_details(e)) for e in timeline if e.get("kind") == "preflight"]
    spikes = [
        _time(e)
        for e in timeline
        if e.get("kind") == "phase" and _details(e).get("phase") == "spike"
    ]
    faults = [_time(e) for e in timeline if e.get("kind") == "fault_start"]
    starts = [t for t in spikes + faults if t is not None]
    origin = min(starts) if starts else t0
    links: list[tuple[str, float | None, dict[str, Any]]] = []
    links.append(("queue grows (spike or fault starts)", origin, {}))
    decision = _first(
        timeline,
        origin,
        lambda e: (
            e.get("kind") == "scale"
            and e.get("target") == "autoscaler"
            and bool(_details(e).get("added"))
        ),
    )
    d = _details(decision) if decision else {}
    links.append(
        (
            "replica autoscaler scales up",
            _time(decision) if decision else None,
            {"metric": d.get("metric"), "to": d.get("to")} if decision else {},
        )
    )
    pending = _first(timeline, origin, lambda e: e.get("kind") == "replica_pending")
    links.append(
        (
            "replica pending",
            _time(pending) if pending else None,
            {"replica": pending.get("target")} if pending else {},
        )
    )
    requested = _first(timeline, origin, _cluster("node_requested"))
    node = _details(requested).get("node") if requested else None
    links.append(
        ("node requested", _time(requested) if requested else None, {"node": node} if node else {})
    )
    after = (_time(requested) or 0.0) if requested else float("inf")
    for stage, label in STAGE_LINKS.items():
        hit = _first(
            timeline,
            after,
            lambda e, s=stage: _cluster("node_stage", node)(e) and _details(e).get("stage") == s,
        )
        links.append((label, _time(hit) if hit else None, {}))
    ready_node = _first(timeline, after, _cluster("node_ready", node))
    links.append(("node ready", _time(ready_node) if ready_node else None, {}))
    after_ready = (_time(ready_node) or 0.0) if ready_node else float("inf")
    replica = _first(
        timeline,
        after_ready,
        lambda e: e.get("kind") == "replica_ready" and _details(e).get("node") == node,
    )
    links.append(
        (
            "replica Ready on the new node",
            _time(replica) if replica else None,
            {"replica": replica.get("target")} if replica else {},
        )
    )
    slo_at = None
    fault_start = recovery.get("fault_start")
    back = recovery.get("time_to_recover_s")
    if (
        recovery.get("recovered")
        and isinstance(fault_start, int | float)
        and isinstance(back, int | float)
    ):
        slo_at = t0 + float(fault_start) + float(back)
    links.append(("SLOs hold again", slo_at, {}))

    chain: list[dict[str, Any]] = []
    previous: float | None = None
    for name, at, extra in links:
        row: dict[str, Any] = {
            "link": name,
            "at_s": None if at is None else round(at - t0, 3),
            "delay_s": None if at is None or previous is None else round(at - previous, 3) + 0.0,
        }
        row.update(extra)
        chain.append(row)
        if at is not None:
            previous = at
    happened = [r["at_s"] for r in chain if r["at_s"] is not None]
    events = [
        e for e in timeline if e.get("kind") == "scale" and _details(e).get("scaler") == CLUSTER
    ]
    result: dict[str, Any] = {
        "preflight": preflight,
        "chain": chain,
        "total_s": round(max(happened) - min(happened), 3) if len(happened) > 1 else None,
        "nodes_added": sum(1 for e in events if _details(e).get("action") == "node_ready"),
        "nodes_removed": sum(1 for e in events if _details(e).get("action") == "node_removed"),
    }
    if requested is None:
        result["note"] = "no pool node was requested: capacity came from nodes already there"
    return result
