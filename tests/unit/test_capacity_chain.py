"""The capacity chain read from a synthetic timeline with known times: each link's time and
delay, links that never happened, the report's and summary's renderings."""

from __future__ import annotations

from typing import Any

from harness.report.capacity import capacity_html, capacity_summary
from harness.scoring.capacity import capacity_chain

T0 = 1_000.0


def ev(kind: str, at: float, target: str = "", **details: Any) -> dict[str, Any]:
    return {"time": T0 + at, "kind": kind, "target": target, "details": details}


def ca(at: float, action: str, **details: Any) -> dict[str, Any]:
    return ev(
        "scale", at, "cluster-autoscaler", scaler="cluster-autoscaler", action=action, **details
    )


TIMELINE = [
    ev(
        "preflight",
        0.0,
        "node-a",
        line="node-a lost: 1 replica, room for 0 elsewhere",
        in_time=False,
    ),
    ev("phase", 0.0, "load", phase="baseline"),
    ev("phase", 20.0, "load", phase="spike"),
    ev("scale", 25.0, "autoscaler", metric="queue_depth", added=["scaled-0"], to=3),
    ev("replica_pending", 25.0, "scaled-0"),
    ca(30.0, "node_requested", node="gpu-0"),
    ca(90.0, "node_stage", node="gpu-0", stage="boot"),
    ca(135.0, "node_stage", node="gpu-0", stage="driver"),
    ca(210.0, "node_stage", node="gpu-0", stage="image_pull"),
    ca(210.0, "node_ready", node="gpu-0"),
    ev("replica_ready", 5.0, "node-a-0", node="node-a"),  # before: not the new node's
    ev("replica_ready", 233.0, "scaled-0", node="gpu-0"),
    ca(900.0, "node_removed", node="gpu-0"),
]
RECOVERY = {"fault": True, "fault_start": 26.0, "recovered": True, "time_to_recover_s": 214.0}


def test_each_link_and_its_delay() -> None:
    cap = capacity_chain(TIMELINE, T0, RECOVERY)
    rows = [(r["link"], r["at_s"], r["delay_s"]) for r in cap["chain"]]
    assert rows == [
        ("queue grows (spike or fault starts)", 20.0, None),
        ("replica autoscaler scales up", 25.0, 5.0),
        ("replica pending", 25.0, 0.0),
        ("node requested", 30.0, 5.0),
        ("node booted", 90.0, 60.0),
        ("GPU driver loaded", 135.0, 45.0),
        ("image pulled", 210.0, 75.0),
        ("node ready", 210.0, 0.0),
        ("replica Ready on the new node", 233.0, 23.0),
        ("SLOs hold again", 240.0, 7.0),
    ]
    assert cap["total_s"] == 220.0
    assert (cap["nodes_added"], cap["nodes_removed"]) == (1, 1)
    assert cap["chain"][8]["replica"] == "scaled-0" and cap["chain"][3]["node"] == "gpu-0"
    assert cap["preflight"][0]["in_time"] is False and "note" not in cap


def test_links_that_never_happened() -> None:
    timeline = [e for e in TIMELINE if e["target"] != "cluster-autoscaler"]
    cap = capacity_chain(timeline, T0, {"fault": False})
    chain = {r["link"]: r for r in cap["chain"]}
    assert chain["node requested"]["at_s"] is None and chain["SLOs hold again"]["at_s"] is None
    assert chain["replica Ready on the new node"]["at_s"] is None
    assert cap["note"].startswith("no pool node was requested")


def test_report_and_summary() -> None:
    card = {"capacity": capacity_chain(TIMELINE, T0, RECOVERY)}
    html = capacity_html(card)
    assert "<h2>Capacity</h2>" in html and 'class="bad">preflight: node-a lost' in html
    assert "<td>node booted</td><td class='num'>90.0 s</td><td class='num'>60.0 s</td>" in html
    lines = capacity_summary(card)
    assert "| image pulled | 210.0 s | 75.0 s |" in lines
    assert lines[-1] == "Capacity chain: 220.0 s from the first link to the last."
    # SLOs that held before the new replica was Ready say so
    early = dict(RECOVERY, time_to_recover_s=1.0)
    rows = capacity_summary({"capacity": capacity_chain(TIMELINE, T0, early)})
    assert "| SLOs hold again | 27.0 s | 206.0 s earlier |" in rows
    # nothing to show without a preflight or a pool node
    bare = capacity_chain([ev("phase", 0.0, "load", phase="baseline")], T0, {"fault": False})
    assert capacity_html({"capacity": bare}) == "" and capacity_summary({"capacity": bare}) == []
