"""`gpuchaos run` end to end with the fault catalog's safety nets: an abort guard stops the
method (rollbacks run, the run is aborted with the reason), and a harness SIGKILLed in the
middle of a fault leaves no process, no stopped replica and no fault state behind."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import yaml

from tests.support.procs import Processes, alive, wait_ready

ROOT = Path(__file__).resolve().parents[2]
SHORT = {
    "duration_s": 40, "warmup_s": 5, "baseline_users": 3, "spike_start_s": 8,
    "spike_duration_s": 20, "fault_delay_s": 3,
}  # fmt: skip


def events(run_dir: Path) -> list[dict]:
    path = run_dir / "timeline.jsonl"
    if not path.is_file():
        return []
    out = []
    for line in path.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            continue
    return out


def run_cmd(experiment: Path, out: Path, **overrides: object) -> list[str]:
    args = [sys.executable, "-m", "harness", "run", str(experiment), "--out", str(out)]
    for k, v in {**SHORT, **overrides}.items():
        args += ["--var", f"{k}={v}"]
    return args


def test_stop_condition_stops_the_method(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GPUCHAOS_STATE_DIR", str(tmp_path / "state"))
    doc = yaml.safe_load((ROOT / "experiments" / "gpu-node-loss.yaml").read_text())
    ext = doc["extensions"][0]
    ext["platform"]["nodes"] = ext["platform"]["nodes"][:1]  # one node: losing it fails all
    ext["stop_conditions"] = [{"metric": "error_rate", "above": 0.5, "for_s": 3}]
    experiment = tmp_path / "single-node-loss.yaml"
    experiment.write_text(yaml.safe_dump(doc, sort_keys=False))
    out = tmp_path / "run"
    t0 = time.monotonic()

    proc = subprocess.run(
        run_cmd(experiment, out, node_down_s=60, recovery_wait_s=5),
        cwd=ROOT, capture_output=True, text=True, timeout=180, check=False,
    )  # fmt: skip

    took = time.monotonic() - t0
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "stop condition error_rate > 0.5 for 3 s tripped" in proc.stderr
    evs = events(out)
    down = next(e for e in evs if e["kind"] == "node_down")
    (abort,) = [e for e in evs if e["kind"] == "abort"]
    assert "stop condition error_rate > 0.5" in abort["details"]["reason"]
    assert 3 <= abort["time"] - down["time"] <= 20  # tripped after for_s, long before 60 s
    # the method stopped and the rollback brought the node back
    assert any(e["kind"] == "node_up" and e["time"] > down["time"] for e in evs)
    assert any(e["kind"] == "fault_end" for e in evs)
    journal = (
        json.loads((out / "journal.json").read_text()) if (out / "journal.json").is_file() else {}
    )
    if journal:
        assert journal["status"] == "interrupted"
        assert [r["activity"]["name"] for r in journal["rollbacks"]] == ["restore-gpu-node"]
    card = json.loads((out / "scorecard.json").read_text())
    assert card["verdict"] == "aborted"
    assert "stop condition" in json.dumps(card)
    assert took < 120


def test_sigkilled_run_leaves_no_process_and_no_stopped_replica(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, processes: Processes
) -> None:
    state = tmp_path / "state"
    monkeypatch.setenv("GPUCHAOS_STATE_DIR", str(state))
    out = tmp_path / "run"
    proc = processes.start(
        run_cmd(ROOT / "experiments" / "replica-hang.yaml", out, hang_s=60, recovery_wait_s=5),
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wait_ready(
            proc, lambda: any(e["kind"] == "fault_effect" for e in events(out)),
            timeout_s=120, name="the run", until="the replica was hung (fault_effect)",
            log=out / "harness.log", interval_s=0.1,
        )  # fmt: skip
        assert list((state / "faults").glob("*.json"))  # the hang is on record
        children = [p.pid for p in psutil.Process(proc.pid).children(recursive=True)]
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    evs = events(out)
    hung = next(e for e in evs if e["kind"] == "fault_effect")["details"]["pid"]
    started = [e["details"]["pid"] for e in evs if e["kind"] in ("replica_start", "load_start")]
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and (
        any(alive(p) for p in children + started) or list((state / "faults").glob("*.json"))
    ):
        time.sleep(0.1)
    assert not [p for p in children + started if alive(p)], "a process outlived the run"
    assert not alive(hung)  # no stopped replica is left
    assert not list((state / "faults").glob("*.json"))  # the reverter closed the record
