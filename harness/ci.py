"""CI-native output: what ``gpuchaos run`` and ``gpuchaos compare`` add when they run in CI.

Why a module of its own: a CI job reads a run differently from a person at a terminal. On
GitHub Actions (``GITHUB_ACTIONS=true``) the run's ``summary.md`` (the one the report package
wrote; never a second rendering) is appended to ``$GITHUB_STEP_SUMMARY``, and each missed SLO,
a failed run and each regression of a comparison becomes a workflow command
(``::error title=...::message``) that GitHub shows as an annotation on the job and the pull
request. Everything here only formats and appends; nothing decides a verdict.

Workflow commands are one line each, so their text is escaped as GitHub's runner unescapes
it: ``%``, ``\\r`` and ``\\n`` in the message, and ``:`` and ``,`` as well in a property
(``title=``, ``file=``), where they would end the value.
"""

from __future__ import annotations

import logging
import math
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, TextIO

from harness.rundir import RunDir

log = logging.getLogger(__name__)

Level = Literal["error", "warning", "notice"]


def in_github_actions(env: Mapping[str, str] | None = None) -> bool:
    """True inside a GitHub Actions job (the runner sets ``GITHUB_ACTIONS=true``)."""
    return (os.environ if env is None else env).get("GITHUB_ACTIONS") == "true"


def escape_data(text: str) -> str:
    """A workflow command's message: ``%``, CR and LF escaped (``%`` first)."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    """A workflow command's property value: as a message, and ``:`` and ``,`` too."""
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


def annotation(level: Level, message: str, **properties: str | None) -> str:
    """One ``::level prop=value,...::message`` line; properties that are None are left out."""
    props = ",".join(
        f"{key}={escape_property(str(value))}"
        for key, value in properties.items()
        if value is not None
    )
    return f"::{level}{' ' + props if props else ''}::{escape_data(message)}"


def _num(value: Any, unit: str = "") -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "n/a"
    if isinstance(value, float) and not math.isfinite(value):
        return "n/a"
    if unit == "ratio":
        return f"{value:.4f}"
    if isinstance(value, int) or float(value).is_integer():
        text = f"{value:.0f}"
    else:
        text = f"{value:.4g}" if abs(value) < 1 else f"{value:.1f}"
    return f"{text} {unit}".rstrip()


def annotation_file(path: str | Path | None) -> str | None:
    """The experiment's path as GitHub wants it for ``file=`` (relative to the workspace), or
    None when it lies outside the workspace (GitHub would not find it)."""
    if path is None:
        return None
    p = Path(path)
    if not p.is_absolute():
        return p.as_posix()
    workspace = os.environ.get("GITHUB_WORKSPACE")
    if workspace and p.is_relative_to(workspace):
        return p.relative_to(workspace).as_posix()
    return None


def run_annotations(
    scorecard: Mapping[str, Any],
    name: str,
    exit_code: int,
    error: str | None = None,
    file: str | None = None,
) -> list[str]:
    """The annotations of one run: for exit 2 one ``::error`` naming the error (the SLO
    figures of an incomplete run are in the summary, not annotated); else one ``::error``
    per missed SLO, or one ``::notice`` when the run passed."""
    if exit_code == 2:
        reason = error or scorecard.get("abort_reason") or scorecard.get("note")
        text = f"{name}: the run could not complete: {reason or 'see harness.log'}"
        return [annotation("error", text, title="gpuchaos: run failed (exit 2)", file=file)]
    missed = [e for e in scorecard.get("slos") or [] if not e.get("passed")]
    if exit_code == 0 and not missed:
        slos = len(scorecard.get("slos") or [])
        rec = scorecard.get("recovery") or {}
        extra = ""
        if rec.get("fault") and rec.get("recovered"):
            extra = f"; recovered in {_num(rec.get('time_to_recover_s'), 's')}"
        score = _num((scorecard.get("score") or {}).get("value"))
        text = f"{name}: all {slos} SLOs met (score {score}{extra})"
        return [annotation("notice", text, title="gpuchaos: pass", file=file)]
    lines = []
    for e in missed:
        unit = str(e.get("unit", ""))
        text = (
            f"{name}: {e.get('name')} measured {_num(e.get('measured'), unit)}, objective "
            f"{e.get('comparator', '')} {_num(e.get('objective'), unit)}".rstrip()
        )
        if e.get("note"):
            text += f" ({e['note']})"
        lines.append(annotation("error", text, title=f"SLO missed: {e.get('name')}", file=file))
    if not lines:  # exit 1 without a failed SLO entry: still one line that says so
        text = f"{name}: verdict {scorecard.get('verdict')}"
        lines.append(annotation("error", text, title="gpuchaos: fail", file=file))
    return lines


