"""The game-day reports: ``gameday.html``, ``junit.xml`` and ``summary.md``.

:func:`write_gameday_reports` writes all three into a game-day folder from its
``gameday.json`` and each run folder's ``scorecard.json`` (a run folder without one is
scored first, as ``gpuchaos report`` does), so they can be written again at any time
(``gpuchaos report GAMEDAY_FOLDER``), also for a game day that was interrupted.

The figures and renderers are the single-run reports' own: the SLO messages and JUnit suites
of :mod:`harness.report.junit`, the charts of :mod:`harness.report.svg` over the scorer's
per-second figures (``slis.csv``), and for "since the last game day of this plan" the figures
and thresholds of :mod:`harness.compare` against the previous game-day folder of the same
plan that :mod:`harness.history` finds.
"""

from __future__ import annotations

import logging
import xml.etree.ElementTree as ET
from pathlib import Path

from harness.errors import ReportError
from harness.gameday.report_data import (
    FINISHED,
    ICONS,
    NOT_RUN,
    GameDayData,
    fmt,
    load_gameday,
    miss_text,
    recovery_text,
)
from harness.gameday.report_html import render_gameday_html
from harness.report.junit import junit_document, junit_suite

log = logging.getLogger(__name__)

HTML_FILE = "gameday.html"
JUNIT_FILE = "junit.xml"
SUMMARY_FILE = "summary.md"


def render_gameday_junit(data: GameDayData) -> str:
    """One ``<testsuite>`` per experiment (the run's own, as its ``junit.xml`` has it); an
    experiment that errored, aborted or is incomplete has an error case ``run``, one that did
    not run a skipped case ``run`` with the reason."""
    root = ET.Element("testsuites", name=f"gpuchaos gameday {data.doc.get('plan_name', '')}")
    totals = dict.fromkeys(("tests", "failures", "errors", "skipped"), 0)
    for e in data.entries:
        if e.card is not None:
            suite = junit_suite(e.card, e.suite)
        else:
            suite = ET.Element("testsuite", name=e.suite, tests="0", failures="0", errors="0")
            suite.set("skipped", "0")
            suite.set("time", "0.000")
        props = suite.find("properties")
        if props is None:
            props = ET.Element("properties")
            suite.insert(0, props)
        for key in ("name", "status", "path"):
            value = e.item.get(key)
            ET.SubElement(props, "property", name=f"gameday_{key}", value=str(value))
        classname = f"gpuchaos.{e.suite}"
        has_error = suite.find("testcase/error") is not None
        if e.status == NOT_RUN:
            case = ET.SubElement(suite, "testcase", classname=classname, name="run", time="0")
            ET.SubElement(case, "skipped", message=e.reason or NOT_RUN)
            suite.set("skipped", str(int(suite.get("skipped", "0")) + 1))
            suite.set("tests", str(int(suite.get("tests", "0")) + 1))
        elif e.status not in FINISHED and not has_error:
            case = ET.SubElement(suite, "testcase", classname=classname, name="run", time="0")
            reason = e.reason or e.status
            err = ET.SubElement(case, "error", message=f"run {e.status}: {reason}", type=e.status)
            err.text = reason
            suite.set("errors", str(int(suite.get("errors", "0")) + 1))
            suite.set("tests", str(int(suite.get("tests", "0")) + 1))
        for key in totals:
            totals[key] += int(suite.get(key, "0"))
        root.append(suite)
    for key, value in totals.items():
        root.set(key, str(value))
    return junit_document(root)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_gameday_summary(data: GameDayData) -> str:
    """``summary.md``: the outcome, the experiments' table, what changed since last time."""
    icon = {"passed": "✅", "failed": "❌", "error": "⚠️"}.get(data.outcome, "⏳")
    counts: dict[str, int] = {}
    for e in data.entries:
        counts[e.status] = counts.get(e.status, 0) + 1
    tally = ", ".join(f"{n} {s}" for s, n in counts.items())
    lines = [
        f"## {icon} gpuchaos game day: {_cell(data.title)}: **{data.outcome.upper()}**"
        f" (exit {data.exit_code if data.exit_code is not None else '-'})",
        "",
        f"{len(data.entries)} experiments: {tally}. Plan `{data.doc.get('plan')}`, started "
        f"{data.doc.get('started')}"
        + (f", ended {data.doc['ended']}" if data.doc.get("ended") else ", not ended")
        + ".",
        "",
        "| # | experiment | result | score | time to recover | requests lost | SLO misses |",
        "|---:|---|---|---:|---:|---:|---|",
    ]
    for e in data.entries:
        result = f"{ICONS.get(e.status, '')} {e.status}"
        if e.status not in FINISHED and e.reason:
            result += f": {_cell(e.reason)}"
        lost = e.figure("recovery", "requests_lost") if e.figure("recovery", "fault") else None
        lines.append(
            f"| {e.index} | `{e.name}` | {result} | {fmt(e.figure('score', 'value'))} "
            f"| {recovery_text(e)} | {fmt(lost)} | {_cell(miss_text(e)) or '-'} |"
        )
    lines.append("")
    if data.previous is not None:
        lines += [f"### Since the last game day of this plan (`{data.previous.folder.name}`)", ""]
        for c in data.changes:
            worse = "; ".join(c.worse) or "nothing"
            better = "; ".join(c.better) or "nothing"
            lines.append(
                f"- `{c.name}`: score {fmt(c.score[0])} → {fmt(c.score[1])}; "
                f"worse: {worse}; better: {better}"
            )
        if not data.changes:
            lines.append("- no experiment ran both times")
        lines.append("")
    lines.append(f"Folder `{data.folder.name}`; plots and links in `{HTML_FILE}`.")
    return "\n".join(lines) + "\n"


def write_gameday_reports(folder: Path) -> list[Path]:
    """Write ``junit.xml``, ``summary.md`` and ``gameday.html`` into the game-day folder;
    returns their paths. Like :func:`harness.report.write_reports`: the text files first, and
    a writer that fails raises :class:`ReportError` after the others were written."""
    folder = Path(folder)
    data = load_gameday(folder)
    writers = (
        (JUNIT_FILE, render_gameday_junit),
        (SUMMARY_FILE, render_gameday_summary),
        (HTML_FILE, render_gameday_html),
    )
    written: list[Path] = []
    problems: list[str] = []
    for name, render in writers:
        path = folder / name
        try:
            path.write_text(render(data), encoding="utf-8")
            written.append(path)
        except Exception as exc:
            log.warning("writing %s failed", path, exc_info=True)
            problems.append(f"{name}: {exc}")
    if problems:
        raise ReportError(f"{folder}: could not write " + "; ".join(problems))
    return written
