"""CI-native output (harness/ci.py): workflow-command escaping, the annotations of a run and
of ``gpuchaos compare``, the step summary, and ``--ci`` on the run parser."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest

from harness import ci
from harness.cli import build_parser, main
from harness.compare import compare, parse_thresholds

GITHUB = {"GITHUB_ACTIONS": "true"}


def _unescape_data(text: str) -> str:
    """What GitHub's runner does to a message (the inverse of escape_data)."""
    return text.replace("%0D", "\r").replace("%0A", "\n").replace("%25", "%")


def _unescape_property(text: str) -> str:
    return _unescape_data(text.replace("%3A", ":").replace("%2C", ","))


@pytest.mark.parametrize(
    "text",
    ["plain", "100% done", "%0A is not a newline", "a\nb\r\nc", "a: b, c", "%25%3A%%", ""],
)
def test_escaping_round_trips_as_github_unescapes(text: str) -> None:
    data = ci.escape_data(text)
    prop = ci.escape_property(text)
    assert "\n" not in data and "\r" not in data
    assert not {":", ",", "\n", "\r"} & set(prop)
    assert _unescape_data(data) == text
    assert _unescape_property(prop) == text


def test_escaping_follows_githubs_rules_exactly() -> None:
    assert ci.escape_data("50%\r\nnext") == "50%25%0D%0Anext"
    assert ci.escape_property("a:b,c%") == "a%3Ab%2Cc%25"
    # a message keeps its colons and commas: only properties end at them
    assert ci.escape_data("p99: 1,200 ms") == "p99: 1,200 ms"


def test_annotation_line_shape() -> None:
    line = ci.annotation("error", "p99 over\nlimit", title="SLO missed: p99", file=None)
    assert line == "::error title=SLO missed%3A p99::p99 over%0Alimit"
    assert ci.annotation("notice", "ok") == "::notice::ok"
    assert (
        ci.annotation("warning", "x", title="t", file="e.yaml")
        == "::warning title=t,file=e.yaml::x"
    )


def _card(slos: list[dict[str, Any]], verdict: str = "fail", exit_code: int = 1) -> dict[str, Any]:
    return {
        "verdict": verdict,
        "exit_code": exit_code,
        "slos": slos,
        "score": {"value": 71.5},
        "recovery": {"fault": True, "recovered": True, "time_to_recover_s": 12.0},
        "run": {"requests": 10},
    }


SLO_OK = {"name": "error_rate", "comparator": "<=", "objective": 0.01, "measured": 0.0,
          "unit": "ratio", "passed": True}  # fmt: skip
SLO_P99 = {"name": "p99_latency_ms", "comparator": "<=", "objective": 1000, "measured": 1234.5,
           "unit": "ms", "passed": False}  # fmt: skip
SLO_TPUT = {"name": "throughput_rps", "comparator": ">=", "objective": 20.0, "measured": 7.25,
            "unit": "req/s", "passed": False, "note": "spike"}  # fmt: skip


def test_one_error_per_missed_slo_and_none_for_a_met_one() -> None:
    lines = ci.run_annotations(
        _card([SLO_OK, SLO_P99, SLO_TPUT]), "node-loss", 1, file="experiments/x.yaml"
    )
    assert lines == [
        "::error title=SLO missed%3A p99_latency_ms,file=experiments/x.yaml::node-loss: "
        "p99_latency_ms measured 1234.5 ms, objective <= 1000 ms",
        "::error title=SLO missed%3A throughput_rps,file=experiments/x.yaml::node-loss: "
        "throughput_rps measured 7.2 req/s, objective >= 20 req/s (spike)",
    ]


def test_a_pass_is_one_notice_and_an_exit_2_one_error_naming_it() -> None:
    [ok] = ci.run_annotations(_card([SLO_OK], "pass", 0), "node-loss", 0)
    assert ok.startswith("::notice title=gpuchaos%3A pass::node-loss: all 1 SLOs met")
    assert "recovered in 12 s" in ok
    [bad] = ci.run_annotations(
        _card([SLO_P99], "aborted", 2), "node-loss", 2, error="workload never Ready"
    )
    assert bad.startswith("::error title=gpuchaos%3A run failed (exit 2)::")
    assert bad.endswith("node-loss: the run could not complete: workload never Ready")


