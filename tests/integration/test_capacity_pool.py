"""Capacity that comes late, for real: the capstone-slow-capacity experiment with its pool
stages shortened to 0.5 s each. node-a is lost, its replica is Pending (no node has room),
the cluster autoscaler requests a pool node, the node goes through boot, driver and image
pull, the replica starts there, turns Ready and serves requests. The replica autoscaler's
rules are given intervals longer than the run, so the node loss is the only source of
Pending replicas (the rules' own Pending path is covered by tests/unit)."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXPERIMENT = ROOT / "experiments" / "capstone-slow-capacity.yaml"
STAGE_S = 0.5
SHORT = {
    "duration_s": 32,
    "warmup_s": 3,
    "baseline_users": 2,
    "spike_multiplier": 1,
    "spike_start_s": 1,
    "spike_duration_s": 30,
    "spike_wait_s": 1,
    "node_down_s": 20,
    "recovery_wait_s": 5,
    "queue_interval_s": 3600,
    "latency_interval_s": 3600,
    "scan_interval_s": 1,
    "boot_s": STAGE_S,
    "driver_s": STAGE_S,
    "image_pull_s": STAGE_S,
}


@pytest.fixture(scope="module")
def pool_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("capacity") / "run"
    cmd = [sys.executable, "-m", "harness", "run", str(EXPERIMENT), "--out", str(out), "--ci"]
    for k, v in SHORT.items():
        cmd += ["--var", f"{k}={v}"]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    output = proc.stdout + proc.stderr
    assert proc.returncode in (0, 1), output[-3000:]
    return out, output


def _events(run_dir: Path) -> list[dict[str, Any]]:
    lines = (run_dir / "timeline.jsonl").read_text().splitlines()
    return [json.loads(x) for x in lines if x]


def _cluster(events: list[dict[str, Any]], action: str) -> list[dict[str, Any]]:
    return [
        e
        for e in events
        if e["kind"] == "scale"
        and e["target"] == "cluster-autoscaler"
        and e["details"].get("action") == action
    ]


def test_the_preflight_line_is_printed_and_recorded(pool_run: tuple[Path, str]) -> None:
    run_dir, output = pool_run
    line = (
        "node-a lost: 1 replica, room for 0 elsewhere, a pool node would take about 2 s, "
        "the node returns after 20 s; recovery objective 120 s: fits"
    )
    assert f"preflight: {line}" in output
    card = json.loads((run_dir / "scorecard.json").read_text())
    assert [c["line"] for c in card["capacity"]["preflight"]] == [line]


def test_a_pending_replica_brings_a_pool_node_after_its_stages(
    pool_run: tuple[Path, str],
) -> None:
    run_dir, _ = pool_run
    events = _events(run_dir)
    down = next(e for e in events if e["kind"] == "node_down" and e["target"] == "node-a")
    pending = next(e for e in events if e["kind"] == "replica_pending")
    assert pending["target"] == "node-a-0" and pending["time"] >= down["time"]
    requested = _cluster(events, "node_requested")[0]
    node = requested["details"]["node"]
    assert node == "gpu-pool-0" and "node-a-0" in requested["details"]["pending"]
    # Pending from the node's loss on (its replica_pending event is written once the killed
    # processes are reaped, so a scan may come between the two)
    assert requested["time"] >= down["time"]
    stages = [e for e in _cluster(events, "node_stage") if e["details"]["node"] == node]
    assert [e["details"]["stage"] for e in stages] == ["boot", "driver", "image_pull"]
    ready = next(e for e in _cluster(events, "node_ready") if e["details"]["node"] == node)
    # the i-th stage ended no earlier than i stage lengths after the request (an event is
    # written at the model's next tick, so two may come close together on a busy machine)
    for i, e in enumerate(stages, 1):
        assert e["time"] - requested["time"] >= i * STAGE_S - 0.01, e
    assert [e["time"] for e in stages] == sorted(e["time"] for e in stages)
    assert ready["time"] >= stages[-1]["time"]
    assert any(e["kind"] == "node_up" and e["target"] == node for e in events)
    # the scheduler placed the pending replica on the new node; it started and was Ready
    placed = next(
        e
        for e in events
        if e["kind"] == "scale"
        and e["target"] == "scheduler"
        and e["details"].get("rescheduled", {}).get("node-a-0") == node
    )
    assert placed["time"] >= ready["time"]
    started = next(
        e
        for e in events
        if e["kind"] == "replica_ready"
        and e["target"] == "node-a-0"
        and e["details"]["node"] == node
    )
    assert started["time"] > ready["time"]
    back = [e for e in events if e["kind"] == "node_up" and e["target"] == "node-a"]
    # the pool node came before node-a did (else the replica could have gone home)
    assert not back or back[0]["time"] > ready["time"]


def test_the_replica_on_the_pool_node_takes_traffic(pool_run: tuple[Path, str]) -> None:
    run_dir, _ = pool_run
    events = _events(run_dir)
    started = next(
        e
        for e in events
        if e["kind"] == "replica_ready" and e["details"].get("node") == "gpu-pool-0"
    )
    with open(run_dir / "requests.csv", newline="") as fh:
        served = [
            r
            for r in csv.DictReader(fh)
            if r["replica"] == started["target"]
            and r["status"] == "200"
            and float(r["start"]) >= started["time"]
        ]
    assert served, "no request was answered by the replica on the pool node"


def test_the_scorecard_chain_names_each_link(pool_run: tuple[Path, str]) -> None:
    run_dir, _ = pool_run
    card = json.loads((run_dir / "scorecard.json").read_text())
    chain = {row["link"]: row for row in card["capacity"]["chain"]}
    events = _events(run_dir)
    t0 = card["run"]["t0"]
    ready = _cluster(events, "node_ready")[0]
    assert chain["node ready"]["at_s"] == pytest.approx(ready["time"] - t0, abs=0.01)
    for link in ("node requested", "node booted", "GPU driver loaded", "image pulled"):
        assert chain[link]["at_s"] is not None, link
    assert chain["node booted"]["delay_s"] >= STAGE_S - 0.01
    assert chain["replica Ready on the new node"]["replica"] == "node-a-0"
    assert card["capacity"]["nodes_added"] >= 1
    summary = (run_dir / "summary.md").read_text()
    assert "| capacity chain | at | after the link before |" in summary
    assert "Capacity chain:" in summary
