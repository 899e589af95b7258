"""The typed Scorecard of the pytest plugin on scorecards the real scorer wrote, its
regressions (the logic of ``gpuchaos compare``), the last passing run as a baseline, and the
plugin's hooks in an inline pytest session (the harness itself is stood in for: the real
runs are in tests/integration/test_release_gate.py)."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

import tests.unit.test_scoring_compare as synthetic
from harness.compare import compare, load_scorecard, parse_thresholds
from harness.errors import ScoringError
from harness.pytest_plugin import GpuChaos, _cli_value, _error_line
from harness.rundir import SCORECARD_FILE, TIMELINE_FILE
from harness.scorecard_model import Scorecard
from harness.scoring.rundir import score_run_dir

pytest_plugins = ["pytester"]


def scored_run(
    root: Path,
    folder: str,
    outage: tuple[float, float] | None,
    monkeypatch: pytest.MonkeyPatch,
    *,
    experiment: str = "node-loss",
    start: float = 0.0,
) -> Path:
    """A synthetic run folder of ``experiment`` whose load starts ``start`` seconds after the
    first, scored by the real scorer (scorecard.json written)."""
    t0 = 1_700_000_000.0 + start
    monkeypatch.setattr(synthetic, "T0", t0)
    run = synthetic.make_run(root, folder, outage)
    with (run / TIMELINE_FILE).open("a", encoding="utf-8") as f:  # what the runner adds
        for t, kind in ((-1.0, "run_start"), (61.0, "run_end")):
            f.write(json.dumps({"time": t0 + t, "kind": kind, "target": experiment}) + "\n")
    score_run_dir(run)
    return run


def test_scorecard_fields_come_from_the_scorer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = scored_run(tmp_path, "base", (20.0, 25.0), monkeypatch)
    raw = json.loads((run / SCORECARD_FILE).read_text())
    card = Scorecard.load(run)
    assert card.run_dir == run.resolve() and card.experiment == "node-loss"
    assert (card.verdict, card.exit_code, card.passed) == ("pass", 0, True)
    assert card.score == raw["score"]["value"]
    assert card.p99_latency_ms == raw["run"]["p99_latency_ms"]
    assert card.recovery.recovered and card.recovery.breached
    assert card.recovery.time_to_recover_s == raw["recovery"]["time_to_recover_s"]
    assert card.recovery.requests_lost == raw["recovery"]["requests_lost"]
    assert [s.name for s in card.slos] == [s["name"] for s in raw["slos"]]
    p99 = card.slo("p99_latency_ms")
    assert (p99.measured, p99.objective, p99.comparator, p99.passed) == (
        raw["slos"][0]["measured"], 50000.0, "<=", True,
    )  # fmt: skip
    card.assert_slos()  # a pass raises nothing
    assert Scorecard.load(run / SCORECARD_FILE) == card  # the file works as the folder
    with pytest.raises(KeyError, match=r"no SLO 'ttft_p95_ms' .* p99_latency_ms, error_rate"):
        card.slo("ttft_p95_ms")


def test_assert_slos_lists_every_missed_slo_and_the_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = scored_run(tmp_path, "never", (20.0, 1e9), monkeypatch)
    card = Scorecard.load(run)
    assert card.verdict == "fail" and {s.name for s in card.missed} == {"error_rate", "recovery_s"}
    with pytest.raises(AssertionError) as info:
        card.assert_slos()
    lines = str(info.value).splitlines()
    rate = card.slo("error_rate").measured
    assert lines[0] == "node-loss: 2 SLO(s) missed"
    assert f"  error_rate: measured {rate:g}, objective <= 0.3 (run)" in lines
    assert any(
        ln.startswith("  recovery_s: measured n/a, objective <= 30 s (fault)") for ln in lines
    )
    assert lines[-1] == f"  run folder: {run.resolve()}"


def test_a_fail_without_a_missed_slo_still_fails_assert_slos() -> None:
    card = Scorecard.from_json(
        {"verdict": "fail", "exit_code": 1, "run": {}, "slos": [], "note": "hypothesis"}, "r"
    )
    with pytest.raises(AssertionError, match="not a pass\n  verdict fail: hypothesis"):
        card.assert_slos()
    # a scorecard without most keys reads as missing figures, never a crash
    assert card.recovery.time_to_recover_s is None and card.score is None


def test_regressions_are_compares(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    base = scored_run(tmp_path, "base", (20.0, 25.0), monkeypatch)
    slow = scored_run(tmp_path, "slow", (20.0, 32.0), monkeypatch, start=100)
    card = Scorecard.load(slow)
    expected = compare(load_scorecard(base), load_scorecard(slow), parse_thresholds([]))
    found = card.regressions(base)
    assert found == expected["regressions"] and found
    assert any(r.startswith("time_to_recover_s: 5 -> 12") for r in found)
    # a Scorecard and a scorecard.json are baselines as well as a folder
    assert card.regressions(Scorecard.load(base)) == found
    assert card.regressions(base / SCORECARD_FILE) == found
    # thresholds as gpuchaos compare --max-regression takes them
    assert card.regressions(base, ["time_to_recover_s=500", "1000"]) == []
    assert Scorecard.load(base).regressions(slow) == []  # faster is no regression


def test_last_pass_is_the_newest_earlier_passing_run_of_the_experiment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ok = (20.0, 25.0)
    scored_run(tmp_path, "a", ok, monkeypatch, start=0)
    b = scored_run(tmp_path, "b", ok, monkeypatch, start=100)
    scored_run(tmp_path, "c", (20.0, 1e9), monkeypatch, start=200)  # failed: never a baseline
    scored_run(tmp_path, "d", ok, monkeypatch, start=250, experiment="other")
    scored_run(tmp_path, "f", ok, monkeypatch, start=400)  # later than the run checked
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / SCORECARD_FILE).write_text("[1, 2")
    now = Scorecard.load(scored_run(tmp_path, "e", (20.0, 32.0), monkeypatch, start=300))
    found = now.last_pass()
    assert found is not None and found.run_dir == b
    assert now.regressions("last-pass") == now.regressions(b) != []
    first = Scorecard.load(tmp_path / "a")
    assert first.last_pass() is None
    with pytest.raises(ScoringError, match=f"no earlier passing run of node-loss in {tmp_path}"):
        first.regressions("last-pass")


def test_command_line_and_error_line(tmp_path: Path) -> None:
    runner = GpuChaos(tmp_path, tmp_path, [])
    runner.allow_modules = ["mychaos"]
    cmd = runner.command("x.yaml", tmp_path / "run", duration_s=40, flag=True, empty=None)
    assert cmd[1:] == [
        "-m", "harness", "run", "x.yaml", "--out", str(tmp_path / "run"),
        "--var", "duration_s=40", "--var", "flag=true", "--var", "empty=",
        "--allow-module", "mychaos",
    ]  # fmt: skip
    assert _cli_value(0.5) == "0.5"
    out = "12:00:01 INFO starting\ngpuchaos: error: x.yaml: slos: bad (log: h.log)\n"
    assert _error_line(out) == "gpuchaos: error: x.yaml: slos: bad (log: h.log)"
    assert _error_line("Traceback\nKilled\n") == "gpuchaos: error: Killed"


_GATE = """
import shutil
from pathlib import Path

