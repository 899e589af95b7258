"""A run folder whose load generator was saturated: ``gpuchaos score`` finds the seconds from
``telemetry.csv`` alone (this folder predates ``lag_ms``), report.html shades them with the
fault windows' renderer, and summary.md and junit.xml (valid XML) say the verdict was
reached while the instrument was saturated; a run without saturation says nothing of it."""

from __future__ import annotations

import csv
import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path

from harness.report import write_reports
from harness.report.junit import render_junit
from harness.report.summary import render_summary
from harness.scoring.rundir import score_run_dir
from tests.unit.test_report_writers import T0, make_run


def _saturate(run_dir: Path) -> None:
    """Locust at 99% of a core, sampled every second, from 40 s to 45 s; 20% elsewhere."""
    text = (run_dir / "telemetry.csv").read_text()
    text = text[: text.rfind("\n") + 1]  # drop make_run's torn last line
    with open(run_dir / "telemetry.csv", "w", newline="") as fh:
        fh.write(text)
        w = csv.writer(fh)
        for s in range(1, 61):
            w.writerow([T0 + s, "locust", "cpu_percent", 99.0 if 41 <= s <= 45 else 20.0])


def test_saturated_seconds_are_scored_shaded_and_reported(tmp_path: Path) -> None:
    run_dir = make_run(tmp_path / "run")
    _saturate(run_dir)
    card = score_run_dir(run_dir)
    inst = card["instrument"]
    assert inst["sampled"] is True and inst["lag_recorded"] is False
    assert inst["saturated"] is True
    assert inst["affected_s"] == inst["cpu_affected_s"] == 5
    assert inst["windows"] == [{"start_s": 40, "end_s": 45}]
    assert inst["peak_cpu_percent"] == 99.0 and inst["peak_lag_ms"] is None
    assert "saturated for 5 s (peak CPU 99% of a core)" in inst["warning"]
    assert json.loads((run_dir / "scorecard.json").read_text())["instrument"] == inst
    assert score_run_dir(run_dir, write=False)["instrument"] == inst  # offline, same figures

    write_reports(run_dir)
    html = (run_dir / "report.html").read_text()
    plots = len(re.findall(r'<svg class="plot"', html))
    shaded = re.findall(r'<rect class="instrument" x="([\d.]+)"[^>]*><title>([^<]*)</title>', html)
    assert plots >= 5 and len(shaded) == plots  # one window, on every time plot
    assert {t for _, t in shaded} == {"load generator saturated"}
    assert len(re.findall(r'<rect class="fault"', html)) == plots  # the fault still shaded
    assert 'id="instrument-warning"' in html and "peak CPU 99% of a core" in html
    assert '<svg class="plot" id="locust_cpu"' in html  # the samples themselves, plotted

    md = (run_dir / "summary.md").read_text()
    assert "Verdict reached while the instrument was saturated" in md
    assert "saturated for 5 s" in md

    root = ET.parse(run_dir / "junit.xml").getroot()  # parses: valid XML
    suite = root.find("testsuite")
    assert suite is not None
    props = {p.get("name"): p.get("value") for p in suite.iter("property")}
    assert props["instrument_saturated"] == "true"
    assert props["instrument_affected_s"] == "5"
    out = suite.find("system-out")
    assert out is not None and out.text is not None
    assert out.text.startswith(f"verdict {card['verdict']} reached while the load generator")
    assert [c.tag for c in suite][-1] == "system-out"  # after the test cases


def test_a_run_without_saturation_says_nothing_of_it(tmp_path: Path) -> None:
    run_dir = make_run(tmp_path / "run")  # no Locust CPU samples, no lag column
    card = score_run_dir(run_dir)
    inst = card["instrument"]
    assert inst["saturated"] is False and inst["sampled"] is False and inst["warning"] is None
    assert "note" in inst
    md = render_summary(card, "t")
    assert "saturated" not in md
    root = ET.fromstring(render_junit(card, "s"))
    props = {p.get("name"): p.get("value") for p in root.iter("property")}
    assert props["instrument_saturated"] == "false"
    assert root.find("./testsuite/system-out") is None
    write_reports(run_dir)
    assert '<rect class="instrument"' not in (run_dir / "report.html").read_text()


def test_an_older_scorecard_without_the_section() -> None:
    card = {"verdict": "pass", "exit_code": 0, "slos": [], "run": {"duration_s": 1.0}}
    root = ET.fromstring(render_junit(card, "s"))
    assert "instrument_saturated" not in {p.get("name") for p in root.iter("property")}
    assert "saturated" not in render_summary(card, "t")
