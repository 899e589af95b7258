"""`gpuchaos gameday` for real on CPU: three short experiments against one deployment (run
once, shared by the assertions), and a game day interrupted with SIGINT in its second
experiment."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil
import pytest
import yaml

from harness.scoring.rundir import score_run_dir
from tests.support.procs import Processes, alive, wait_ready
from tests.support.tolerant import tolerant_copy

ROOT = Path(__file__).resolve().parents[2]
#: A short spike: 12 s of load after 2 s of warm-up. What the game-day tests check (folders,
#: the contract, one deployment, pids, the interrupt) does not depend on the length of the
#: load, only on each experiment's fault having run its course.
SHORT = {
    "duration_s": 12, "warmup_s": 2, "baseline_users": 2, "spike_start_s": 3,
    "spike_duration_s": 6,
}  # fmt: skip
PLATFORM = {
    "kind": "local",
    "nodes": [
        {"name": "node-a", "device": "cpu", "replicas": 1, "cpus": [0]},
        {"name": "node-b", "device": "cpu", "replicas": 1, "cpus": [1]},
    ],
    "liveness": {"period_s": 1, "timeout_s": 2, "failure_threshold": 3},
}
THREE = [
    {"experiment": "traffic-spike", "vars": {**SHORT, "observe_s": 4}},
    {"experiment": "gpu-node-loss.yaml",  # tolerant copies (tests/support/tolerant.py)
     "vars": {**SHORT, "fault_delay_s": 1, "node_down_s": 3, "recovery_wait_s": 3}},
    {"experiment": "replica-hang.yaml",
     "vars": {**SHORT, "fault_delay_s": 1, "hang_s": 4, "recovery_wait_s": 3}},
]  # fmt: skip
CONTRACT_KEYS = {
    "plan", "plan_name", "title", "plan_sha256", "harness_version", "started", "ended",
    "seed", "deploy_s", "experiments", "exit_code",
}  # fmt: skip
ENTRY_KEYS = {
    "name", "path", "vars", "run_dir", "status", "reason", "exit_code", "reset_s",
    "shared_platform",
}  # fmt: skip


def write_plan(folder: Path, name: str, experiments: list[dict[str, Any]]) -> Path:
    for entry in experiments:
        if entry["experiment"].endswith(".yaml"):
            # a copy whose steady-state check a busy machine passes, or no fault is injected
            tolerant_copy(folder, entry["experiment"].removesuffix(".yaml"))
    plan = {
        "title": f"test game day {name}",
        "workload": {"kind": "llm", "model": "auto", "max_batch_size": 16},
        "platform": PLATFORM,
        "health_gate": {"hold_s": 1, "timeout_s": 90},
        "experiments": experiments,
    }
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(plan, sort_keys=False))
    return path


def events(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    out = []
    for line in path.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            continue
    return out


def started_pids(folder: Path) -> list[int]:
    """Every replica and Locust pid the game day's timelines recorded."""
    pids = []
    for timeline in [folder / "gameday-timeline.jsonl", *folder.glob("*/timeline.jsonl")]:
        for e in events(timeline):
            if e["kind"] in ("replica_start", "load_start") and e["details"].get("pid"):
                pids.append(int(e["details"]["pid"]))
    return pids


def gameday_cmd(plan: Path, out: Path) -> list[str]:
    return [sys.executable, "-m", "harness", "gameday", str(plan), "--out", str(out)]


@pytest.fixture(scope="module")
def three(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int, str]:
    """One real game day of three short experiments: (folder, exit code, output)."""
    tmp = tmp_path_factory.mktemp("gameday")
    out = tmp / "gd"
    env = {"GPUCHAOS_STATE_DIR": str(tmp / "state")}
    proc = subprocess.run(
        gameday_cmd(write_plan(tmp, "three", THREE), out), cwd=ROOT, capture_output=True,
        text=True, timeout=600, check=False, env={**os.environ, **env},
    )  # fmt: skip
    return out, proc.returncode, proc.stdout + proc.stderr


def test_three_experiments_three_scorable_run_folders(three: tuple[Path, int, str]) -> None:
    folder, code, output = three
    assert code in (0, 1), output
    data = json.loads((folder / "gameday.json").read_text())
    names = [e["run_dir"] for e in data["experiments"]]
    assert names == ["01-traffic-spike", "02-gpu-node-loss", "03-replica-hang"]
    for item in data["experiments"]:
        run_dir = folder / item["run_dir"]
        saved = json.loads((run_dir / "scorecard.json").read_text())
        card = score_run_dir(run_dir, write=False)  # re-scorable: the same verdict
        assert card["verdict"] == saved["verdict"] in ("pass", "fail")
        assert item["status"] == {"pass": "passed", "fail": "failed"}[card["verdict"]]
        assert item["exit_code"] == card["exit_code"]
    assert f"results: {folder}" in output


