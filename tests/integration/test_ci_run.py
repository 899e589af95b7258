"""``GITHUB_ACTIONS=true gpuchaos run`` for real: the shared short node-loss run of the
end-to-end tests runs as on GitHub Actions (tests/integration/conftest.py), so these read
that run instead of making one of their own. It appends its own summary.md to
``$GITHUB_STEP_SUMMARY`` once, after what an earlier step wrote, and prints one ``::error``
annotation per missed SLO, or one ``::notice`` when every SLO held (on a busy machine the
run may go either way: both are checked against its own scorecard). ``gpuchaos compare`` on
the same folder prints its annotations too. The annotation texts themselves (escaping,
titles, files) are unit-tested in tests/unit/test_ci_output.py."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.cli import main
from tests.integration.conftest import EARLIER_STEP, step_summary_of

pytestmark = pytest.mark.slow


def test_the_run_appends_its_summary_and_one_annotation_per_missed_slo(
    node_loss_run: tuple[Path, int, str],
) -> None:
    run_dir, code, output = node_loss_run
    assert code in (0, 1), output
    card = json.loads((run_dir / "scorecard.json").read_text())
    missed = [e["name"] for e in card["slos"] if not e["passed"]]
    # the step summary: what was there, then the run's own summary.md, once
    summary = step_summary_of(run_dir).read_text()
    assert summary == EARLIER_STEP + (run_dir / "summary.md").read_text()
    annotations = [line for line in output.splitlines() if line.startswith("::")]
    if missed:
        assert code == 1
        titles = [line.split("::")[1] for line in annotations]
        # no file=: the experiment lies outside GITHUB_WORKSPACE, where GitHub could not find it
        assert titles == [f"error title=SLO missed%3A {name}" for name in missed]
        for name in missed:
            line = next(x for x in annotations if f"SLO missed%3A {name}::" in x)
            text = line.split("::", 2)[2]
            assert text.startswith(f"gpu-node-loss: {name} measured ") and ", objective " in text
    else:
        assert code == 0 and len(annotations) == 1, annotations
        assert annotations[0].startswith("::notice title=gpuchaos%3A pass")


def test_compare_of_the_run_shows_as_annotations(
    node_loss_run: tuple[Path, int, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    run_dir, _, _ = node_loss_run
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
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
