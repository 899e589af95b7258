"""report.html, junit.xml and summary.md from synthetic run folders with known content."""

from __future__ import annotations

import csv
import json
import math
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

from harness.experiment import EXTENSION_NAME, load_experiment
from harness.records import COLUMNS
from harness.report import write_reports
from harness.report.data import load_run, per_second_figures, with_gaps
from harness.report.html import render_report
from harness.report.junit import render_junit, slo_message
from harness.report.summary import render_summary
from harness.report.svg import Chart, Series, Window, nice_ticks, render
from harness.scoring import fault_windows
from harness.scoring.slis import RequestArrays, goodput_thresholds

ROOT = Path(__file__).resolve().parents[2]
T0 = 1_000_000.0


def make_run(
    path: Path,
    *,
    gpu: bool = False,
    aborted: bool = False,
    ended: bool = True,
    fault_end: bool = True,
    slow_after: float | None = None,
    second_fault: bool = False,
    slow_tokens_after: float | None = None,
    tpot_p99_ms: float | None = None,
) -> Path:
    """A run folder: 60 s of load at 10 req/s; a fault on node-a from 20 s to 30 s during
    which node-a's requests (every other one) fail in seconds 20 and 21; telemetry every
    second, without node-a from 20 s to 30 s. From ``slow_tokens_after`` s node-b streams its
    16 tokens slowly (600 ms, TTFT 10 ms: TPOT 39 ms); ``tpot_p99_ms`` adds that objective."""
    path.mkdir(parents=True, exist_ok=True)
    exp = load_experiment(ROOT / "experiments" / "gpu-node-loss.yaml", {})
    if tpot_p99_ms is not None:
        ext = next(e for e in exp.document["extensions"] if e.get("name") == EXTENSION_NAME)
        ext["slos"]["tpot_p99_ms"] = tpot_p99_ms
    (path / "experiment.yaml").write_text(yaml.safe_dump(exp.document, sort_keys=False))
    with open(path / "requests.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(COLUMNS)
        for i in range(600):
            start = T0 + i * 0.1
            replica = "node-a-0" if i % 2 else "node-b-0"
            fail = replica == "node-a-0" and 20 <= i * 0.1 < 22
            latency = 50.0 if slow_after is None or i * 0.1 < slow_after else 5000.0
            if slow_tokens_after is not None and i * 0.1 >= slow_tokens_after and not i % 2:
                latency = 600.0
            end = start + latency / 1000
            w.writerow(
                [
                    f"{start:.3f}",
                    f"{end:.3f}",
                    latency,
                    "" if fail else 10.0,
                    0 if fail else 16,
                    0 if fail else 200,
                    "connection refused" if fail else "",
                    "" if fail else replica,
                    "baseline",
                ]
            )
    events: list[dict[str, Any]] = [
        {"time": T0 - 3, "kind": "run_start", "target": "gpu-node-loss", "details": {}},
        {"time": T0, "kind": "load_start", "target": "locust", "details": {"duration_s": 60}},
        {
            "time": T0 + 20,
            "kind": "fault_start",
            "target": "node-a",
            "details": {"fault": "lose_node"},
        },
        {"time": T0 + 20, "kind": "node_down", "target": "node-a", "details": {"pids": [1]}},
    ]
    if fault_end:
        events.append({"time": T0 + 30, "kind": "fault_end", "target": "node-a", "details": {}})
    if second_fault:  # a cascade: node-b's memory taken from 40 s to 45 s
        events.append(
            {
                "time": T0 + 40,
                "kind": "fault_start",
                "target": "node-b",
                "details": {"fault": "exhaust_gpu_memory"},
            }
        )
        events.append({"time": T0 + 45, "kind": "fault_end", "target": "node-b", "details": {}})
    if aborted:
        events.append(
            {
                "time": T0 + 40,
                "kind": "abort",
                "target": "x",
                "details": {"reason": "run interrupted (SIGTERM)"},
            }
        )
    events.append({"time": T0 + 60.2, "kind": "load_end", "target": "locust", "details": {}})
    if ended:  # the runner's last event; a killed harness never writes it
        events.append({"time": T0 + 61, "kind": "run_end", "target": "x", "details": {}})
    with open(path / "timeline.jsonl", "w") as fh:
        fh.writelines(json.dumps(e) + "\n" for e in events)
    with open(path / "telemetry.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["time", "source", "metric", "value"])
        for s in range(61):
            t = T0 + s
            down = 20 <= s < 30
            w.writerow([t, "system", "cpu_pct", 50])
            for rep, node in (("node-a-0", "node-a"), ("node-b-0", "node-b")):
                if rep == "node-a-0" and down:
                    w.writerow([t, node, "replicas_ready", 0])
                    continue
                w.writerow([t, node, "replicas_ready", 1])
                w.writerow([t, rep, "cpu_pct", 80])
                w.writerow([t, rep, "rss_mib", 300])
                w.writerow([t, rep, "queue_waiting", s % 3])
                w.writerow([t, rep, "running", 4])
                w.writerow([t, rep, "kv_cache_usage", 0.1])
                if gpu:
                    w.writerow([t, rep, "gpu0_memory_mib", 2048])
            w.writerow([t, "platform", "replicas_ready", 1 if down else 2])
            if gpu:
                w.writerow([t, "gpu0", "utilization_pct", 60])
                w.writerow([t, "gpu0", "memory_used_mib", 5000])
                w.writerow([t, "gpu0", "memory_total_mib", 81920])
            w.writerow([t, "harness", "sample_ms", 3.2])
        if gpu:
            w.writerow([T0 + 25, "gpu0", "xid", 79])
        fh.write("1000070.0,system,cpu")  # a torn last line (killed run)
    return path


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    return make_run(tmp_path / "run")


def test_per_second_figures_known_answers(run_dir: Path) -> None:
    data = load_run(run_dir)
    sec = per_second_figures(data).set_index("second")
    assert len(sec) == 61
    assert sec.loc[5, "requests"] == 10 and sec.loc[5, "errors"] == 0
    assert sec.loc[20, "error_rate"] == pytest.approx(0.5)
    assert sec.loc[21, "throughput_rps"] == 5
    assert sec.loc[25, "error_rate"] == 0
    # failed requests count as the client timeout in percentiles
    assert sec.loc[20, "p99_ms"] == pytest.approx(data.timeout_ms)
    assert sec.loc[5, "p50_ms"] == pytest.approx(50.0)
    assert sec.loc[5, "goodput_rps"] == sec.loc[5, "throughput_rps"] == 10


def test_goodput_leaves_out_successes_over_the_latency_objective(tmp_path: Path) -> None:
    data = load_run(make_run(tmp_path / "slow", slow_after=40.0))
    sec = per_second_figures(data).set_index("second")
    assert sec.loc[45, "throughput_rps"] == 10
    assert sec.loc[45, "goodput_rps"] == 0  # 5000 ms > the p99 objective of 1000 ms


def test_report_goodput_is_the_scorers_per_second_goodput_tpot_included(tmp_path: Path) -> None:
    run = make_run(tmp_path / "tpot", slow_tokens_after=40.0, tpot_p99_ms=20.0)
    write_reports(run)  # scores the folder first: scorecard.json and slis.csv
    data = load_run(run)
    sec = per_second_figures(data).set_index("second")
    plotted = sec["goodput_rps"]
    # the scorer's good requests (every objective, TPOT included) by the second they ended
    arrays = RequestArrays.build(data.requests, data.timeout_ms, data.slos)
    second = np.floor(arrays.end - data.t0).astype(np.int64)
    scorer = pd.Series(arrays.good.astype(np.int64)).groupby(second).sum()
    assert plotted.loc[scorer.index].tolist() == scorer.tolist()
    assert plotted.drop(scorer.index).eq(0).all()
    slis = pd.read_csv(run / "slis.csv").set_index("second")["goodput_rps"]  # what it wrote
    assert plotted.loc[slis.index].tolist() == slis.tolist()
    assert int(plotted.sum()) == data.scorecard["goodput"]["good"]
    # TPOT is what leaves node-b's slow streams out: latency and TTFT alone count them good
    limits = goodput_thresholds(data.slos)
    assert limits["tpot_ms"] == 20.0 and limits["latency_ms"] == 1000.0
    ok = ~arrays.failed & (arrays.latency <= limits["latency_ms"])
    ok &= ~(arrays.ttft > limits["ttft_ms"])
    by_latency_and_ttft = pd.Series(ok.astype(np.int64)).groupby(second).sum()
    assert by_latency_and_ttft.loc[45] == sec.loc[45, "throughput_rps"] == 10
    assert plotted.loc[45] == 5 and plotted.loc[10] == 10


def test_fault_windows_pair_starts_and_ends(tmp_path: Path) -> None:
    data = load_run(make_run(tmp_path / "a"))
    shaded = fault_windows(data.timeline, t0=data.t0, open_until=data.load_end, labels=True)
    assert shaded == [(20.0, 30.0, "lose_node node-a")]
    open_ = load_run(make_run(tmp_path / "b", fault_end=False))
    [(start, end, label)] = fault_windows(
        open_.timeline, t0=open_.t0, open_until=open_.load_end, labels=True
    )
    assert (start, label) == (20.0, "lose_node node-a (not reverted)")
    assert end == pytest.approx(open_.duration_s)


def test_with_gaps_breaks_lines_where_samples_are_missing() -> None:
    xs, ys = with_gaps([0.0, 1.0, 2.0, 9.0, 10.0], [1.0, 1.0, 1.0, 2.0, 2.0], gap_s=2.5)
    assert len(xs) == 6 and math.isnan(ys[3]) and xs[3] == 5.5


def test_nice_ticks() -> None:
    assert nice_ticks(0, 100) == [0, 20, 40, 60, 80, 100]
    assert nice_ticks(0, 0.04, 4) == [0, 0.01, 0.02, 0.03, 0.04]
    assert nice_ticks(5, 5) == [5]


def test_svg_breaks_a_series_at_nan_and_shades_windows() -> None:
    chart = Chart(
        "c",
        "Title",
        "ms",
        [Series("p99", [0, 1, 2, 3, 4], [1, 2, math.nan, 4, 5])],
        x_max=5,
        windows=[Window(1, 2, "lose_node node-a")],
        refs=[("objective", 3.0)],
    )
    svg = render(chart)
    assert svg.startswith('<svg class="plot" id="c"') and svg.endswith("</svg>")
    path = re.search(r'<path class="series" d="([^"]+)"', svg)
    assert path is not None and path.group(1).count("M") == 2
    assert 'class="fault"' in svg and "lose_node node-a" in svg and 'class="ref"' in svg
    ET.fromstring(svg)  # well-formed XML


def test_svg_log_scale_and_empty_chart() -> None:
    svg = render(Chart("l", "L", "ms", [Series("a", [0, 1], [10, 30000])], x_max=2, log_y=True))
    assert ">10k<" in svg and ">10<" in svg
    empty = render(Chart("e", "E", "x", [Series("a", [], [])], x_max=10))
    assert "no data" in empty
    ET.fromstring(empty)


def test_html_report_without_gpu(run_dir: Path) -> None:
    html = render_report(load_run(run_dir))
    ids = re.findall(r'<svg class="plot" id="([a-z_]+)"', html)
    assert ids == [
        "latency",
        "ttft",
        "errors",
        "throughput",
        "replicas",
        "cpu",
        "rss",
        "queue",
        "kv_cache",
    ]
    assert "NVML absent" in html
    assert "http://" not in html.replace("http://www.w3.org/2000/svg", "")
    assert "https://" not in html and "src=" not in html  # self-contained
    for text in (
        "recovery_s",
        "time to recover",
        "fault_start",
        "GPU node loss during a traffic spike",
        "spike_start_s",
    ):
        assert text in html, text
    assert html.count('class="fault"') == len(ids)  # the fault is shaded on every plot
    assert 'id="replicas"' in html and ">node-a<" in html  # per node


def test_html_report_with_gpu_and_xid(tmp_path: Path) -> None:
    html = render_report(load_run(make_run(tmp_path / "g", gpu=True)))
    ids = re.findall(r'<svg class="plot" id="([a-z_]+)"', html)
    assert "gpu_util" in ids and "gpu_memory" in ids and "cpu" not in ids
    assert "node-a-0 on gpu0" in html and "xid 79" in html


def test_junit_one_case_per_slo(run_dir: Path) -> None:
    card = load_run(run_dir).scorecard
    root = ET.fromstring(render_junit(card, "gpu-node-loss"))
    suite = root.find("testsuite")
    assert suite is not None
    cases = suite.findall("testcase")
    assert [c.get("name") for c in cases] == [f"slo.{e['name']}" for e in card["slos"]]
    assert suite.get("tests") == str(len(cases)) and suite.get("errors") == "0"
    failed = [c for c in cases if c.find("failure") is not None]
    assert (
        suite.get("failures") == str(len(failed)) == str(sum(not e["passed"] for e in card["slos"]))
    )


def test_junit_failure_carries_measured_against_objective() -> None:
    card = {
        "verdict": "fail",
        "exit_code": 1,
        "slos": [
            {
                "name": "p99_latency_ms",
                "objective": 100.0,
                "comparator": "<=",
                "measured": 122.5,
                "unit": "ms",
                "passed": False,
            },
            {
                "name": "error_rate",
                "objective": 0.01,
                "comparator": "<=",
                "measured": 0.0005,
                "unit": "ratio",
                "passed": True,
            },
        ],
        "run": {"duration_s": 90.0},
    }
    root = ET.fromstring(render_junit(card, "exp"))
    failure = root.find("./testsuite/testcase[@name='slo.p99_latency_ms']/failure")
    assert failure is not None
    assert failure.get("message") == "measured 122.5 ms, objective <= 100.0 ms"
    assert root.find("./testsuite/testcase[@name='slo.error_rate']/failure") is None
    assert slo_message(card["slos"][1]) == "measured 0.0005, objective <= 0.0100"


def test_junit_aborted_run_is_an_error(tmp_path: Path) -> None:
    card = load_run(make_run(tmp_path / "ab", aborted=True)).scorecard
    assert card["verdict"] == "aborted"
    root = ET.fromstring(render_junit(card, "gpu-node-loss"))
    error = root.find("./testsuite/testcase[@name='run']/error")
    assert error is not None and "SIGTERM" in (error.get("message") or "")
    assert root.find("testsuite").get("errors") == "1"  # type: ignore[union-attr]


def test_junit_and_summary_of_an_incomplete_run(tmp_path: Path) -> None:
    card = load_run(make_run(tmp_path / "inc", ended=False)).scorecard
    assert card["verdict"] == "incomplete" and card["exit_code"] == 2
    root = ET.fromstring(render_junit(card, "gpu-node-loss"))
    error = root.find("./testsuite/testcase[@name='run']/error")
    assert error is not None and error.get("type") == "incomplete"
    assert "run incomplete: " in (error.get("message") or "")
    assert "⚠️" in render_summary(card, "t") and "**INCOMPLETE**" in render_summary(card, "t")


def test_summary_markdown(run_dir: Path) -> None:
    card = load_run(run_dir).scorecard
    md = render_summary(card, "GPU node loss", "report.html")
    assert md.startswith("## ") and card["verdict"].upper() in md
    assert "| SLO | objective | measured | result |" in md
    assert md.count("\n| `") == len(card["slos"])
    assert "| time to recover |" in md and "| requests lost |" in md
    aborted = render_summary({"verdict": "aborted", "exit_code": 2, "abort_reason": "a|b"}, "t")
    assert "**ABORTED**" in aborted and "a\\|b" in aborted and "| fault | none |" in aborted


def test_write_reports_scores_a_folder_without_scorecard(run_dir: Path) -> None:
    assert not (run_dir / "scorecard.json").exists()
    paths = write_reports(run_dir)
    assert sorted(p.name for p in paths) == ["junit.xml", "report.html", "summary.md"]
    assert (run_dir / "scorecard.json").is_file()
    before = (run_dir / "report.html").read_text()
    write_reports(run_dir)  # regenerating gives the same page
    assert (run_dir / "report.html").read_text() == before


def test_write_reports_refuses_a_non_run_folder(tmp_path: Path) -> None:
    from harness.errors import ReportError

    with pytest.raises(ReportError, match="not a run folder"):
        write_reports(tmp_path)


def test_a_cascade_gets_a_table_of_its_faults(tmp_path: Path) -> None:
    run = make_run(tmp_path / "cascade", second_fault=True)
    write_reports(run)
    card = json.loads((run / "scorecard.json").read_text())
    assert [f["target"] for f in card["recovery"]["per_fault"]] == ["node-a", "node-b"]
    summary = (run / "summary.md").read_text()
    assert "| 1 | node-a | 20.0 s | 30.0 s |" in summary
    assert "| 2 | node-b | 40.0 s | 45.0 s |" in summary
    html = render_report(load_run(run))
    assert '<table class="faults">' in html and "exhaust_gpu_memory node-b" in html