def test_gameday_json_follows_the_contract(three: tuple[Path, int, str]) -> None:
    folder, code, output = three
    data = json.loads((folder / "gameday.json").read_text())
    assert set(data) == CONTRACT_KEYS
    assert data["plan_name"] == "three" and data["title"] == "test game day three"
    assert data["ended"] is not None and data["seed"] is None
    assert data["exit_code"] == code
    assert data["deploy_s"] > 0
    for item in data["experiments"]:
        assert set(item) == ENTRY_KEYS
        assert item["shared_platform"] is True
    resets = [item["reset_s"] for item in data["experiments"]]
    assert resets[0] is None  # the first runs right after the deploy
    assert all(r is not None and r > 0 for r in resets[1:])
    # reset_s is the gap between two runs: from the end of one to the start of the next
    runs = [events(folder / item["run_dir"] / "timeline.jsonl") for item in data["experiments"]]
    for before, after, reset in zip(runs[:-1], runs[1:], resets[1:], strict=True):
        gap = after[0]["time"] - before[-1]["time"]
        assert 0 < reset <= gap
    for name in ("gpu-node-loss", "replica-hang"):
        assert f"gameday: reset before {name}: " in output


def test_one_deployment_and_untouched_replicas_keep_their_pids(
    three: tuple[Path, int, str],
) -> None:
    folder, _, _ = three
    platform = events(folder / "gameday-timeline.jsonl")
    assert [e["details"]["phase"] for e in platform if e["kind"] == "phase"].count("deploy") == 1
    starts = [
        next(e for e in events(folder / d / "timeline.jsonl") if e["kind"] == "run_start")
        for d in ("01-traffic-spike", "02-gpu-node-loss", "03-replica-hang")
    ]
    replicas = [s["details"]["replicas"] for s in starts]
    assert all(s["details"]["shared_platform"] for s in starts)
    # node-b-0 is never faulted: one process through the whole game day
    assert replicas[0]["node-b-0"] == replicas[1]["node-b-0"] == replicas[2]["node-b-0"]
    # node-a-0 went through the spike unharmed, then was lost with its node
    assert replicas[0]["node-a-0"] == replicas[1]["node-a-0"] != replicas[2]["node-a-0"]
    # nothing of it outlived the game day
    assert not [p for p in started_pids(folder) if alive(p)], "a process outlived the game day"


def test_sigint_mid_plan_aborts_the_current_experiment_and_skips_the_rest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, processes: Processes
) -> None:
    state = tmp_path / "state"
    monkeypatch.setenv("GPUCHAOS_STATE_DIR", str(state))
    plan = write_plan(
        tmp_path,
        "interrupted",
        [
            {
                "experiment": "traffic-spike",
                "vars": {
                    **SHORT,
                    "duration_s": 6,
                    "observe_s": 2,
                    "spike_start_s": 2,
                    "spike_duration_s": 3,
                },
            },
            {
                "experiment": "replica-hang.yaml",
                "vars": {**SHORT, "fault_delay_s": 1, "hang_s": 30, "recovery_wait_s": 2},
            },
            {"experiment": "gpu-node-loss", "vars": SHORT},
        ],
    )
    out = tmp_path / "gd"
    proc = processes.start(
        gameday_cmd(plan, out), cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    second = out / "02-replica-hang" / "timeline.jsonl"
    wait_ready(
        proc, lambda: any(e["kind"] == "fault_effect" for e in events(second)),
        timeout_s=300, name="the game day", until="experiment 2 hung its replica",
        log=out / "gameday.log", interval_s=0.2,
    )  # fmt: skip
    children = [p.pid for p in psutil.Process(proc.pid).children(recursive=True)]
    hung = next(e for e in events(second) if e["kind"] == "fault_effect")["details"]["pid"]
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=120) == 2

    data = json.loads((out / "gameday.json").read_text())
    first, current, rest = data["experiments"]
    assert first["status"] in ("passed", "failed")
    assert current["status"] == "aborted" and "interrupted" in current["reason"]
    assert current["exit_code"] == 2
    assert rest["status"] == "not run" and rest["run_dir"] is None
    assert "interrupted" in rest["reason"]
    assert data["exit_code"] == 2 and data["ended"] is not None
    # the interrupted run's folder is scorable: faults reverted, run_end written
    card = score_run_dir(out / "02-replica-hang", write=False)
    assert card["verdict"] == "aborted"
    evs = events(second)
    assert any(e["kind"] == "fault_end" for e in evs) and evs[-1]["kind"] == "run_end"
    # nothing left: processes, the hung replica, fault records
    deadline = time.monotonic() + 15
    pids = children + started_pids(out)
    while time.monotonic() < deadline and any(alive(p) for p in pids):
        time.sleep(0.2)
    assert not [p for p in pids if alive(p)], "a process outlived the game day"
    assert not alive(hung)
    assert not list((state / "faults").glob("*.json"))
