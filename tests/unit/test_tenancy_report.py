"""The reports of a tenancy run (tests/support/tenancy_runs.py, scored once): report.html's
tenants section and each tenant's own report, junit.xml's test case per tenant SLO,
summary.md's tenant table and blast radius, the live page's line per tenant, and the sharing
modes' comparison table (``gpuchaos tenancy compare``)."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from harness.cli import main
from harness.live.page import render_page
from harness.live.state import build_state, show_all
from harness.live.tenants import tenant_rows
from harness.report import write_reports
from harness.report.tenancy import tenancy_html, tenancy_summary
from harness.report.tenancy_compare import compare_markdown, compare_rows
from harness.rundir import RunDir
from harness.scoring.rundir import score_run_dir
from harness.scoring.tenancy_view import tenant_dir
from tests.support.tenancy_runs import FAILED, make_tenancy_run

BLAST = (
    "teamb's spike_neighbour_memory cost teama 37 failed requests (37.0% errors vs 0.0% "
    "before), p99 +1,950 ms; teama missed p99_latency_ms, error_rate, gpu_min_utilization_pct"
)


@pytest.fixture(scope="module")
def reported(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    run = make_tenancy_run(tmp_path_factory.mktemp("tenancy-report") / "run")
    card = score_run_dir(run)
    write_reports(run)
    return run, card


def test_report_html_has_a_tenants_section_linking_each_tenants_report(
    reported: tuple[Path, dict[str, Any]],
) -> None:
    run, _ = reported
    page = RunDir(run).report.read_text(encoding="utf-8")
    section = page[page.index('<section id="tenants">') : page.index("</section>")]
    assert '<h3 id="tenant-teama">teama <span class="verdict fail">FAIL</span>' in section
    assert '<h3 id="tenant-teamb">teamb <span class="verdict pass">PASS</span>' in section
    assert "Sharing: <b>time-slicing</b>" in section
    assert BLAST.replace("'", "&#x27;") in section
    assert "<td>teama</td><td>2</td><td>50.0 replica-s</td><td>0</td><td>1</td>" in section
    assert "<td>teamb</td><td>0</td><td>0.0 replica-s</td><td>2 (memory-cap x2)</td>" in section
    assert "25.0% (under 60%: paid for and idle)" in section  # teama's utilization
    for name in ("teama", "teamb"):
        assert f'href="tenants/{name}/report.html"' in section
        own = RunDir(tenant_dir(run, name))
        assert own.report.is_file() and own.junit.is_file() and own.summary.is_file()
    # a tenant's own page is an ordinary run page over its own records, with plots
    own_page = RunDir(tenant_dir(run, "teama")).report.read_text(encoding="utf-8")
    assert '<section id="tenants">' not in own_page and 'class="plot"' in own_page


def test_tenancy_html_is_empty_for_a_single_tenant_card() -> None:
    assert tenancy_html({"slos": [], "verdict": "pass"}) == ""
    assert tenancy_summary({"slos": []}) == []


def test_junit_has_a_testcase_per_tenant_slo(reported: tuple[Path, dict[str, Any]]) -> None:
    run, _ = reported
    suite = ET.parse(RunDir(run).junit).getroot().find("testsuite")
    assert suite is not None
    cases = suite.findall("testcase")
    assert [c.get("name") for c in cases] == [
        "teama: p99_latency_ms",
        "teama: error_rate",
        "teama: gpu_min_utilization_pct",
        "teamb: p99_latency_ms",
        "teamb: error_rate",
    ]
    failed = [c.get("name") for c in cases if c.find("failure") is not None]
    assert failed == [c.get("name") for c in cases[:3]]
    assert {c.get("classname") for c in cases[3:]} == {"gpuchaos.two-tenants.teamb"}
    assert suite.get("failures") == "3" and suite.get("tests") == "5"
    props = {p.get("name"): p.get("value") for p in suite.iter("property")}
    assert props["sharing"] == "time-slicing" and props["exit_code"] == "1"


def test_summary_has_the_tenant_table_and_the_blast_radius(
    reported: tuple[Path, dict[str, Any]],
) -> None:
    run, _ = reported
    text = RunDir(run).summary.read_text(encoding="utf-8")
    assert "**FAIL** (exit 1)" in text
    assert "| teama | ❌ fail | 400 | 37 | 2,000.0 ms | 19.00 | 25.0% ⚠️ | 0.0190 |" in text
    assert "| teamb | ✅ pass | 400 | 0 | 20.0 ms | 20.00 | 50.0% ⚠️ | n/a |" in text
    assert f"- {BLAST}" in text
    assert "| teama | 2 | 50.0 replica-s | 0 | 1 |" in text
    assert "| recovery |" not in text  # per tenant, in each tenant's own summary
    assert "800 requests, 37 failed" in text


def test_live_page_shows_a_line_per_tenant(reported: tuple[Path, dict[str, Any]]) -> None:
    run, _ = reported
    rows = tenant_rows(run)
    assert [(r["tenant"], r["requests"], r["errors"]) for r in rows] == [
        ("teama", 400, FAILED),
        ("teamb", 400, 0),
    ]
    assert rows[1]["p99_ms"] == pytest.approx(20.0)
    state = build_state(run, "two tenants", None, show_all)
    assert state["tenants"] == rows
    assert state["run"]["requests"] == 800 and state["run"]["errors"] == FAILED
    assert '<table id="tenants">' in render_page("two tenants", [], facilitator=False)


def test_live_rows_wait_for_a_half_written_line(tmp_path: Path) -> None:
    run = make_tenancy_run(tmp_path / "run")
    path = tenant_dir(run, "teamb") / "requests.csv"
    with open(path, "a", encoding="utf-8") as fh:
        fh.write("1700000041.0,1700000041.1,10")  # a row cut short
    assert [r["requests"] for r in tenant_rows(run)] == [400, 400]
    assert tenant_rows(tmp_path) == []  # not a tenancy run


def _card(mode: str, failed: int, util: float, allocated: float) -> dict[str, Any]:
    blast = [{"start_s": 10.0, "tenant": "teamb", "victim": "teama", "failed_requests": failed}]
    return {
        "sharing": mode,
        "tenants": {
            "teama": {"verdict": "fail" if failed else "pass", "run": {"availability": 0.9}},
            "teamb": {"verdict": "pass", "run": {"error_rate": 0.0}},
        },
        "blast_radius": blast,
        "cost": {
            "teama": {"utilization_pct": util, "gpu_seconds_allocated": allocated},
            "teamb": {"utilization_pct": util / 2, "gpu_seconds_allocated": allocated},
        },
    }


def test_compare_table_of_sharing_modes() -> None:
    rows = compare_rows(
        [
            ("ts", _card("time-slicing", 37, 80.0, 20.0)),
            ("mps", _card("mps", 3, 70.0, 20.0)),
            ("mig", _card("mig", 0, 50.0, 10.0)),
        ]
    )
    assert compare_markdown(rows) == (
        "| mode | teama: verdict, availability | teamb: verdict, availability "
        "| blast radius (victims' failed requests) | utilization | GPU-s allocated |\n"
        "|---|---|---|---|---|---|\n"
        "| time-slicing | fail, 90.00% | pass, 100.00% | teama 37 | teama 80.0%, teamb 40.0% "
        "| teama 20.0, teamb 20.0 |\n"
        "| mps | fail, 90.00% | pass, 100.00% | teama 3 | teama 70.0%, teamb 35.0% "
        "| teama 20.0, teamb 20.0 |\n"
        "| mig | pass, 90.00% | pass, 100.00% | teama 0 | teama 50.0%, teamb 25.0% "
        "| teama 10.0, teamb 10.0 |\n"
    )


def test_tenancy_compare_command(
    reported: tuple[Path, dict[str, Any]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run, _ = reported
    assert main(["tenancy", "compare", "--format", "json", str(run)]) == 0
    [row] = json.loads(capsys.readouterr().out)
    assert row["mode"] == "time-slicing" and row["tenants"]["teama"]["blast_failed"] == FAILED
    assert main(["tenancy", "compare", str(run)]) == 0
    assert "| time-slicing | fail, 90.75% | pass, 100.00% | teama 37 |" in capsys.readouterr().out
    assert main(["tenancy", "compare", str(tmp_path)]) == 2
    assert "not a run folder" in capsys.readouterr().err