def test_annotation_file_is_relative_to_the_workspace(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GITHUB_WORKSPACE", "/w/repo")
    assert ci.annotation_file("experiments/a.yaml") == "experiments/a.yaml"
    assert ci.annotation_file("/w/repo/experiments/a.yaml") == "experiments/a.yaml"
    assert ci.annotation_file("/elsewhere/a.yaml") is None


def _scorecard(p99: float, recover: float, verdict: str = "pass") -> dict[str, Any]:
    return {
        "verdict": verdict,
        "score": {"value": 80.0},
        "recovery": {"recovered": True, "time_to_recover_s": recover},
        "error_budget": {"spent": 0.1},
        "run": {"p99_latency_ms": p99, "goodput_rps": 30.0, "error_rate": 0.0},
    }


def test_compare_annotations_regressions_are_errors_improvements_notices() -> None:
    gates = parse_thresholds([])
    result = compare(_scorecard(400.0, 10.0), _scorecard(900.0, 4.0, "fail"), gates)
    lines = ci.compare_annotations(result, "run-2")
    errors = [x for x in lines if x.startswith("::error")]
    notices = [x for x in lines if x.startswith("::notice")]
    assert errors == [
        "::error title=Regression%3A p99_latency_ms::run-2: p99_latency_ms: 400 -> 900 "
        "(+125.0%25, limit 20%25)",
        "::error title=Regression%3A verdict::run-2: verdict: pass -> fail",
    ]
    assert notices == [
        "::notice title=Improvement%3A time_to_recover_s::run-2: time_to_recover_s "
        "10 s -> 4 s (-60.0%25)"
    ]


def test_compare_without_change_is_one_notice() -> None:
    result = compare(_scorecard(400.0, 10.0), _scorecard(400.0, 10.0), parse_thresholds([]))
    assert ci.compare_annotations(result, "r") == [
        "::notice title=gpuchaos compare%3A ok::r: no regression beyond the thresholds"
    ]


def test_gpuchaos_compare_prints_annotations_only_on_github(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    base, run = tmp_path / "base.json", tmp_path / "run" / "scorecard.json"
    run.parent.mkdir()
    base.write_text(json.dumps(_scorecard(400.0, 10.0)))
    run.write_text(json.dumps(_scorecard(900.0, 10.0)))
    monkeypatch.delenv("GITHUB_ACTIONS", raising=False)
    assert main(["compare", str(base), str(run)]) == 1
    plain = capsys.readouterr().out
    assert "REGRESSION: p99_latency_ms" in plain and "::" not in plain
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    assert main(["compare", str(base), str(run)]) == 1
    out = capsys.readouterr().out
    assert out.startswith(plain)  # the same table, then the annotations
    assert out[len(plain) :].splitlines() == [
        "::error title=Regression%3A p99_latency_ms::run: p99_latency_ms: 400 -> 900 "
        "(+125.0%25, limit 20%25)"
    ]


def test_step_summary_appends_and_skips_without_the_variable(tmp_path: Path) -> None:
    target = tmp_path / "step_summary.md"
    target.write_text("before\n")
    assert ci.append_step_summary("## run", {"GITHUB_STEP_SUMMARY": str(target)}) == target
    assert target.read_text() == "before\n## run\n"
    assert ci.append_step_summary("## run", {}) is None
    missing = tmp_path / "no" / "such" / "dir" / "s.md"
    assert ci.append_step_summary("x", {"GITHUB_STEP_SUMMARY": str(missing)}) is None


def test_report_run_uses_the_run_folders_summary(tmp_path: Path) -> None:
    (tmp_path / "summary.md").write_text("## the report package's summary\n")
    target, out = tmp_path / "step.md", io.StringIO()
    env = {**GITHUB, "GITHUB_STEP_SUMMARY": str(target)}
    card = _card([SLO_P99])
    assert ci.report_run(card, "T", tmp_path, 1, name="n", out=out, env=env)
    assert target.read_text() == "## the report package's summary\n"
    assert out.getvalue().count("::error ") == 1
    assert not ci.report_run(card, "T", tmp_path, 1, name="n", out=out, env={})


def test_report_run_renders_the_summary_when_the_folder_has_none(tmp_path: Path) -> None:
    target = tmp_path / "step.md"
    env = {**GITHUB, "GITHUB_STEP_SUMMARY": str(target)}
    ci.report_run(_card([SLO_P99]), "My title", tmp_path, 1, name="n", out=io.StringIO(), env=env)
    assert "gpuchaos: My title: **FAIL**" in target.read_text()


def test_run_parser_has_ci_flag() -> None:
    args = build_parser().parse_args(["run", "experiments/gpu-node-loss.yaml", "--ci"])
    assert args.ci is True
    assert build_parser().parse_args(["run", "e.yaml"]).ci is False


def test_bad_experiment_is_an_annotation_on_github(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("title: x\nnot: [valid\n")
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    assert main(["run", str(bad), "--ci"]) == 2
    captured = capsys.readouterr()
    [line] = [x for x in captured.out.splitlines() if x.startswith("::")]
    assert line.startswith("::error title=gpuchaos%3A run failed (exit 2)::")
    assert str(bad) in _unescape_data(line)
    assert "gpuchaos: error:" in captured.err  # the one line on stderr stays
