"""The default burn-rate alerts (harness.alerts) on SLIs with known firing times: the
scaling rule, the evaluation, the rule and OpenMetrics text, the scorecard block and its
summary and report rows. Files only; promtool is tests/integration/test_alerts_promtool.py."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from harness.alerts.burnrate import (
    MIN_WINDOW_S,
    SLO_PERIOD_S,
    BurnRateAlert,
    alerts_block,
    default_alerts,
    duration_text,
    episodes,
    firing,
    outcome,
    scaled_window,
    window_ratio,
)
from harness.alerts.openmetrics import le_text, openmetrics_lines, promtool_test_doc
from harness.alerts.promtool import alert_names, firing_times, parse_duration
from harness.alerts.rules import k8s_name, prometheus_rule, rule_groups
from harness.alerts.sli import Objectives, RunSLIs, histogram_bounds, objectives_of
from harness.alerts.view import headline, summary_rows, table_text
from harness.config import SLOSpec
from harness.report.summary import render_summary
from harness.scoring.rundir import load_run_spec, read_run_logs, score_run_dir
from tests.unit.test_report_writers import make_run

OBJ = Objectives(0.99, "error_rate", 1000.0, 0.99, "p99_latency_ms")


def slis_of(
    requests: list[int], errors: list[int], fault: float | None = None, run_s: float = 60.0
) -> RunSLIs:
    """SLIs with the same bad events for both objectives."""
    n = len(requests)
    bounds = histogram_bounds(OBJ)
    return RunSLIs(
        t0=1_000.0,
        run_s=run_s,
        fault_start_s=fault,
        objectives=OBJ,
        requests=np.array(requests, np.int64),
        errors=np.array(errors, np.int64),
        slow=np.array(errors, np.int64),
        bounds_ms=bounds,
        buckets=np.zeros((n, len(bounds)), np.int64),
        latency_sum_s=np.zeros(n),
    )


def by_name(rows: list[dict]) -> dict[str, dict]:
    return {r["name"]: r for r in rows}


# -- scaling ---------------------------------------------------------------------------


def test_a_30_day_run_gets_the_workbooks_windows() -> None:
    alerts = default_alerts(OBJ)
    got = [a.windows(SLO_PERIOD_S) for a in alerts[:3]]
    assert got == [(3_600, 300), (21_600, 1_800), (259_200, 21_600)]
    assert [a.name for a in alerts[:3]] == [
        "AvailabilityBurnRatePage1h",
        "AvailabilityBurnRatePage6h",
        "AvailabilityBurnRateTicket3d",
    ]
    assert [a.threshold for a in alerts[:3]] == [0.144, 0.06, 0.01]


def test_windows_scale_by_run_length_over_30_days_with_a_floor() -> None:
    ten_minutes = 600.0  # 600 / 2,592,000 of each window
    assert scaled_window(259_200, ten_minutes) == 60
    assert scaled_window(21_600, ten_minutes) == MIN_WINDOW_S  # 5 s: exactly the floor
    assert scaled_window(3_600, ten_minutes) == MIN_WINDOW_S  # 0.8 s -> the floor
    day = 86_400.0
    assert scaled_window(3_600, day) == 120 and scaled_window(300, day) == 10
    assert duration_text(259_200) == "3d" and duration_text(90) == "1m30s"


def test_objectives_come_from_availability_else_error_rate_and_the_tail_latency() -> None:
    both = objectives_of(SLOSpec(availability=0.999, error_rate=0.5, p95_latency_ms=300))
    assert (both.availability, both.availability_from) == (0.999, "availability")
    assert (both.latency_ms, both.latency_target, both.latency_from) == (
        300.0,
        0.95,
        "p95_latency_ms",
    )
    only_errors = objectives_of(SLOSpec(error_rate=0.01, p50_latency_ms=100, p99_latency_ms=900))
    assert only_errors.availability == 0.99 and only_errors.latency_ms == 900.0
    none = objectives_of(SLOSpec(throughput_rps=5))
    assert default_alerts(none) == []
    assert 900.0 in histogram_bounds(only_errors)


# -- evaluation ------------------------------------------------------------------------


def test_window_ratio_counts_the_seconds_before_each_evaluation() -> None:
    ratio = window_ratio(np.array([0, 5, 0]), np.array([10, 10, 0]), 2)
    # T=0: no data; T=1: second 0; T=2: seconds 0-1; T=3: seconds 1-2
    assert np.isnan(ratio[0]) and list(ratio[1:]) == [0.0, 0.25, 0.5]
    assert np.isnan(window_ratio(np.zeros(3), np.zeros(3), 5)[2])  # no requests, no ratio


def test_burn_rate_alerts_fire_at_known_seconds() -> None:
    """10 req/s; 5 errors in seconds 20 and 21 (50%); 5 s windows (a 60 s run).
    Page 14.4x (ratio > 0.144): 10/50 from T=22 to T=25, resolved at T=26 (5/50 = 0.1).
    Page 6x and ticket 1x (> 0.06, > 0.01): 5/50 already at T=21, resolved at T=27."""
    errors = [0] * 60
    errors[20] = errors[21] = 5
    rows = by_name(alerts_block(slis_of([10] * 60, errors, fault=20.0))["rules"])
    page = rows["AvailabilityBurnRatePage1h"]
    assert (page["first_firing_s"], page["resolved_s"], page["firing_s"]) == (22, 26, 4)
    assert page["time_to_alert_s"] == 2.0 and page["episodes"] == [[22, 26]]
    for name in ("AvailabilityBurnRatePage6h", "LatencyBurnRateTicket3d"):
        assert (rows[name]["first_firing_s"], rows[name]["resolved_s"]) == (21, 27)
        assert rows[name]["time_to_alert_s"] == 1.0
    block = alerts_block(slis_of([10] * 60, errors, fault=20.0))
    assert block["time_to_alert_s"] == 1.0 and block["time_to_page_s"] == 1.0
    assert len(block["fired"]) == 6


def test_both_windows_must_burn() -> None:
    """A 3-day run (scale 0.1): page 14.4x windows 360 s and 30 s. Every request fails for
    100 s, then none does: the long window alone would stay over 14.4x to the end; the short
    one drops to 40/300 (under 0.144) at T=126, and the alert resolves with it."""
    run_s = 3 * 86_400.0
    alert = BurnRateAlert("availability", "page", 14.4, 3_600, 300, 0.99)
    assert alert.windows(run_s) == (360, 30)
    errors = [10] * 100 + [0] * 300
    slis = slis_of([10] * 400, errors, fault=0.0, run_s=run_s)
    assert episodes(firing(alert, slis)) == [(1, 126)]
    long_only = window_ratio(np.array(errors), np.full(400, 10), 360) > 0.144
    assert long_only[1:].all()


def test_episodes_and_time_to_alert() -> None:
    fires = np.array([0, 1, 1, 0, 0, 1, 1], dtype=bool)
    assert episodes(fires) == [(1, 3), (5, None)]
    out = outcome(episodes(fires), 4.0, fires.size)
    assert out["fired_before_fault"] and out["time_to_alert_s"] == 1.0
    assert out["firing_s"] == 4 and out["resolved_s"] == 3
    assert outcome([(1, 6)], 3.5, 7)["time_to_alert_s"] == 0.0  # already firing
    assert outcome([(1, 3)], None, 7)["time_to_alert_s"] is None  # no fault
    assert outcome([], 1.0, 7) | {"episodes": []} == outcome([], 1.0, 7)
    assert not outcome([], 1.0, 7)["fired"]


def test_nothing_fires_on_a_clean_run_and_the_headline_says_so() -> None:
    block = alerts_block(slis_of([10] * 30, [0] * 30, fault=10.0))
    assert block["fired"] == [] and block["time_to_alert_s"] is None
    assert headline(block) == "no default alert fired (0 of 6)"
    assert headline(None) is None and summary_rows({}) == []


# -- rules, manifest, OpenMetrics ------------------------------------------------------


def test_rule_groups_carry_the_scaled_windows_and_the_manifest_the_workbooks() -> None:
    groups = rule_groups(OBJ, "gpu-node-loss", 600.0)
    assert [g["name"] for g in groups] == [
        "gpuchaos-gpu-node-loss-availability-burn-rate",
        "gpuchaos-gpu-node-loss-latency-burn-rate",
    ]
    ticket = groups[0]["rules"][2]
    assert ticket["alert"] == "AvailabilityBurnRateTicket3d"
    assert "[1m]" in ticket["expr"] and "[5s]" in ticket["expr"] and "> 0.01" in ticket["expr"]
    assert ticket["labels"] == {
        "severity": "ticket",
        "slo": "availability",
        "experiment": "gpu-node-loss",
    }
    latency = groups[1]["rules"][0]["expr"]
    assert 'gpuchaos_request_latency_seconds_bucket{le="1"}[5s]' in latency
    doc = yaml.safe_load(prometheus_rule(OBJ, "GPU node loss!", namespace="monitoring"))
    assert doc["apiVersion"] == "monitoring.coreos.com/v1" and doc["kind"] == "PrometheusRule"
    assert doc["metadata"]["name"] == "gpuchaos-gpu-node-loss-slo-alerts"
    assert doc["metadata"]["namespace"] == "monitoring"
    exprs = [r["expr"] for g in doc["spec"]["groups"] for r in g["rules"]]
    assert len(exprs) == 6 and "[1h]" in exprs[0] and "[5m]" in exprs[0]
    assert alert_names(doc["spec"]["groups"])[:1] == ["AvailabilityBurnRatePage1h"]
    assert k8s_name("--A b__c--") == "a-b-c"


def test_openmetrics_has_cumulative_counters_a_histogram_and_eof() -> None:
    slis = slis_of([3, 2], [1, 0])
    slis.buckets[:, :] = [[2] * len(slis.bounds_ms), [2] * len(slis.bounds_ms)]
    lines = list(openmetrics_lines(slis))
    assert lines[-1] == "# EOF"
    assert 'gpuchaos_requests_total{outcome="error"} 1 1002' in lines
    assert 'gpuchaos_requests_total{outcome="success"} 4 1002' in lines
    assert 'gpuchaos_request_latency_seconds_bucket{le="1"} 4 1002' in lines
    assert "gpuchaos_request_latency_seconds_count 5 1002" in lines
    assert lines.index("# TYPE gpuchaos_request_latency_seconds histogram") > lines.index(
        'gpuchaos_requests_total{outcome="error"} 1 1002'
    )
    assert le_text(250.0) == "0.25" and le_text(30_000.0) == "30"
    doc = promtool_test_doc("/r.yaml", slis, ["A", "B"])
    assert doc["rule_files"] == ["/r.yaml"] and len(doc["tests"][0]["alert_rule_test"]) == 6
    series = {s["series"]: s["values"] for s in doc["tests"][0]["input_series"]}
    assert series['gpuchaos_requests_total{outcome="error"}'] == "0 1 1"


def test_promtools_failures_are_read_as_firing_seconds() -> None:
    out = (
        "  FAILED:\n    alertname: HighErrors, time: 1m13s, \n        exp:[], \n"
        '        got:[\n            0:\n              Labels:{alertname="HighErrors"}\n'
        "            ]\n    alertname: HighErrors, time: 9s, \n    alertname: Other, time: 2s, \n"
    )
    assert firing_times(out, ["HighErrors", "Quiet"]) == {"HighErrors": {73.0, 9.0}, "Quiet": set()}
    assert parse_duration("1h2m3s") == 3_723 and parse_duration("500ms") == 0.5
    with pytest.raises(ValueError):
        parse_duration("1x")


# -- the scorecard, summary and report -------------------------------------------------


def test_a_scored_run_has_its_alerts_with_known_times(tmp_path: Path) -> None:
    """make_run: 10 req/s, node-a's half fails in seconds 20-21, fault at 20 s: the known
    firing times of test_burn_rate_alerts_fire_at_known_seconds, from the real scorer."""
    run = make_run(tmp_path / "run")
    card = score_run_dir(run)
    rows = by_name(card["alerts"]["rules"])
    assert (
        rows["AvailabilityBurnRatePage1h"]["first_firing_s"],
        rows["LatencyBurnRatePage1h"]["resolved_s"],
    ) == (22, 26)
    assert card["alerts"]["time_to_alert_s"] == 1.0
    assert json.loads((run / "scorecard.json").read_text())["alerts"] == card["alerts"]
    summary = render_summary(card, "t")
    assert (
        "| time to alert | 1.0 s after the fault (6 of 6 default alerts fired, 4 of them pages; "
        "first page 1.0 s after the fault) |" in summary
    )
    from harness.alerts.view import alerts_html

    html = alerts_html(card)
    assert html.count("<tr>") == 7 and "AvailabilityBurnRatePage1h" in html
    assert "22.0 s" in table_text(card["alerts"]["rules"])


def test_an_aborted_run_and_a_run_read_in_parts_get_the_same_alerts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    whole = score_run_dir(make_run(tmp_path / "whole"))["alerts"]
    monkeypatch.setenv("GPUCHAOS_SCORE_CHUNK_BYTES", "4096")
    parts = score_run_dir(make_run(tmp_path / "parts"))["alerts"]
    assert parts == whole
    monkeypatch.delenv("GPUCHAOS_SCORE_CHUNK_BYTES")
    aborted = score_run_dir(make_run(tmp_path / "aborted", aborted=True))
    assert aborted["verdict"] == "aborted" and aborted["alerts"]["fired"]


def test_the_sli_counts_of_a_run_folder(tmp_path: Path) -> None:
    from harness.alerts.sli import run_slis

    run = make_run(tmp_path / "run", slow_after=10.0)
    _doc, spec = load_run_spec(run)
    requests, timeline = read_run_logs(run)
    slis = run_slis(requests, timeline, spec.slos, 30_000.0)
    assert slis.seconds == 65 and slis.fault_start_s == 20.0  # the last end: 64.9 s
    assert list(slis.requests[:3]) == [10, 10, 10] and int(slis.errors.sum()) == 10
    # from 10 s on every request takes 5 s: ends (and counts slow) from second 15
    assert slis.slow[14] == 0 and slis.slow[15] == 10
    one_s = slis.bounds_ms.index(1000.0)
    assert slis.buckets[9, one_s] == 10 and slis.buckets[15, one_s] == 0
    assert slis.requests[10:15].sum() == 0  # nothing ends while the first slow ones run


def test_the_summary_row_is_there_without_a_fault_too() -> None:
    block = alerts_block(slis_of([10] * 30, [5] * 30))  # burning all along, no fault
    card = {"verdict": "fail", "exit_code": 1, "recovery": {"fault": False}, "alerts": block}
    summary = render_summary(card, "t")
    assert "| fault | none |" in summary
    assert (
        "| time to alert | no fault; 6 of 6 default alerts fired, 4 of them pages, the first "
        "at 1.0 s |" in summary
    )


def test_without_promtool_the_rules_path_says_how_to_install_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from harness.alerts.promtool import PromtoolMissing, evaluate_rule_file

    monkeypatch.setenv("PATH", str(tmp_path))  # nothing on it
    rules = tmp_path / "r.yaml"
    rules.write_text("groups: []\n")
    with pytest.raises(PromtoolMissing, match="apt-get install prometheus"):
        evaluate_rule_file(rules, slis_of([1], [0]))
