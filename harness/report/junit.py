"""``junit.xml``: one test case per SLO, for CI systems that read JUnit.

A missed SLO is a ``<failure>`` whose message carries the measured value against the
objective; an aborted or incomplete run adds a test case ``run`` with an ``<error>`` holding
the reason.
When the load generator was saturated (the scorecard's ``instrument`` section), the suite
says so: property ``instrument_saturated`` (with ``instrument_affected_s``) and a line in
the suite's ``<system-out>``, so a reader of the verdict knows the client may have set it.
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any


def _value(value: Any, unit: str) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    if unit == "ratio":
        return f"{float(value):.4f}"
    return f"{float(value):.1f} {unit}"


def slo_message(entry: dict[str, Any]) -> str:
    """``measured 122.5 ms, objective <= 100.0 ms`` (plus the note when there is one)."""
    unit = str(entry.get("unit", ""))
    text = (
        f"measured {_value(entry.get('measured'), unit)}, objective "
        f"{entry.get('comparator', '')} {_value(entry.get('objective'), unit)}"
    )
    if entry.get("note"):
        text += f" ({entry['note']})"
    return text


def instrument_line(scorecard: dict[str, Any]) -> str | None:
    """One line when the verdict was reached while the load generator was saturated."""
    instrument = scorecard.get("instrument")
    if not isinstance(instrument, dict) or not instrument.get("warning"):
        return None
    verdict = scorecard.get("verdict", "unknown")
    return f"verdict {verdict} reached while {instrument['warning']}"


def render_junit(scorecard: dict[str, Any], suite: str) -> str:
    """The JUnit XML document as a string."""
    ts = junit_suite(scorecard, suite)
    root = ET.Element("testsuites", name="gpuchaos", tests=ts.get("tests", "0"))
    root.set("failures", ts.get("failures", "0"))
    root.set("errors", ts.get("errors", "0"))
    root.append(ts)
    return junit_document(root)


def junit_document(root: ET.Element) -> str:
    """``root`` (a ``<testsuites>``) as the JUnit file's text, indented."""
    ET.indent(root)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def junit_suite(scorecard: dict[str, Any], suite: str) -> ET.Element:
    """The ``<testsuite>`` of one run: a test case per SLO (and ``run``, an error, when the
    run did not end). Why apart: the game-day report puts one per experiment in one file."""
    slos = list(scorecard.get("slos") or [])
    verdict = scorecard.get("verdict")
    aborted = verdict in ("aborted", "incomplete")  # the run did not end: an error, not a pass
    duration = (scorecard.get("run") or {}).get("duration_s") or 0.0
    failures = sum(1 for e in slos if not e.get("passed"))
    errors = 1 if aborted else 0
    tests = len(slos) + errors
    ts = ET.Element(
        "testsuite",
        name=suite,
        tests=str(tests),
        failures=str(failures),
        errors=str(errors),
        skipped="0",
        time=f"{float(duration):.3f}",
    )
    props = ET.SubElement(ts, "properties")
    meta = scorecard.get("meta") or {}
    for name, value in (
        ("verdict", scorecard.get("verdict")),
        ("exit_code", scorecard.get("exit_code")),
        ("run_dir", meta.get("run_dir")),
        ("harness_version", meta.get("harness_version")),
        *((("sharing", scorecard["sharing"]),) if "sharing" in scorecard else ()),
    ):
        ET.SubElement(props, "property", name=name, value=str(value))
    instrument = scorecard.get("instrument")
    if isinstance(instrument, dict):
        saturated = bool(instrument.get("saturated"))
        ET.SubElement(props, "property", name="instrument_saturated", value=str(saturated).lower())
        affected = instrument.get("affected_s")
        ET.SubElement(props, "property", name="instrument_affected_s", value=str(affected))
    classname = f"gpuchaos.{suite}"
    if aborted:
        case = ET.SubElement(ts, "testcase", classname=classname, name="run", time="0")
        reason = str(scorecard.get("abort_reason") or scorecard.get("incomplete_reason") or verdict)
        err = ET.SubElement(case, "error", message=f"run {verdict}: {reason}", type=str(verdict))
        err.text = reason
    for entry in slos:
        # a tenancy run's SLOs are named "<tenant>: <slo>" (harness.scoring.tenancy)
        tenant = entry.get("tenant")
        name = str(entry.get("name")) if tenant else f"slo.{entry.get('name')}"
        where = f"{classname}.{tenant}" if tenant else classname
        case = ET.SubElement(ts, "testcase", classname=where, name=name, time="0")
        message = slo_message(entry)
        if not entry.get("passed"):
            fail = ET.SubElement(case, "failure", message=message, type="slo_missed")
            fail.text = message
        else:
            out = ET.SubElement(case, "system-out")
            out.text = message
    line = instrument_line(scorecard)
    if line:
        ET.SubElement(ts, "system-out").text = line
    return ts


def write_junit(scorecard: dict[str, Any], suite: str, path: Path) -> Path:
    """Write the JUnit file to ``path``."""
    path.write_text(render_junit(scorecard, suite), encoding="utf-8")
    return path