def compare_annotations(result: Mapping[str, Any], name: str = "compare") -> list[str]:
    """The annotations of ``gpuchaos compare``: ``::error`` per regression (figures and the
    verdict), ``::notice`` per improved figure, one ``::notice`` when nothing regressed."""
    lines = [
        annotation("error", f"{name}: {text}", title=f"Regression: {text.split(':', 1)[0]}")
        for text in result.get("regressions") or []
    ]
    for row in result.get("rows") or []:
        if row.get("result") != "better":
            continue
        unit = str(row.get("unit") or "")
        pct = row.get("delta_pct")
        change = f" ({pct:+.1f}%)" if isinstance(pct, int | float) else ""
        text = (
            f"{name}: {row['figure']} {_num(row.get('baseline'), unit)} -> "
            f"{_num(row.get('run'), unit)}{change}"
        )
        lines.append(annotation("notice", text, title=f"Improvement: {row['figure']}"))
    if not result.get("regressions"):
        lines.append(
            annotation(
                "notice",
                f"{name}: no regression beyond the thresholds",
                title="gpuchaos compare: ok",
            )
        )
    return lines


def append_step_summary(text: str, env: Mapping[str, str] | None = None) -> Path | None:
    """Append ``text`` to ``$GITHUB_STEP_SUMMARY``; None when the variable is not set (a
    wrapper such as the composite action writes the summary itself) or the file is not
    writable (logged: a summary must never fail a run)."""
    target = (os.environ if env is None else env).get("GITHUB_STEP_SUMMARY")
    if not target:
        return None
    path = Path(target)
    try:
        with path.open("a", encoding="utf-8") as f:
            f.write(text if text.endswith("\n") else text + "\n")
    except OSError as exc:
        log.warning("could not append to GITHUB_STEP_SUMMARY %s: %s", path, exc)
        return None
    return path


def report_run(
    scorecard: Mapping[str, Any],
    title: str,
    run_dir: Path,
    exit_code: int,
    *,
    name: str,
    error: str | None = None,
    experiment_file: str | Path | None = None,
    out: TextIO | None = None,
    env: Mapping[str, str] | None = None,
) -> bool:
    """On GitHub Actions: append the run's ``summary.md`` to the step summary and print its
    annotations. Returns whether it did (False outside GitHub Actions)."""
    if not in_github_actions(env):
        return False
    summary = RunDir(run_dir).summary
    if summary.is_file():
        text = summary.read_text(encoding="utf-8")
    else:  # the report writers failed: the same renderer, from the scorecard in memory
        from harness.report.summary import render_summary

        text = render_summary(dict(scorecard), title)
    append_step_summary(text, env)
    stream = out or sys.stdout
    for line in run_annotations(
        scorecard, name, exit_code, error, annotation_file(experiment_file)
    ):
        print(line, file=stream)
    stream.flush()
    return True


def report_error(
    exc: BaseException,
    experiment_file: str | Path | None = None,
    out: TextIO | None = None,
    env: Mapping[str, str] | None = None,
) -> None:
    """On GitHub Actions: an error before the run began (bad input) as one annotation."""
    if in_github_actions(env):
        print(
            annotation(
                "error",
                str(exc),
                title="gpuchaos: run failed (exit 2)",
                file=annotation_file(experiment_file),
            ),
            file=out or sys.stdout,
        )


def run_compare(
    baseline: str | Path,
    run: str | Path,
    thresholds: Sequence[str],
    out: TextIO | None = None,
    env: Mapping[str, str] | None = None,
) -> int:
    """``gpuchaos compare``: the table of :func:`harness.compare.comparison_table`, then,
    on GitHub Actions, its annotations. 1 on a regression, 0 otherwise (errors raise)."""
    from harness.compare import compare, comparison_table, load_scorecard, parse_thresholds

    gates = parse_thresholds(thresholds)
    result = compare(load_scorecard(baseline), load_scorecard(run), gates)
    stream = out or sys.stdout
    print(comparison_table(result), file=stream)
    if in_github_actions(env):
        where = Path(run)
        label = where.parent.name if where.is_file() else where.name
        for line in compare_annotations(result, label or str(run)):
            print(line, file=stream)
    return 1 if result["regressions"] else 0
