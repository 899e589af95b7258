"""``summary.md``: the run in Markdown for CI step summaries (e.g. ``$GITHUB_STEP_SUMMARY``).

The verdict (and, when the load generator was saturated, that the verdict was reached so),
the SLO table (objective, measured, result), the recovery figures and the run's totals.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from harness.alerts.view import summary_rows
from harness.report.capacity import capacity_summary
from harness.report.gpu_faults import gpu_faults_summary
from harness.report.tenancy import is_tenancy, tenancy_summary

_ICONS = {"pass": "✅", "fail": "❌", "aborted": "⚠️", "incomplete": "⚠️"}


def _v(value: Any, unit: str = "") -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    if unit == "ratio":
        return f"{float(value):.4f}"
    if isinstance(value, float):
        return f"{value:,.1f} {unit}".strip()
    return f"{value} {unit}".strip()


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_summary(scorecard: dict[str, Any], title: str, report_name: str | None = None) -> str:
    """The Markdown text."""
    verdict = str(scorecard.get("verdict", "unknown"))
    lines = [
        f"## {_ICONS.get(verdict, '')} gpuchaos: {_cell(title)}: **{verdict.upper()}**"
        f" (exit {scorecard.get('exit_code')})",
        "",
    ]
    if scorecard.get("abort_reason"):
        lines += [f"> **Aborted:** {_cell(str(scorecard['abort_reason']))}", ""]
    if scorecard.get("note"):
        lines += [f"> {_cell(str(scorecard['note']))}", ""]
    warning = (scorecard.get("instrument") or {}).get("warning")
    if warning:
        lines += [
            f"> ⚠️ **Verdict reached while the instrument was saturated:** {_cell(str(warning))}"
            ' (see docs/scoring.md, "Is the load generator the bottleneck?").',
            "",
        ]
    slos = scorecard.get("slos") or []
    if slos:
        lines += ["| SLO | objective | measured | result |", "|---|---:|---:|---|"]
        for e in slos:
            unit = str(e.get("unit", ""))
            result = "✅ pass" if e.get("passed") else "❌ **fail**"
            if e.get("note"):
                result += f" ({_cell(str(e['note']))})"
            lines.append(
                f"| `{e.get('name')}` | {e.get('comparator', '')} {_v(e.get('objective'), unit)}"
                f" | {_v(e.get('measured'), unit)} | {result} |"
            )
        lines.append("")
    else:
        lines += ["No SLO was set.", ""]
    if is_tenancy(scorecard):  # per tenant, the blast radius, the capacity refused
        return (
            "\n".join(lines + tenancy_summary(scorecard) + _totals(scorecard, report_name)) + "\n"
        )
    rec = scorecard.get("recovery") or {}
    lines += ["| recovery | |", "|---|---:|"]
    if rec.get("fault"):
        recover = _v(rec.get("time_to_recover_s"), "s") if rec.get("recovered") else "not recovered"
        lines += [
            f"| fault | {_cell(str(rec.get('fault_target') or '-'))} at "
            f"{_v(rec.get('fault_start'), 's')} |",
            f"| time to detect | {_v(rec.get('time_to_detect_s'), 's')} |",
            f"| time to recover | {recover} |",
            f"| capacity return | {_v(rec.get('capacity_return_s'), 's')} |",
            f"| requests lost | {_v(rec.get('requests_lost'))} |",
        ]
        faults = rec.get("per_fault") or []
        if len(faults) > 1:
            lines += [
                "",
                "| fault | target | start | end | detect | recover | requests lost |",
                "|---:|---|---:|---:|---:|---:|---:|",
            ]
            for i, f in enumerate(faults, 1):
                back = (
                    _v(f.get("time_to_recover_s"), "s") if f.get("recovered") else "not recovered"
                )
                lines.append(
                    f"| {i} | {_cell(str(f.get('target') or '-'))} | {_v(f.get('start_s'), 's')} "
                    f"| {_v(f.get('end_s'), 's')} | {_v(f.get('time_to_detect_s'), 's')} "
                    f"| {back} | {_v(f.get('requests_lost'))} |"
                )
    else:
        lines.append("| fault | none |")
    lines += summary_rows(scorecard)  # time to alert (harness.alerts), with a fault or not
    lines += gpu_faults_summary(scorecard)  # XIDs with NVIDIA's action, a lost GPU
    lines += capacity_summary(scorecard)  # preflight and the capacity chain
    return "\n".join(lines + _totals(scorecard, report_name)) + "\n"


def _totals(scorecard: dict[str, Any], report_name: str | None) -> list[str]:
    """The run's totals and where its folder is."""
    run = scorecard.get("run") or {}
    lines = [
        "",
        f"{_v(run.get('requests'))} requests, {_v(run.get('errors'))} failed "
        f"(error rate {_v(run.get('error_rate'), 'ratio')}), "
        f"{_v(run.get('throughput_rps'), 'req/s')} over {_v(run.get('duration_s'), 's')}.",
    ]
    where = (scorecard.get("meta") or {}).get("run_dir")
    if where:
        extra = f"; plots in `{report_name}`" if report_name else ""
        lines += ["", f"Run folder `{where}`{extra}."]
    return lines


def write_summary(
    scorecard: dict[str, Any], title: str, path: Path, report_name: str | None = None
) -> Path:
    """Write ``summary.md`` to ``path``."""
    path.write_text(render_summary(scorecard, title, report_name), encoding="utf-8")
    return path
