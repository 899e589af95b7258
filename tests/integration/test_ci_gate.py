"""The composite action's shell steps (ci/gate.sh) run for real with bash in a temporary
folder: a fake ``GITHUB_STEP_SUMMARY`` / ``GITHUB_OUTPUT``, and a fake ``gpuchaos`` (and
``gh``) first on PATH that write a run folder and exit with a chosen code. What the steps
write and how they exit is what the action's job shows."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
GATE = ROOT / "ci" / "gate.sh"

#: The fake gpuchaos: records its arguments (and whether it saw GITHUB_STEP_SUMMARY), writes a
#: run folder with summary.md and scorecard.json (run), a game-day folder (gameday), or a
#: comparison table (compare); exits with FAKE_RUN_EXIT / FAKE_COMPARE_EXIT.
FAKE_GPUCHAOS = """#!{python}
import json, os, sys, pathlib
args = sys.argv[1:]
log = pathlib.Path(os.environ["FAKE_LOG"])
with log.open("a") as f:
    seen = "GITHUB_STEP_SUMMARY" in os.environ
    f.write(json.dumps({{"args": args, "summary_env": seen}}) + "\\n")
code = int(os.environ.get("FAKE_RUN_EXIT", "0"))
if args[0] == "run":
    out = pathlib.Path(args[args.index("--out") + 1])
    out.mkdir(parents=True, exist_ok=True)
    verdict = {{0: "pass", 1: "fail", 2: "aborted"}}[code]
    (out / "summary.md").write_text(f"## fake run: **{{verdict.upper()}}** (exit {{code}})\\n")
    (out / "scorecard.json").write_text(json.dumps({{"verdict": verdict, "run": {{}}}}))
    (out / "junit.xml").write_text("<testsuite/>")
elif args[0] == "gameday":
    out = pathlib.Path(args[args.index("--out") + 1])
    out.mkdir(parents=True)
    (out / "summary.md").write_text(f"## fake game day (exit {{code}})\\n")
elif args[0] == "compare":
    code = int(os.environ.get("FAKE_COMPARE_EXIT", "0"))
    print("figure  baseline  run")
    print("REGRESSION: p99_latency_ms" if code == 1 else "no regression beyond the thresholds")
    if os.environ.get("GITHUB_ACTIONS") == "true":
        print("::error title=Regression%3A p99_latency_ms::x" if code == 1 else "::notice::ok")
sys.exit(code)
"""

#: The fake gh: the repository's default branch, two passing runs (the newer one without the
#: artifact), and a download that copies FAKE_BASELINE into --dir.
FAKE_GH = """#!/usr/bin/env bash
echo "gh $*" >>"$FAKE_LOG.gh"
case "$1 $2" in
"api repos/"*) echo main ;;
"run list") printf '%s\\n' 902 901 ;;
"run download")
    [ "$3" = 902 ] && { echo "no artifact" >&2; exit 1; }
    dest=""; prev=""
    for a in "$@"; do [ "$prev" = --dir ] && dest=$a; prev=$a; done
    mkdir -p "$dest" && cp -r "$FAKE_BASELINE"/. "$dest"/ ;;