CARD = Path({card!r})

def fake(gpuchaos, code):
    def execute(cmd):
        out = Path(cmd[cmd.index("--out") + 1])
        out.mkdir(parents=True)
        if code != 2:
            shutil.copy(CARD, out / "scorecard.json")
        return code, "gpuchaos: error: the workload never became Ready\\n" if code == 2 else ""
    gpuchaos._execute = execute

def test_gate(gpuchaos):
    fake(gpuchaos, 1)
    gpuchaos.run("exp.yaml", duration_s=40).assert_slos()

def test_harness_failed(gpuchaos):
    fake(gpuchaos, 2)
    gpuchaos.run("exp.yaml")

def test_passes(gpuchaos):
    fake(gpuchaos, 0)
    assert gpuchaos.run("exp.yaml").exit_code == 1  # the copied card is a fail
"""


def test_plugin_hooks_in_a_pytest_session(
    pytester: pytest.Pytester, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The fixture comes from the installed entry point; --gpuchaos-out keeps the folders;
    a failed test names its run folder in a report section; exit 2 is the CLI's line."""
    never = scored_run(tmp_path, "never", (20.0, 1e9), monkeypatch)
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    pytester.makepyfile(test_gate=_GATE.format(card=str(never / SCORECARD_FILE)))
    out = pytester.path / "kept"
    result = pytester.runpytest(
        "-p", "no:cacheprovider", "--gpuchaos-out", "kept", "--junitxml=junit.xml"
    )  # fmt: skip
    result.assert_outcomes(passed=1, failed=2)
    folders = sorted(p.name for p in out.iterdir())
    assert len(folders) == 3 and all("Z-exp" in f for f in folders)
    text = result.stdout.str()
    assert f"gpuchaos: run folders in {out}" in text
    assert "node-loss: 2 SLO(s) missed" in text and "error_rate: measured" in text
    assert text.count("gpuchaos run folders") == 2  # the two failed tests, not the pass
    result.stdout.fnmatch_lines(
        ["*RunFailed: gpuchaos: error: the workload never became Ready (run folder: *kept/*-exp*"]
    )
    # the JUnit XML of the session names the run folder of each failed test
    junit = ET.parse(pytester.path / "junit.xml").getroot()
    props = {
        case.get("name"): [p.get("value") for p in case.iter("property")]
        for case in junit.iter("testcase")
    }
    assert props["test_passes"] == []
    assert [Path(str(v)).parent for v in props["test_gate"] + props["test_harness_failed"]] == [
        out
    ] * 2
