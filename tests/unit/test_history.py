"""``gpuchaos history`` and ``compare --baseline last-pass`` over real, scored run folders
(tests/support/runs.py: the known 60 s run, moved in time, scored by the real scorer)."""

from __future__ import annotations

import json
import logging
import shutil
from io import StringIO
from pathlib import Path

import pandas as pd
import pytest

from harness.cli import main
from harness.errors import ConfigError
from harness.history import history_root, history_table, parse_since, previous_gameday
from harness.history.baseline import last_pass
from tests.support.runs import PASSING_SLOS, gameday_folder, scored_run

BASE_TIME = pd.Timestamp(1_000_000.0, unit="s", tz="UTC")


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The folders of :func:`results`, scored once per module (scoring is the slow part)."""
    return _build(tmp_path_factory.mktemp("history") / "results")


@pytest.fixture
def results(built: Path, tmp_path: Path) -> Path:
    """results/: two single runs and two game days of plan weekly (the second with a run
    that did not happen), all of gpu-node-loss but one traffic-spike. A copy of its own for
    each test (tests add, rename and break folders)."""
    return Path(shutil.copytree(built, tmp_path / "results", symlinks=True))


def _build(root: Path) -> Path:
    scored_run(root / "20260101T000000Z-gpu-node-loss", slos=PASSING_SLOS)  # day 0: pass
    scored_run(root / "20260102T000000Z-gpu-node-loss", slos=PASSING_SLOS, slow=True, day=1)
    gameday_folder(
        root / "gamedays" / "20260103T000000Z-weekly",
        [("gpu-node-loss", {"slos": PASSING_SLOS, "day": 2, "harness_version": "1.0.0"})],
        started="2026-01-03T00:00:00Z",
    )
    gameday_folder(
        root / "gamedays" / "20260104T000000Z-weekly",
        [
            ("gpu-node-loss", {"slos": PASSING_SLOS, "day": 3, "slow": True}),
            ("traffic-spike", {"day": 3.01}),
        ],
        started="2026-01-04T00:00:00Z",
        not_run=[("replica-hang", "the platform was not healthy within 180 s")],
    )
    return root


def test_history_indexes_runs_and_gameday_runs(results: Path) -> None:
    table = history_table([results])
    assert len(table) == 5  # the run that did not happen has no folder
    assert table["time"].is_monotonic_increasing
    assert table["time"].iloc[0] == BASE_TIME
    assert table["experiment"].tolist() == ["gpu-node-loss"] * 4 + ["traffic-spike"]
    assert table["verdict"].tolist() == ["pass", "fail", "pass", "fail", "fail"]
    assert table["plan"].isna().tolist()[:2] == [True, True]
    assert table["plan"].tolist()[2:] == ["weekly"] * 3
    assert table["harness_version"].tolist()[2] == "1.0.0"  # from the timeline's run_start
    assert table["harness_version"].tolist()[0] == "9.9.9-test"
    # the same experiment file hashes the same; traffic-spike's file has other SLOs
    hashes = table["experiment_sha256"].tolist()
    assert len(set(hashes[:4])) == 1 and hashes[4] != hashes[0] and len(hashes[0]) == 64
    assert table["score"].iloc[0] == pytest.approx(90.4)
    assert table["time_to_recover_s"].iloc[0] == 2.0
    assert table["requests_lost"].iloc[0] == 10
    # every SLO's measured value, NaN where that run had no such SLO
    assert table["slo.p50_latency_ms"].iloc[0] == 50.0
    assert table["slo.p50_latency_ms"].iloc[1] == 5000.0
    assert pd.isna(table["slo.throughput_rps"].iloc[0])
    assert table["slo.throughput_rps"].iloc[4] == pytest.approx(9.800664)


def test_history_filters_by_experiment_and_time(results: Path) -> None:
    spikes = history_table([results], experiment="traffic-spike")
    assert spikes["experiment"].tolist() == ["traffic-spike"]
    later = history_table([results], since=BASE_TIME + pd.Timedelta(days=2))
    assert len(later) == 3 and set(later["plan"]) == {"weekly"}
    assert history_table([results], experiment="nothing").empty


def test_odd_folders_are_skipped_with_a_warning(
    results: Path, caplog: pytest.LogCaptureFixture
) -> None:
    odd = results / "odd"
    (odd / "unscored").mkdir(parents=True)
    (odd / "unscored" / "experiment.yaml").write_text("title: x\n")
    (odd / "garbage").mkdir()
    (odd / "garbage" / "experiment.yaml").write_text("title: x\n")
    (odd / "garbage" / "scorecard.json").write_text("{not json")
    (odd / "foreign").mkdir()
    (odd / "foreign" / "experiment.yaml").write_text("title: x\n")
    (odd / "foreign" / "scorecard.json").write_text(json.dumps({"score": 3}))
    (odd / "listcard").mkdir()
    (odd / "listcard" / "experiment.yaml").write_text("title: x\n")
    (odd / "listcard" / "scorecard.json").write_text("[1, 2]")
    bad_gameday = results / "gamedays" / "20260105T000000Z-broken"
    scored_run(bad_gameday / "01-gpu-node-loss", day=4)
    (bad_gameday / "gameday.json").write_bytes(b"\xff\xfe{")
    with caplog.at_level(logging.WARNING, logger="harness.history"):
        table = history_table([results])
    assert len(table) == 6  # the five, and the run of the broken game day (without a plan)
    assert pd.isna(table["plan"].iloc[-1])
    text = caplog.text
    for name in ("unscored", "garbage", "foreign", "listcard", "gameday.json"):
        assert name in text, name
    assert "gpuchaos score" in text  # the unscored one says what to do


def test_history_command_formats(results: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["history", str(results), "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["verdict"] for r in rows] == ["pass", "fail", "pass", "fail", "fail"]
    assert rows[0]["time"] == "1970-01-12T13:46:40Z"
    assert rows[2]["plan"] == "weekly" and rows[0]["plan"] is None
    assert rows[0]["slo.p50_latency_ms"] == 50.0 and "slo.throughput_rps" not in rows[0]
    assert main(["history", str(results), "--format", "csv", "--experiment", "gpu-node-loss"]) == 0
    csv = pd.read_csv(StringIO(capsys.readouterr().out))
    assert len(csv) == 4 and list(csv.columns[:3]) == ["time", "experiment", "experiment_sha256"]
    assert main(["history", str(results), "--since", "1970-01-15"]) == 0
    out = capsys.readouterr().out
    shown = [line.split()[2] for line in out.splitlines()[1:]]  # after the date and time
    assert shown == ["gpu-node-loss", "traffic-spike"] and "weekly" in out
    assert main(["history", str(results / "gamedays"), "--since", "1d"]) == 0
    assert "no scored runs" in capsys.readouterr().out
    assert main(["history", str(results / "absent")]) == 2
    assert "no such folder" in capsys.readouterr().err
    assert main(["history", str(results), "--since", "someday"]) == 2


def test_parse_since() -> None:
    assert parse_since("2026-11-29") == pd.Timestamp("2026-11-29", tz="UTC")
    assert parse_since("2026-11-29T08:00:00+01:00") == pd.Timestamp("2026-11-29T07:00Z")
    before = pd.Timestamp.now(tz="UTC")
    week_ago = parse_since("7d")
    assert (
        before - pd.Timedelta(days=7)
        <= week_ago
        <= pd.Timestamp.now(tz="UTC") - pd.Timedelta(days=7)
    )
    assert parse_since("12h") > week_ago
    with pytest.raises(ConfigError, match="--since"):
        parse_since("last week")


def test_previous_gameday_of_the_same_plan(results: Path) -> None:
    gamedays = results / "gamedays"
    other = gameday_folder(
        gamedays / "20260103T120000Z-nightly",
        [("gpu-node-loss", {"day": 2.5})],
        plan_name="nightly",
        started="2026-01-03T12:00:00Z",
    )
    second = gamedays / "20260104T000000Z-weekly"
    prev = previous_gameday(second)
    assert prev is not None and prev.folder.name == "20260103T000000Z-weekly"
    assert previous_gameday(gamedays / "20260103T000000Z-weekly") is None  # the first one
    assert previous_gameday(other) is None  # no earlier nightly
    assert history_root(second / "01-gpu-node-loss") == results.resolve()


def test_last_pass_prefers_the_same_experiment_file(results: Path) -> None:
    target = results / "gamedays" / "20260104T000000Z-weekly" / "01-gpu-node-loss"
    pick = last_pass(target)
    # the game day of day 2 passed last, with the same file; the traffic-spike run is later
    assert pick.run_dir.name == "01-gpu-node-loss"
    assert pick.run_dir.parent.name == "20260103T000000Z-weekly"
    assert "same experiment file" in pick.reason
    # a run whose file differs (another title): the last pass is still taken, and said so
    changed = scored_run(results / "20260110T000000Z-gpu-node-loss", day=9, title="Changed")
    pick = last_pass(changed)
    assert pick.run_dir.parent.name == "20260103T000000Z-weekly"
    assert "experiment file differs" in pick.reason
    # only runs before it: the first run has no earlier passing run
    with pytest.raises(ConfigError, match="no passing run of gpu-node-loss"):
        last_pass(results / "20260101T000000Z-gpu-node-loss")
    # --history narrows the search: the single runs alone pass on day 0 only
    singles = results / "singles"
    singles.mkdir()
    for name in ("20260101T000000Z-gpu-node-loss", "20260102T000000Z-gpu-node-loss"):
        (results / name).rename(singles / name)
    pick = last_pass(target, [singles])
    assert pick.run_dir.name == "20260101T000000Z-gpu-node-loss"


def test_compare_baseline_last_pass_command(
    results: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = results / "gamedays" / "20260104T000000Z-weekly" / "01-gpu-node-loss"
    code = main(["compare", "--baseline", "last-pass", str(target)])
    out = capsys.readouterr().out
    assert code == 1, out  # p50 went from 50 ms to 5 s: a regression
    assert "baseline: " in out and "20260103T000000Z-weekly" in out
    assert "verdict  pass -> fail" in out
    # the baseline given by hand still works, and both at once is a usage error
    base = results / "20260101T000000Z-gpu-node-loss"
    assert main(["compare", str(base), str(base)]) == 0
    assert main(["compare", "--baseline", "last-pass", str(base), str(target)]) == 2
    assert "give only RUN" in capsys.readouterr().err
    assert main(["compare", str(base)]) == 2
    assert main(["compare", "--baseline", "last-pass", str(base)]) == 2
    assert "no passing run" in capsys.readouterr().err
