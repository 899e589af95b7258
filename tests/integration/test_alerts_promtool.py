"""``gpuchaos alerts`` with the real promtool (Debian's ``prometheus`` package) and on the
shared real node-loss run: a rule file whose alert fires at a known second, broken rule
files, the PrometheusRule manifest checked by promtool, and the default alerts of a real
run reproduced by Prometheus' engine from the scaled rule file."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from harness.alerts.burnrate import default_alerts, window_ratio
from harness.alerts.promtool import INSTALL_HINT, evaluate_rule_file
from harness.alerts.sli import Objectives, RunSLIs, histogram_bounds
from harness.cli import main
from harness.errors import ConfigError
from tests.integration.conftest import ROOT

PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None, reason=f"promtool not installed: {INSTALL_HINT}"
)

RULES = """
groups:
  - name: team
    rules:
      - alert: HighErrorRatio
        expr: |
          sum(rate(gpuchaos_requests_total{outcome="error"}[5s]))
            / sum(rate(gpuchaos_requests_total[5s])) > 0.1
        for: 2s
        labels: {severity: page}
      - alert: NeverFires
        expr: sum(rate(gpuchaos_requests_total[5s])) > 1000
"""


def gpuchaos(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "harness", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def known_slis() -> RunSLIs:
    """60 s at 10 req/s; 5 errors in seconds 20 and 21; the fault at 20 s."""
    objectives = Objectives(0.99, "error_rate", 1000.0, 0.99, "p99_latency_ms")
    errors = np.zeros(60, np.int64)
    errors[20:22] = 5
    bounds = histogram_bounds(objectives)
    return RunSLIs(
        t0=1_000.0,
        run_s=60.0,
        fault_start_s=20.0,
        objectives=objectives,
        requests=np.full(60, 10, np.int64),
        errors=errors,
        slow=errors.copy(),
        bounds_ms=bounds,
        buckets=np.zeros((60, len(bounds)), np.int64),
        latency_sum_s=np.zeros(60),
    )


@needs_promtool
def test_a_team_rule_fires_at_the_known_second_through_promtool(tmp_path: Path) -> None:
    """The 5 s error ratio is 0.2 from T=22 to 25 (0.1 at T=21 and 26, not above): pending
    at 22, firing after ``for: 2s`` at 24 and 25, resolved at 26: 4 s after the fault."""
    rules = tmp_path / "team.yaml"
    rules.write_text(RULES)
    rows = {r["name"]: r for r in evaluate_rule_file(rules, known_slis())}
    high = rows["HighErrorRatio"]
    assert high["episodes"] == [[24, 26]]
    assert (high["first_firing_s"], high["resolved_s"], high["time_to_alert_s"]) == (24, 26, 4.0)
    assert not rows["NeverFires"]["fired"]


@needs_promtool
def test_a_prometheusrule_manifest_is_valid_for_promtool(tmp_path: Path) -> None:
    from harness.alerts.rules import prometheus_rule

    doc = yaml.safe_load(prometheus_rule(known_slis().objectives, "gpu-node-loss"))
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump(doc["spec"]))
    proc = subprocess.run(
        [str(PROMTOOL), "check", "rules", str(spec)], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert "SUCCESS: 6 rules found" in proc.stdout
    # and the manifest itself is accepted by --rules (its spec.groups are used)
    manifest = tmp_path / "prometheusrule.yaml"
    manifest.write_text(yaml.safe_dump(doc))
    rows = evaluate_rule_file(manifest, known_slis())
    assert [r["name"] for r in rows] == [a.name for a in default_alerts(known_slis().objectives)]
    # production windows over 60 s of data: every window holds the whole run so far, whose
    # error ratio peaks at 10/220 (T=22): over the ticket's 0.01 from T=21, never 0.144
    fired = {r["name"]: r["first_firing_s"] for r in rows if r["fired"]}
    assert fired["AvailabilityBurnRateTicket3d"] == 21
    assert "AvailabilityBurnRatePage1h" not in fired


@needs_promtool
def test_broken_rule_files_are_one_line_naming_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("groups:\n- name: g\n  rules:\n  - alert: X\n    expr: rate(foo[5m] > 1\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml: promtool check rules: .*parse error"):
        evaluate_rule_file(bad, known_slis())
    empty = tmp_path / "empty.yaml"
    empty.write_text("hello: 1\n")
    with pytest.raises(ConfigError, match=r"empty\.yaml: groups: expected a list of rule groups"):
        evaluate_rule_file(empty, known_slis())
    with pytest.raises(ConfigError, match="cannot read"):
        evaluate_rule_file(tmp_path / "missing.yaml", known_slis())


# -- the real run ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def real_alerts(node_loss_run: tuple[Path, int, str], tmp_path_factory: pytest.TempPathFactory):
    """``gpuchaos alerts --format json`` on a copy of the shared run without its scorecard
    (as an old run folder), and the scorecard the run wrote."""
    run_dir, _code, output = node_loss_run
    card = json.loads((run_dir / "scorecard.json").read_text())
    old = tmp_path_factory.mktemp("alerts") / "old-run"
    shutil.copytree(run_dir, old, ignore=shutil.ignore_patterns("scorecard.json", "slis.csv"))
    manifest = old.parent / "manifest.yaml"
    proc = gpuchaos("alerts", str(old), "--format", "json", "--manifest", str(manifest))
    assert proc.returncode == 0, proc.stderr + output
    return old, card, json.loads(proc.stdout), manifest


def test_the_real_runs_scorecard_and_the_command_agree(real_alerts) -> None:
    old, card, out, manifest = real_alerts
    block = card["alerts"]
    assert out["alerts"] == block["rules"]
    # a busy machine may fail the steady state before the method: then there is no fault
    fault = card["recovery"].get("fault_start")
    assert out["fault_start_s"] == block["fault_start_s"]
    assert (fault is None) == (block["fault_start_s"] is None)
    if fault is not None:
        assert block["fault_start_s"] == pytest.approx(fault, abs=1e-3)
    # the windows of a run this short are all at the floor
    assert {(r["long_window_s"], r["short_window_s"]) for r in block["rules"]} == {(5, 5)}
    for row in block["rules"]:
        if row["time_to_alert_s"] is not None:
            first_after = min(
                s for s, e in row["episodes"] if e is None or e > out["fault_start_s"]
            )
            assert row["time_to_alert_s"] == pytest.approx(
                max(0.0, first_after - out["fault_start_s"]), abs=1e-3
            )
    assert yaml.safe_load(manifest.read_text())["kind"] == "PrometheusRule"
    names = {p.name for p in (old / "alerts").iterdir()}
    assert names == {"prometheusrule.yaml", "rules-scaled.yaml", "slis.om"}
    summary = (old / "summary.md").read_text()  # written by the run itself
    assert "| time to alert |" in summary  # with a fault or without one
    assert 'id="alerts"' in (old / "report.html").read_text()


def _near_threshold(slis_bad: np.ndarray, total: np.ndarray, row: dict) -> set[int]:
    """Evaluation seconds where a window's ratio is within float noise of the threshold
    (PromQL divides rates, not counts: the last digit may differ there)."""
    near: set[int] = set()
    for w in (row["long_window_s"], row["short_window_s"]):
        r = window_ratio(slis_bad, total, w)
        near |= set(np.flatnonzero(np.abs(r - row["threshold"]) < 1e-9).tolist())
    return near


@needs_promtool
def test_promtool_reproduces_the_default_alerts_of_the_real_run(
    real_alerts, capsys: pytest.CaptureFixture[str]
) -> None:
    """The scaled rule file, run by Prometheus' engine over the exported series, fires at
    the same seconds as the built-in evaluation; the OpenMetrics file backfills."""
    old, _card, out, _m = real_alerts
    rules = str(old / "alerts" / "rules-scaled.yaml")
    assert main(["alerts", str(old), "--rules", rules, "--format", "json"]) == 0
    by_promtool = {r["name"]: r for r in json.loads(capsys.readouterr().out)["alerts"]}
    from harness.alerts.sli import run_slis
    from harness.scoring.rundir import load_run_spec, read_run_logs

    _doc, spec = load_run_spec(old)
    requests, timeline = read_run_logs(old)
    slis = run_slis(requests, timeline, spec.slos, spec.load.request_timeout_s * 1000)
    for row in out["alerts"]:
        bad = slis.errors if row["slo"] == "availability" else slis.slow
        mine = {
            t for s, e in row["episodes"] for t in range(s, slis.seconds + 1 if e is None else e)
        }
        eps = by_promtool[row["name"]]["episodes"]
        theirs = {t for s, e in eps for t in range(s, slis.seconds + 1 if e is None else e)}
        assert mine ^ theirs <= _near_threshold(bad, slis.requests, row), row["name"]
    blocks = old.parent / "blocks"
    backfill = subprocess.run(
        [
            str(PROMTOOL),
            "tsdb",
            "create-blocks-from",
            "openmetrics",
            str(old / "alerts" / "slis.om"),
            str(blocks),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert backfill.returncode == 0, backfill.stderr
    assert any(blocks.iterdir())


def test_bad_input_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["alerts", str(tmp_path)]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        f"gpuchaos: error: {tmp_path}: not a run folder (no experiment.yaml)"
    ]
