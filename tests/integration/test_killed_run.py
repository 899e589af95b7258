"""A real `gpuchaos run` SIGKILLed while its load runs: the folder it leaves (records and a
timeline with no end, no journal, no scorecard) scores as `incomplete`, exit 2, never as
PASS or FAIL, with every request it recorded; and nothing it started is left running."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from harness.cli import main
from harness.scoring.rundir import score_run_dir
from tests.integration.conftest import ROOT, gpuchaos_run_cmd
from tests.support.procs import Processes, alive, wait_ready

#: Requests the run must have recorded before it is killed.
RECORDED = 20


def complete_rows(path: Path) -> list[dict[str, str]]:
    """The request rows up to the last line end (what a killed writer got out whole)."""
    if not path.is_file():
        return []
    data = path.read_bytes()
    text = data[: data.rfind(b"\n") + 1].decode("utf-8", errors="replace")
    return [r for r in csv.DictReader(io.StringIO(text, newline="")) if r["start"] and r["end"]]


def events(path: Path) -> list[dict]:
    out = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            continue  # a line the kill cut short
    return out


def test_a_sigkilled_run_scores_incomplete(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    processes: Processes,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("GPUCHAOS_STATE_DIR", str(tmp_path / "state"))  # this run's faults only
    out = tmp_path / "run"
    proc = processes.start(
        gpuchaos_run_cmd(out), cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    family: list[psutil.Process] = []
    try:
        wait_ready(
            proc,
            lambda: len(complete_rows(out / "requests.csv")) >= RECORDED,
            timeout_s=180,
            name="the run",
            until=f"{RECORDED} requests were recorded",
            log=out / "harness.log",
            interval_s=0.1,
        )
        family = psutil.Process(proc.pid).children(recursive=True)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the harness and its process group: no finally
        proc.wait()
    try:
        cleanup = subprocess.run(
            [sys.executable, "-m", "harness", "cleanup", "--all"],
            cwd=ROOT, capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert cleanup.returncode == 0, cleanup.stdout + cleanup.stderr
        left = psutil.wait_procs(family, timeout=15)[1]  # replicas and Locust follow the harness
    finally:
        for p in family:
            with contextlib.suppress(psutil.NoSuchProcess):
                p.kill()  # psutil checks it is still the same process
    assert not [p.pid for p in left if alive(p.pid)], "a process outlived the killed harness"

    kinds = [e["kind"] for e in events(out / "timeline.jsonl")]
    assert "run_start" in kinds and "run_end" not in kinds  # what a SIGKILL leaves
    assert not (out / "scorecard.json").exists()
    recorded = len(complete_rows(out / "requests.csv"))

    card = score_run_dir(out, write=False)
    assert (card["verdict"], card["exit_code"]) == ("incomplete", 2)
    assert "no run_end" in card["incomplete_reason"]
    assert card["run"]["requests"] == recorded >= RECORDED  # nothing recorded is lost
    assert card["run"]["t0"] is not None and card["chaos"] == {"ran": False}

    assert main(["score", str(out)]) == 2
    table, err = capsys.readouterr()
    assert "INCOMPLETE: the run did not finish" in table and "Traceback" not in err
    cli = subprocess.run(
        [sys.executable, "-m", "harness", "score", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert cli.returncode == 2, cli.stdout + cli.stderr
    assert "INCOMPLETE" in cli.stdout and "Traceback" not in cli.stderr
    assert json.loads((out / "scorecard.json").read_text())["verdict"] == "incomplete"