*) exit 3 ;;
esac
"""


class Gate:
    """A temporary workspace with the fakes, and ci/gate.sh run in it."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.ws = tmp / "workspace"
        (self.ws / "experiments" / "gamedays").mkdir(parents=True)
        (self.ws / "experiments" / "node-loss.yaml").write_text("title: x\n")
        (self.ws / "experiments" / "gamedays" / "weekly.yaml").write_text("title: p\n")
        self.bin = tmp / "bin"
        self.bin.mkdir()
        fake = self.bin / "gpuchaos"
        fake.write_text(FAKE_GPUCHAOS.format(python=sys.executable))
        fake.chmod(0o755)
        gh = self.bin / "gh"
        gh.write_text(FAKE_GH)
        gh.chmod(0o755)
        self.summary = tmp / "step_summary.md"
        self.output = tmp / "github_output"
        self.log = tmp / "calls.jsonl"
        self.runner_temp = tmp / "runner_temp"
        self.runner_temp.mkdir()

    def __call__(self, step: str, **env: str) -> subprocess.CompletedProcess[str]:
        base = {
            "PATH": f"{self.bin}{os.pathsep}{os.environ['PATH']}",
            "HOME": str(self.tmp),
            "GITHUB_ACTIONS": "true",
            "GITHUB_STEP_SUMMARY": str(self.summary),
            "GITHUB_OUTPUT": str(self.output),
            "GITHUB_RUN_ID": "1000",
            "GITHUB_RUN_ATTEMPT": "1",
            "GITHUB_REPOSITORY": "acme/service",
            "GITHUB_WORKFLOW_REF": "acme/service/.github/workflows/gpu-gate.yml@refs/pull/7/merge",
            "RUNNER_TEMP": str(self.runner_temp),
            "FAKE_LOG": str(self.log),
            "GPUCHAOS_EXPERIMENT": "experiments/node-loss.yaml",
        }
        return subprocess.run(
            ["bash", str(GATE), step],
            cwd=self.ws,
            env={**base, **env},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    def outputs(self) -> dict[str, str]:
        if not self.output.exists():
            return {}
        return dict(line.split("=", 1) for line in self.output.read_text().splitlines())

    def calls(self) -> list[dict]:
        return [json.loads(x) for x in self.log.read_text().splitlines()]


@pytest.fixture
def gate(tmp_path: Path) -> Gate:
    if shutil.which("bash") is None:
        pytest.skip("bash is needed (apt-get install -y bash)")
    return Gate(tmp_path)


@pytest.mark.parametrize(("code", "word"), [(0, "PASS"), (1, "FAIL"), (2, "ABORTED")])
def test_run_step_writes_outputs_and_summary_and_verdict_exits_with_the_code(
    gate: Gate, code: int, word: str
) -> None:
    run = gate(
        "run",
        FAKE_RUN_EXIT=str(code),
        GPUCHAOS_VARS="duration_s=40\n\n  # a comment\nwarmup_s=5  \n",
    )
    assert run.returncode == 0, run.stderr  # the run step never fails: upload comes first
    out = gate.outputs()
    assert out == {
        "run-dir": "results/ci/1000-1-node-loss",
        "exit-code": str(code),
        "kind": "run",
        "artifact-name": "gpuchaos-node-loss",
    }
    run_dir = gate.ws / out["run-dir"]
    assert (run_dir / "summary.md").is_file()
    # the step summary is the run's summary.md, once: gpuchaos ran without the variable
    assert gate.summary.read_text() == (run_dir / "summary.md").read_text()
    assert f"**{word}**" in gate.summary.read_text()
    [call] = gate.calls()
    assert call["summary_env"] is False
    assert call["args"] == [
        "run", "experiments/node-loss.yaml", "--ci", "--out", out["run-dir"],
        "--var", "duration_s=40", "--var", "warmup_s=5",
    ]  # fmt: skip
    verdict = gate("verdict", GPUCHAOS_EXIT_CODE=out["exit-code"])
    assert verdict.returncode == code, verdict.stderr
    assert ("passed" if code == 0 else "FAILED") in verdict.stderr


def test_serve_is_off_by_default_and_passed_when_asked(gate: Gate) -> None:
    gate("run", GPUCHAOS_OUT="results/a")
    gate("run", GPUCHAOS_OUT="results/b", GPUCHAOS_SERVE="true")
    gate("run", GPUCHAOS_OUT="results/c", GPUCHAOS_SERVE="127.0.0.1:8765")
    args = [c["args"] for c in gate.calls()]
    assert "--serve" not in args[0]
    assert args[1][-1] == "--serve"
    assert args[2][-2:] == ["--serve", "127.0.0.1:8765"]


def test_a_second_run_into_the_same_place_gets_a_new_folder(gate: Gate) -> None:
    gate("run")
    gate.output.unlink()
    gate("run")
    assert gate.outputs()["run-dir"] == "results/ci/1000-1-node-loss-2"


def test_missing_experiment_is_exit_2_with_an_annotation(gate: Gate) -> None:
    run = gate("run", GPUCHAOS_EXPERIMENT="experiments/nope.yaml")
    assert run.returncode == 0
    assert "::error title=gpuchaos gate::no experiment file 'experiments/nope.yaml'" in run.stdout
    assert gate.outputs() == {"exit-code": "2"}
    assert not gate.log.exists()  # gpuchaos never called
    assert gate("verdict", GPUCHAOS_EXIT_CODE="2").returncode == 2
    assert gate("verdict").returncode == 2  # no exit code at all: the run never happened


def test_a_plan_under_gamedays_runs_gpuchaos_gameday(gate: Gate) -> None:
    run = gate(
        "run",
        GPUCHAOS_EXPERIMENT="experiments/gamedays/weekly.yaml",
        GPUCHAOS_VARS="x=1",
        FAKE_RUN_EXIT="1",
    )
    assert run.returncode == 0, run.stderr
    out = gate.outputs()
    assert [c["args"] for c in gate.calls()] == [
        ["gameday", "experiments/gamedays/weekly.yaml", "--out", out["run-dir"]]
    ]
    assert (out["kind"], out["exit-code"]) == ("gameday", "1")
    # the game-day folder is the folder the artifact uploads, its summary the step summary
    assert (gate.ws / out["run-dir"] / "summary.md").read_text() == "## fake game day (exit 1)\n"
    assert gate.summary.read_text() == "## fake game day (exit 1)\n"
    assert gate.calls()[0]["summary_env"] is False
    assert "vars are ignored for a game-day plan" in run.stdout
    # plan: false runs a file from that folder as an experiment
    gate("run", GPUCHAOS_EXPERIMENT="experiments/gamedays/weekly.yaml", GPUCHAOS_PLAN="false")
    assert gate.calls()[-1]["args"][0] == "run"


def _baseline_folder(gate: Gate) -> Path:
    base = gate.tmp / "artifact"
    base.mkdir()
    (base / "scorecard.json").write_text(json.dumps({"verdict": "pass", "run": {}}))
    return base


@pytest.mark.parametrize(("compare_exit", "final"), [(0, 0), (1, 1), (2, 2)])
def test_baseline_path_compare_and_verdict(gate: Gate, compare_exit: int, final: int) -> None:
    base = _baseline_folder(gate)
    gate("run")
    run_dir = gate.outputs()["run-dir"]
    found = gate("baseline", GPUCHAOS_BASELINE=str(base))
    assert found.returncode == 0, found.stderr
    assert gate.outputs()["baseline-dir"] == str(base)
    cmp = gate(
        "compare",
        GPUCHAOS_BASELINE_DIR=str(base),
        GPUCHAOS_RUN_DIR=run_dir,
        GPUCHAOS_MAX_REGRESSION="20\ntime_to_recover_s=25",
        FAKE_COMPARE_EXIT=str(compare_exit),
    )
    assert cmp.returncode == 0, cmp.stderr
    assert gate.calls()[-1]["args"] == [
        "compare", str(base), run_dir,
        "--max-regression", "20", "--max-regression", "time_to_recover_s=25",
    ]  # fmt: skip
    assert gate.outputs()["compare-exit-code"] == str(compare_exit)
    summary = gate.summary.read_text()
    assert "### Compared with the baseline" in summary
    assert "::" not in summary  # annotations go to the log, not into the summary
    assert (gate.ws / run_dir / "compare.txt").is_file()  # uploaded with the run folder
    if compare_exit == 1:
        assert "REGRESSION: p99_latency_ms" in summary
        assert "::error title=Regression%3A p99_latency_ms::" in cmp.stdout
    verdict = gate("verdict", GPUCHAOS_EXIT_CODE="0", GPUCHAOS_COMPARE_EXIT_CODE=str(compare_exit))
    assert verdict.returncode == final


def test_last_pass_downloads_the_last_passing_runs_artifact(gate: Gate) -> None:
    base = _baseline_folder(gate)
    found = gate("baseline", GPUCHAOS_BASELINE="last-pass", FAKE_BASELINE=str(base))
    assert found.returncode == 0, found.stderr
    dest = gate.outputs()["baseline-dir"]
    assert json.loads((Path(dest) / "scorecard.json").read_text())["verdict"] == "pass"
    assert Path(dest).is_relative_to(gate.runner_temp)
    gh = (gate.tmp / "calls.jsonl.gh").read_text().splitlines()
    assert gh[0] == "gh api repos/acme/service --jq .default_branch"
    assert gh[1].startswith(
        "gh run list --repo acme/service --workflow gpu-gate.yml --branch main --status success"
    )
    # run 902 had no such artifact; 901 did
    assert [x.split()[3] for x in gh[2:]] == ["902", "901"]
    assert all("--name gpuchaos-node-loss" in x for x in gh[2:])


def test_last_pass_without_any_passing_run_is_a_warning_not_a_failure(gate: Gate) -> None:
    (gate.bin / "gh").write_text('#!/usr/bin/env bash\n[ "$1" = api ] && echo main\nexit 0\n')
    found = gate("baseline", GPUCHAOS_BASELINE="last-pass")
    assert found.returncode == 0
    assert "::warning title=gpuchaos gate::no baseline" in found.stdout
    assert "baseline-dir" not in gate.outputs()
    # nothing to compare: compare does nothing, the verdict is the run's
    assert gate("compare", GPUCHAOS_RUN_DIR="results/x").returncode == 0
    assert gate("verdict", GPUCHAOS_EXIT_CODE="0").returncode == 0


def test_missing_baseline_path_fails_the_gate_with_exit_2(gate: Gate) -> None:
    found = gate("baseline", GPUCHAOS_BASELINE="no/such/run")
    assert "::error title=gpuchaos gate::baseline no/such/run" in found.stdout
    assert gate.outputs()["compare-exit-code"] == "2"


def test_all_runs_every_step_in_one_shell_outside_github(gate: Gate) -> None:
    """The GitLab template's `gate.sh all`: no GitHub variables, one exit status."""
    base = _baseline_folder(gate)
    env = {"GITHUB_ACTIONS": "", "GITHUB_STEP_SUMMARY": "", "GITHUB_OUTPUT": ""}
    ok = gate("all", GPUCHAOS_OUT="results/gpuchaos-ci", GPUCHAOS_BASELINE=str(base), **env)
    assert ok.returncode == 0, ok.stderr
    assert [c["args"][0] for c in gate.calls()] == ["run", "compare"]
    assert (gate.ws / "results" / "gpuchaos-ci" / "junit.xml").is_file()
    assert not gate.summary.exists() and not gate.output.exists()
    regressed = gate(
        "all", GPUCHAOS_OUT="results/r2", GPUCHAOS_BASELINE=str(base), FAKE_COMPARE_EXIT="1", **env
    )
    assert regressed.returncode == 1
    assert "a regression against the baseline" in regressed.stderr
    missed = gate("all", GPUCHAOS_OUT="results/r3", FAKE_RUN_EXIT="1", **env)
    assert missed.returncode == 1
    assert "an SLO was missed" in missed.stderr


def test_setup_key_uses_the_makefiles_torch_pin_without_a_driver(gate: Gate) -> None:
    if shutil.which("nvidia-smi"):
        pytest.skip("this machine has nvidia-smi: the Makefile picks plain torch")
    key = gate("setup-key", GPUCHAOS_PYTHON=sys.executable)
    assert key.returncode == 0, key.stderr
    out = gate.outputs()
    makefile = (ROOT / "Makefile").read_text()
    pin = makefile.split(",torch,", 1)[1].split(")", 1)[0]
    assert out["torch"] == pin and pin.startswith("torch==")
    assert out["venv"] == str(ROOT / ".venv")
    assert out["cache-key"].endswith(f"-{pin}")
    assert f"py{sys.version_info[0]}.{sys.version_info[1]}-" in out["cache-key"]
    custom = gate("setup-key", GPUCHAOS_PYTHON=sys.executable, GPUCHAOS_TORCH="torch>=2.4,<3")
    assert custom.returncode == 0
    assert gate.outputs()["cache-key"].endswith("-torch_=2.4__3")  # safe characters
