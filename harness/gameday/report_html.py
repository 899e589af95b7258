"""``gameday.html``: the game day on one self-contained page (inline CSS and SVG).

The single-run report's look and parts (:data:`harness.report.html.CSS`, its render check,
the charts of :mod:`harness.report.svg`): the outcome; a table of the experiments (status,
score, time to recover, requests lost, SLO misses, the time between experiments) each
linking to its run's ``report.html``; what changed since the last game day of the plan; and
per experiment two small plots over its load (p99 latency and failed requests per second,
the scorer's per-second figures from ``slis.csv``) with its fault windows shaded.
"""

from __future__ import annotations

import logging
import math
from html import escape
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pandas as pd

from harness import __version__
from harness.gameday.report_data import (
    FINISHED,
    Entry,
    GameDayData,
    miss_text,
    recovery_text,
)
from harness.report.html import CSS, RENDER_CHECK
from harness.report.svg import Chart, Series, Window, render
from harness.rundir import REPORT_FILE, RunDir
from harness.scoring import fault_windows
from harness.scoring.intake import read_events

log = logging.getLogger(__name__)

#: The per-experiment plots' size (half the single-run report's width: two side by side).
PLOT_WIDTH, PLOT_HEIGHT = 460, 190

EXTRA_CSS = """
.error,.incomplete{background:#9a6700}.notrun{background:#8c959f}.unfinished{background:#57606a}
.passed{background:#1a7f37}.failed{background:#cf222e}
td .verdict{font-size:12px;padding:1px 6px}
.worse{color:#cf222e}.better{color:#1a7f37}
.exp{margin-top:18px}.exp h3{font-size:15px;margin:0 0 4px}
"""


def _css_class(status: str) -> str:
    return status.replace(" ", "")


def _badge(status: str) -> str:
    return f'<span class="verdict {_css_class(status)}">{escape(status.upper())}</span>'


def _num(value: Any, unit: str = "", digits: int = 1) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "-"
    if not math.isfinite(value):
        return "n/a"
    text = f"{value:,.{digits}f}" if isinstance(value, float) else f"{value:,}"
    return f"{text} {unit}".strip()


def _link(data: GameDayData, entry: Entry) -> str:
    """The experiment's name, linked to its run's report.html (a relative link)."""
    name = escape(entry.name)
    if entry.run_dir is None or not RunDir(entry.run_dir).report.is_file():
        return f"<code>{name}</code>"
    rel = entry.run_dir.relative_to(data.folder) / REPORT_FILE
    return f'<a href="{escape(quote(rel.as_posix()))}"><code>{name}</code></a>'


def _table(data: GameDayData) -> str:
    rows = []
    for e in data.entries:
        status = _badge(e.status)
        if e.status not in FINISHED and e.reason:
            status += f' <span class="note">{escape(e.reason)}</span>'
        lost = e.figure("recovery", "requests_lost") if e.figure("recovery", "fault") else None
        misses = escape(miss_text(e)) or "-"
        cells = [
            f'<td class="num">{e.index}</td>',
            f"<td>{_link(data, e)}</td>",
            f"<td>{status}</td>",
            f'<td class="num">{_num(e.figure("score", "value"))}</td>',
            f'<td class="num">{escape(recovery_text(e))}</td>',
            f'<td class="num">{_num(lost)}</td>',
            f"<td>{misses}</td>",
            f'<td class="num">{_num(e.item.get("reset_s"), "s")}</td>',
        ]
        rows.append(f'<tr id="exp-{e.index}">' + "".join(cells) + "</tr>")
    return (
        '<table class="gameday"><tr><th>#</th><th>experiment</th><th>result</th><th>score</th>'
        "<th>time to recover</th><th>requests lost</th><th>SLO misses</th>"
        "<th>time since the previous one</th></tr>" + "".join(rows) + "</table>"
    )


def _since_last(data: GameDayData) -> str:
    if data.previous is None:
        text = "; ".join(data.notes) or (
            f"No earlier game day of the plan <code>{escape(str(data.doc.get('plan_name')))}"
            "</code> was found."
        )
        return f'<p class="note">{text}</p>'
    prev = data.previous
    when = prev.started.strftime("%Y-%m-%d %H:%M UTC") if prev.started is not None else "?"
    rows = []
    for c in data.changes:
        worse = "<br>".join(escape(w) for w in c.worse) or "-"
        better = "<br>".join(escape(b) for b in c.better) or "-"
        rows.append(
            f"<tr><td><code>{escape(c.name)}</code></td>"
            f"<td>{escape(c.verdicts[0])} &rarr; {escape(c.verdicts[1])}</td>"
            f'<td class="num">{_num(c.score[0])} &rarr; {_num(c.score[1])}</td>'
            f'<td class="worse">{worse}</td><td class="better">{better}</td></tr>'
        )
    body = (
        '<table class="changes"><tr><th>experiment</th><th>verdict</th><th>score</th>'
        "<th>worse</th><th>better</th></tr>" + "".join(rows) + "</table>"
        if rows
        else '<p class="note">No experiment ran in both game days.</p>'
    )
    return (
        f'<p class="note">Compared with <code>{escape(prev.folder.name)}</code> ({when}) by '
        "the figures and default thresholds of <code>gpuchaos compare</code>.</p>" + body
    )


