"""The debrief: ``drill.json`` and ``debrief.html`` reveal the scenario and put the true
timeline beside the trainee's, with the score and its parts.

``debrief.html`` is self-contained (the report's CSS, inline SVG charts drawn by the
report's own renderer, :func:`harness.report.charts.chart_svgs`, over the unfiltered
timeline, so the fault's window is shaded there at last).
"""

from __future__ import annotations

import json
import logging
from html import escape
from pathlib import Path
from typing import Any

from harness.drill.view import FAULT_EVENTS

log = logging.getLogger(__name__)

DRILL_FILE = "drill.json"
DEBRIEF_FILE = "debrief.html"
#: Events of the true timeline worth showing beside the trainee's.
TRUE_KINDS = FAULT_EVENTS | {
    "node_down",
    "node_up",
    "replica_exit",
    "replica_start",
    "replica_ready",
    "replica_unready",
    "replica_ejected",
    "replica_returned",
    "scale",
    "abort",
}
#: The charts the debrief shows (ids of :func:`harness.report.charts.build_charts`).
DEBRIEF_CHARTS = ("latency", "errors", "throughput", "replicas")


def true_timeline(events: list[dict[str, Any]], t0: float) -> list[dict[str, Any]]:
    """The platform's and the fault's events, seconds after the load started."""
    out = []
    for e in events:
        if e.get("kind") in TRUE_KINDS and isinstance(e.get("time"), int | float):
            out.append(
                {
                    "t_s": round(float(e["time"]) - t0, 1),
                    "kind": e["kind"],
                    "target": e.get("target", ""),
                    "details": e.get("details") or {},
                }
            )
    return out


def write_drill_json(run_dir: Path, drill: dict[str, Any]) -> Path:
    path = run_dir / DRILL_FILE
    path.write_text(json.dumps(drill, indent=2, default=str) + "\n", encoding="utf-8")
    return path


def _row(cells: list[str], head: bool = False) -> str:
    tag = "th" if head else "td"
    return "<tr>" + "".join(f"<{tag}>{c}</{tag}>" for c in cells) + "</tr>"


def _s(value: Any, unit: str = " s") -> str:
    """A figure for the page: seconds by default, yes/no for a truth, - for none."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float | int):
        return f"{value:g}{unit}"
    return str(value)


def _fact(key: str, value: Any) -> str:
    return _s(value, " s" if key.startswith("tt") else "")


def _charts(run_dir: Path) -> str:
    try:
        from harness.report.charts import chart_svgs, read_current

        charts = chart_svgs(read_current(run_dir))
    except Exception as exc:  # a debrief without plots is still a debrief
        log.warning("debrief charts failed: %s", exc)
        return ""
    wanted = [c for c in charts if any(c["id"].startswith(k) for k in DEBRIEF_CHARTS)] or charts
    return "".join(f"<figure><h3>{escape(c['title'])}</h3>{c['svg']}</figure>" for c in wanted)


def render_debrief(run_dir: Path, drill: dict[str, Any]) -> str:
    """The debrief page of ``drill`` (the content of drill.json)."""
    from harness.report.html import CSS

    sc = drill["scenario"]
    score = drill["score"]
    parts = "".join(
        _row(
            [
                escape(name),
                f"{p['points']:g} / {p['out_of']:g}",
                escape(
                    ", ".join(
                        f"{k}: {_fact(k, v)}" for k, v in p.items() if k not in ("points", "out_of")
                    )
                ),
            ]
        )
        for name, p in score["parts"].items()
    )
    figures = [
        ("time to acknowledge", _s(score["time_to_acknowledge_s"])),
        ("time to a correct diagnosis", _s(score["time_to_diagnose_s"])),
        ("wrong guesses", str(score["wrong_guesses"])),
        ("time to mitigate", _s(score["time_to_mitigate_s"])),
        ("mitigation helped", _s(score["mitigation_helped"])),
        ("time to declare resolved", _s(score["time_to_resolve_s"])),
    ]
    damage = drill.get("damage") or {}
    base = drill.get("baseline") or {}
    dmg_rows = "".join(
        _row([escape(label), _s(damage.get(k), unit), _s(base.get(k), unit)])
        for k, label, unit in (
            ("window_s", "window (from the injection)", " s"),
            ("requests", "requests", ""),
            ("failed", "failed", ""),
            ("bad_s", "seconds that missed the SLOs", " s"),
            ("bad_share", "share of the window", ""),
        )
    )
    true_rows = "".join(
        _row(
            [
                f"{e['t_s']:g}",
                escape(e["kind"]),
                escape(str(e["target"])),
                escape(json.dumps(e["details"], default=str)[:160]),
            ]
        )
        for e in drill["true_timeline"]
    )
    trainee_rows = "".join(
        _row(
            [
                f"{a['t_s']:g}",
                escape(a["action"]),
                escape(json.dumps(a["args"])),
                "ok" if a["ok"] else "refused",
                escape(str(a.get("error") or a.get("result") or "")[:160]),
            ]
        )
        for a in drill["trainee"]
    )
    herrings = ", ".join(f"{h['kind']} {h['target']} at {h['at_s']:g} s" for h in sc["herrings"])
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        f"<title>Drill debrief: {escape(sc['fault'])}</title><style>{CSS}</style></head><body>"
        f"<h1>Drill debrief: {score['score']:g} / {score['out_of']:g}</h1>"
        f"<p>{escape(drill['title'])} (pack {escape(drill['pack'])}, seed {sc['seed']}); "
        f"ended by {escape(drill['ended_by'])}.</p>"
        f"<h2>The scenario</h2><p><b>{escape(sc['fault'])}</b> on <b>{escape(sc['target'])}</b>, "
        f"injected at {_s(drill.get('injected_at_s'))} (drawn {sc['at_s']:g} s), held "
        f"{_s(sc['duration_s'])}; right diagnosis: {escape(sc['diagnosis'])}. "
        f"Red herrings: {escape(herrings or 'none')}.</p>"
        "<h2>Score</h2><table>"
        + "".join(_row([escape(k), escape(v)]) for k, v in figures)
        + "</table><table>"
        + _row(["part", "points", "facts"], True)
        + parts
        + "</table>"
        "<h2>SLO damage from the injection</h2><table>"
        + _row(
            ["", "this drill", f"left alone ({escape(str(base.get('source') or 'no baseline'))})"],
            True,
        )
        + dmg_rows
        + "</table>"
        "<h2>Timelines</h2><div style='display:flex;gap:2em;flex-wrap:wrap'>"
        "<div><h3>What really happened</h3><table>"
        + _row(["s", "event", "target", "details"], True)
        + true_rows
        + "</table></div><div><h3>What the trainee did</h3><table>"
        + _row(["s", "action", "arguments", "", "result"], True)
        + trainee_rows
        + "</table></div></div>"
        f"<h2>The run</h2>{_charts(run_dir)}</body></html>"
    )


def write_debrief(run_dir: Path, drill: dict[str, Any]) -> Path:
    path = run_dir / DEBRIEF_FILE
    path.write_text(render_debrief(run_dir, drill), encoding="utf-8")
    return path
