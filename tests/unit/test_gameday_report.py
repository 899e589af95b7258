"""The game-day reports (gameday.html, junit.xml, summary.md) of game-day folders assembled
from real scored run folders (tests/support/runs.py), as the game-day runner leaves them."""

from __future__ import annotations

import json
import re
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from harness.cli import main
from harness.errors import ReportError
from harness.gameday.report import write_gameday_reports
from tests.support.runs import PASSING_SLOS, gameday_folder

NOT_RUN_REASON = "the platform was not healthy within 180 s"


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The folders of :func:`gamedays`, scored once per module (scoring is the slow part)."""
    root = tmp_path_factory.mktemp("gameday-report") / "results"
    _build(root / "gamedays")
    return root


@pytest.fixture
def gamedays(built: Path, tmp_path: Path) -> tuple[Path, Path]:
    """Two game days of plan weekly: the first all passed; in the second gpu-node-loss got
    slow (p50 missed), traffic-spike failed its SLOs and replica-hang did not run. A copy of
    its own for each test (tests write reports into them)."""
    root = Path(shutil.copytree(built, tmp_path / "results", symlinks=True)) / "gamedays"
    first, second = sorted(p for p in root.iterdir() if p.is_dir())
    return first, second


def _build(root: Path) -> tuple[Path, Path]:
    first = gameday_folder(
        root / "20260103T000000Z-weekly",
        [
            ("gpu-node-loss", {"slos": PASSING_SLOS, "day": 2, "reports": True}),
            ("traffic-spike", {"slos": PASSING_SLOS, "day": 2.01, "reports": True}),
        ],
        started="2026-01-03T00:00:00Z",
    )
    second = gameday_folder(
        root / "20260110T000000Z-weekly",
        [
            ("gpu-node-loss", {"slos": PASSING_SLOS, "day": 9, "slow": True, "reports": True}),
            ("traffic-spike", {"day": 9.01, "reports": True}),
        ],
        started="2026-01-10T00:00:00Z",
        not_run=[("replica-hang", NOT_RUN_REASON)],
    )
    return first, second


def test_reports_of_a_game_day(gamedays: tuple[Path, Path]) -> None:
    _, folder = gamedays
    written = write_gameday_reports(folder)
    assert [p.name for p in written] == ["junit.xml", "summary.md", "gameday.html"]
    html = (folder / "gameday.html").read_text()
    # the table: a row per experiment, linked to its run's report by a relative path
    rows = re.findall(r'<tr id="exp-(\d+)">(.*?)</tr>', html)
    assert [n for n, _ in rows] == ["1", "2", "3"]
    links = re.findall(r'<a href="([^"]+)">', html)
    assert links[:2] == ["01-gpu-node-loss/report.html", "02-traffic-spike/report.html"]
    assert all((folder / link).is_file() for link in links)
    first_row, second_row, not_run_row = (r for _, r in rows)
    assert "FAILED" in first_row and "not recovered" in first_row
    assert "2.0 s" in second_row and ">10<" in second_row and ">4.2 s<" in second_row
    assert "p50_latency_ms (measured 5000.0 ms, objective &lt;= 250.0 ms)" in first_row
    assert "NOT RUN" in not_run_row and NOT_RUN_REASON in not_run_row
    # two small plots per experiment that ran, fault window shaded; none for the one that did not
    plots = re.findall(r'<svg class="plot" id="([a-z0-9-]+)" viewBox="0 0 460 190"', html)
    assert plots == ["p99-1", "errors-1", "p99-2", "errors-2"]
    assert html.count("lose_node node-a</text>") == 4
    assert "Not run: " + NOT_RUN_REASON in html
    # since the last game day: gpu-node-loss got worse, with compare's figures
    since = html.split("Since the last game day of this plan</h2>")[1].split("<h2>")[0]
    assert "20260103T000000Z-weekly" in since
    assert "verdict pass → fail" in since and "p50_latency_ms" not in since  # not gated
    assert re.search(r"score \d+\.\d+ → \d+\.\d+", since)
    assert "http" not in html.replace("http://www.w3.org/2000/svg", "")  # nothing fetched


def test_junit_has_a_suite_per_experiment(gamedays: tuple[Path, Path]) -> None:
    _, folder = gamedays
    write_gameday_reports(folder)
    root = ET.parse(folder / "junit.xml").getroot()
    suites = root.findall("testsuite")
    assert [s.get("name") for s in suites] == [
        "01-gpu-node-loss",
        "02-traffic-spike",
        "03-replica-hang",
    ]
    node_loss, spike, hang = suites
    # each run's own suite: its SLOs as test cases, the missed ones failures
    card = json.loads((folder / "01-gpu-node-loss" / "scorecard.json").read_text())
    assert int(node_loss.get("tests", "")) == len(card["slos"])
    failed = [c.get("name") for c in node_loss.iter("testcase") if c.find("failure") is not None]
    assert failed == ["slo.p50_latency_ms", "slo.recovery_s"]
    assert int(spike.get("failures", "")) == 3
    # the experiment that did not run: one skipped case with the reason
    (case,) = hang.findall("testcase")
    skipped = case.find("skipped")
    assert skipped is not None and skipped.get("message") == NOT_RUN_REASON
    assert hang.get("skipped") == "1" and hang.get("tests") == "1"
    for key in ("tests", "failures", "errors", "skipped"):
        assert int(root.get(key, "")) == sum(int(s.get(key, "0")) for s in suites), key


def test_summary_markdown(gamedays: tuple[Path, Path]) -> None:
    _, folder = gamedays
    write_gameday_reports(folder)
    text = (folder / "summary.md").read_text()
    assert text.startswith("## ⚠️ gpuchaos game day: The weekly game day: **ERROR** (exit 2)")
    table = [line for line in text.splitlines() if line.startswith("| ")]
    assert table[0].startswith("| # | experiment | result | score | time to recover")
    assert len(table) == 4  # the header and three experiments
    assert "`replica-hang` | ⏭️ not run: " + NOT_RUN_REASON in table[3]
    assert "| not recovered | 10 |" in table[1] and "| 2.0 s | 10 |" in table[2]
    assert "### Since the last game day of this plan (`20260103T000000Z-weekly`)" in text
    assert "- `gpu-node-loss`: score" in text and "worse: verdict pass → fail" in text


def test_an_interrupted_game_day_and_the_first_of_its_plan(tmp_path: Path) -> None:
    folder = gameday_folder(
        tmp_path / "20260103T000000Z-weekly",
        [("gpu-node-loss", {"slos": PASSING_SLOS})],
        not_run=[("traffic-spike", "interrupted (SIGINT)")],
    )
    doc = json.loads((folder / "gameday.json").read_text())
    doc["ended"] = doc["exit_code"] = None
    doc["experiments"][0]["status"] = "aborted"
    doc["experiments"][0]["reason"] = "interrupted (SIGINT)"
    (folder / "gameday.json").write_text(json.dumps(doc))
    (folder / "01-gpu-node-loss" / "scorecard.json").unlink()  # scored again for the report
    write_gameday_reports(folder)
    assert (folder / "01-gpu-node-loss" / "scorecard.json").is_file()
    html = (folder / "gameday.html").read_text()
    assert "UNFINISHED" in html and "not ended" in html
    assert "No earlier game day of the plan <code>weekly</code>" in html
    suite = ET.parse(folder / "junit.xml").getroot().find("testsuite")
    assert suite is not None and suite.get("errors") == "1"
    error = suite.find("testcase[@name='run']/error")
    assert error is not None and error.get("message") == "run aborted: interrupted (SIGINT)"


def test_report_command_on_a_game_day_folder(
    gamedays: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    _, folder = gamedays
    assert main(["report", str(folder)]) == 0
    printed = capsys.readouterr().out.split()
    assert printed == [str(folder / n) for n in ("junit.xml", "summary.md", "gameday.html")]
    # a single run folder still gets its own reports
    run = folder / "01-gpu-node-loss"
    (run / "report.html").unlink()
    assert main(["report", str(run)]) == 0
    assert (run / "report.html").is_file()


def test_not_a_game_day_folder(tmp_path: Path) -> None:
    with pytest.raises(ReportError, match="not a game-day folder"):
        write_gameday_reports(tmp_path)
    (tmp_path / "gameday.json").write_text("[]")
    with pytest.raises(ReportError, match="not a game-day folder"):
        write_gameday_reports(tmp_path)