def _per_second(run_dir: Path) -> pd.DataFrame | None:
    """The scorer's per-second figures of the run (``slis.csv``), or None."""
    path = RunDir(run_dir).slis
    if not path.is_file():
        return None
    try:
        frame = pd.read_csv(path)
    except Exception as exc:  # an odd file costs the plot, not the page
        log.warning("game-day report: %s unreadable (%s)", path, exc)
        return None
    if not {"second", "p99_ms", "errors"} <= set(frame.columns):
        return None
    return frame


def _plots(entry: Entry) -> list[Chart]:
    """p99 latency and failed requests per second over the run's load, faults shaded."""
    if entry.run_dir is None or entry.card is None:
        return []
    sec = _per_second(entry.run_dir)
    run = entry.card.get("run") or {}
    t0, end = run.get("t0"), run.get("load_end")
    if sec is None or not isinstance(t0, int | float):
        return []
    end = float(end) if isinstance(end, int | float) else float(t0) + len(sec)
    events = read_events(RunDir(entry.run_dir).timeline, None) or []
    spans = fault_windows(events, t0=float(t0), open_until=end, labels=True)
    windows = [Window(s, e, label) for s, e, label in sorted(spans)]
    x = [float(s) + 0.5 for s in sec["second"].tolist()]
    x_max = max(end - float(t0), float(len(sec)))
    p99_obj = next(
        (
            s.get("objective")
            for s in entry.figure("slos") or []
            if s.get("name") == "p99_latency_ms"
        ),
        None,
    )
    latency = Chart(
        f"p99-{entry.index}",
        "p99 latency",
        "ms (log)",
        [Series("p99", x, [float(v) for v in sec["p99_ms"].tolist()])],
        x_max,
        windows,
        refs=[("objective", float(p99_obj))] if isinstance(p99_obj, int | float) else [],
        log_y=True,
        width=PLOT_WIDTH,
        height=PLOT_HEIGHT,
    )
    errors = Chart(
        f"errors-{entry.index}",
        "Failed requests",
        "per second",
        [Series("failed", x, [float(v) for v in sec["errors"].tolist()], color="#cf222e")],
        x_max,
        windows,
        width=PLOT_WIDTH,
        height=PLOT_HEIGHT,
    )
    return [latency, errors]


def _experiments(data: GameDayData) -> str:
    parts = []
    for e in data.entries:
        charts = _plots(e)
        head = f"<h3>{e.index}. {_link(data, e)} {_badge(e.status)}</h3>"
        if charts:
            figures = "".join(f"<figure>{render(c)}</figure>" for c in charts)
            body = f'<div class="grid2">{figures}</div>'
        elif e.run_dir is None:
            body = f'<p class="note">Not run{": " + escape(e.reason) if e.reason else ""}.</p>'
        else:
            body = '<p class="note">No per-second figures (slis.csv) in its run folder.</p>'
        parts.append(f'<section class="exp">{head}{body}</section>')
    return "".join(parts)


def render_gameday_html(data: GameDayData) -> str:
    """The page as one string."""
    doc = data.doc
    facts = [
        f"plan <code>{escape(str(doc.get('plan')))}</code>",
        f"started {escape(str(doc.get('started')))}",
        f"ended {escape(str(doc.get('ended')))}" if doc.get("ended") else "not ended",
        f"platform up in {_num(doc.get('deploy_s'), 's')}",
    ]
    if doc.get("seed") is not None:
        facts.append(f"shuffled with seed {escape(str(doc['seed']))}")
    facts.append(f"gpuchaos {escape(str(doc.get('harness_version') or __version__))}")
    code = "-" if data.exit_code is None else str(data.exit_code)
    head = (
        f"<h1>{escape(data.title)}</h1>"
        f"<p>{_badge(data.outcome)}exit code {code} &middot; game day "
        f"<code>{escape(data.folder.name)}</code> &middot; " + " &middot; ".join(facts) + "</p>"
    )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>gpuchaos game day: {escape(data.title)} ({escape(data.outcome)})</title>"
        f"<style>{CSS}{EXTRA_CSS}</style></head><body><main>"
        f"{head}<h2>Experiments</h2>{_table(data)}"
        '<p class="note">Each name links to the run\'s full report. Time since the previous '
        "one: from the previous experiment's end to this one's start (reset and health gate)."
        "</p>"
        f"<h2>Since the last game day of this plan</h2>{_since_last(data)}"
        '<h2>Over time</h2><p class="note">Per experiment, over its load: p99 latency (failed '
        "requests count as the client timeout) and failed requests per second; fault windows "
        f"shaded red.</p>{_experiments(data)}"
        f"</main><script>{RENDER_CHECK}</script></body></html>\n"
    )
