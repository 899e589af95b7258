"""``GITHUB_ACTIONS=true gpuchaos run`` for real, through ``harness.cli.main``: one short
node-loss run (the shared SHORT_NODE_LOSS figures) whose throughput floor is raised with a
``--var`` so that it misses for sure (others may miss too on a busy machine). It appends
its own summary.md to ``$GITHUB_STEP_SUMMARY`` and prints one ``::error`` annotation per
missed SLO; ``gpuchaos compare`` on the same folder prints its annotations too."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import pytest

from harness.cli import main
from tests.integration.conftest import NODE_LOSS_EXPERIMENT, SHORT_NODE_LOSS

pytestmark = pytest.mark.slow


def _tightenable_experiment(folder: Path) -> Path:
    """The catalog's node-loss experiment with its throughput floor as a configuration value."""
    text = NODE_LOSS_EXPERIMENT.read_text()
    floor = "      throughput_rps: 20 "
    assert floor in text
    text = text.replace(floor, "      throughput_rps: ${throughput_floor} ")
    text = text.replace("configuration:\n", "configuration:\n  throughput_floor: 20\n", 1)
    path = folder / "node-loss-ci.yaml"
    path.write_text(text)
    return path


@pytest.fixture(scope="module")
def github_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int, str, Path]:
    """(run folder, exit code, stdout, step summary file) of one run with throughput >= 500."""
    tmp = tmp_path_factory.mktemp("ci-run")
    summary = tmp / "step_summary.md"
    summary.write_text("# earlier step\n")
    out = tmp / "run"
    args = ["run", str(_tightenable_experiment(tmp)), "--ci", "--out", str(out)]
    for key, value in {**SHORT_NODE_LOSS, "throughput_floor": 500}.items():
        args += ["--var", f"{key}={value}"]
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GITHUB_ACTIONS", "true")
        mp.setenv("GITHUB_STEP_SUMMARY", str(summary))
        mp.delenv("GITHUB_WORKSPACE", raising=False)
        capture = tmp / "stdout.txt"
        with capture.open("w") as f, contextlib.redirect_stdout(f):
            code = main(args)
    return out, code, capture.read_text(), summary


def test_missed_slo_run_appends_its_summary_and_one_error_per_miss(
    github_run: tuple[Path, int, str, Path],
) -> None:
    run_dir, code, stdout, summary = github_run
    assert code == 1, stdout
    card = json.loads((run_dir / "scorecard.json").read_text())
    missed = [e["name"] for e in card["slos"] if not e["passed"]]
    assert "throughput_rps" in missed
    # the step summary: what was there, then the run's own summary.md, once
    assert summary.read_text() == "# earlier step\n" + (run_dir / "summary.md").read_text()
    annotations = [line for line in stdout.splitlines() if line.startswith("::")]
    assert len(annotations) == len(missed)
    titles = [line.split("::")[1] for line in annotations]
    # no file=: the experiment lies outside GITHUB_WORKSPACE, where GitHub could not find it
    assert titles == [f"error title=SLO missed%3A {name}" for name in missed]
    floor = next(x for x in annotations if "SLO missed%3A throughput_rps" in x)
    slo = next(e for e in card["slos"] if e["name"] == "throughput_rps")
    assert floor.endswith(
        f"::node-loss-ci: throughput_rps measured {slo['measured']:.1f} {slo['unit']}, "
        f"objective >= 500 {slo['unit']}"
    )
    assert not any(line.startswith("::notice") for line in annotations)


def test_compare_of_the_run_shows_as_annotations(
    github_run: tuple[Path, int, str, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    run_dir, _, _, _ = github_run
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    assert main(["compare", str(run_dir), str(run_dir)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[-1] == (
        f"::notice title=gpuchaos compare%3A ok::{run_dir.name}: "
        "no regression beyond the thresholds"
    )
    # a baseline whose p99 was a third of this run's: a regression, as an ::error
    card = json.loads((run_dir / "scorecard.json").read_text())
    p99 = card["run"]["p99_latency_ms"]
    card["run"]["p99_latency_ms"] = p99 / 3
    baseline = tmp_path / "scorecard.json"
    baseline.write_text(json.dumps(card))
    assert main(["compare", str(baseline), str(run_dir)]) == 1
    lines = capsys.readouterr().out.splitlines()
    errors = [x for x in lines if x.startswith("::error")]
    assert len(errors) == 1
    assert errors[0].startswith("::error title=Regression%3A p99_latency_ms::")
    assert f"{p99 / 3:g} -> {p99:g}" in errors[0]
