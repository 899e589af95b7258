"""The alerts of a run as text: the CLI's table, the summary's "time to alert" row and the
report's small table. Why one module: the three must say the same thing about the same
alert (fired, when, time to alert, resolved)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

COLUMNS = ("alert", "severity", "windows", "fired", "first firing", "time to alert", "resolved")


def _s(value: Any) -> str:
    return "-" if value is None else f"{float(value):.1f} s"


def row_cells(row: Mapping[str, Any]) -> list[str]:
    """The table cells of one alert (a row of :func:`harness.alerts.burnrate.evaluate` or of
    a rule file's evaluation): seconds from the load start, time to alert from the fault."""
    windows = row.get("windows")
    if windows and row.get("long_window_s") is not None:
        windows = f"{windows} -> {row['long_window_s']}s/{row['short_window_s']}s"
    fired = bool(row.get("fired"))
    resolved = _s(row.get("resolved_s"))
    if fired and row.get("resolved_s") is None:
        resolved = "still firing at the end"
    firing = "yes" if fired else "no"
    if fired and len(row.get("episodes") or []) > 1:
        firing = f"yes ({len(row['episodes'])} times)"
    if row.get("fired_before_fault"):
        firing += ", before the fault too"
    return [
        str(row.get("name")),
        str(row.get("severity") or "-"),
        str(windows or "-"),
        firing,
        _s(row.get("first_firing_s")),
        _s(row.get("time_to_alert_s")),
        resolved if fired else "-",
    ]


def table_text(rows: Sequence[Mapping[str, Any]]) -> str:
    """An aligned text table of the alerts."""
    cells = [list(COLUMNS)] + [row_cells(r) for r in rows]
    widths = [max(len(c[i]) for c in cells) for i in range(len(COLUMNS))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip() for line in cells
    )


def headline(block: Mapping[str, Any] | None) -> str | None:
    """One phrase: the time to alert and what fired, or that nothing did (None without an
    ``alerts`` block: an old scorecard)."""
    if not isinstance(block, Mapping):
        return None
    rules = block.get("rules") or []
    if not rules:
        return "no availability or latency objective: no default alerts"
    fired = [r for r in rules if r.get("fired")]
    if not fired:
        return f"no default alert fired (0 of {len(rules)})"
    pages = sum(1 for r in fired if r.get("severity") == "page")
    count = f"{len(fired)} of {len(rules)} default alerts fired, " + (
        f"{pages} of them pages" if pages else "no page"
    )
    if block.get("fault_start_s") is None:
        return f"no fault; {count}, the first at {_s(block.get('first_firing_s'))}"
    tta, page = block.get("time_to_alert_s"), block.get("time_to_page_s")
    if tta is None:
        return f"none after the fault; {count} before it"
    first_page = "" if page is None else f"; first page {_s(page)} after the fault"
    return f"{_s(tta)} after the fault ({count}{first_page})"


def summary_rows(card: Mapping[str, Any]) -> list[str]:
    """The summary.md row of the recovery table: ``| time to alert | ... |``."""
    text = headline(card.get("alerts"))
    return [] if text is None else [f"| time to alert | {text.replace('|', '/')} |"]


def alerts_html(card: Mapping[str, Any]) -> str:
    """The report's alert table ("" for a scorecard without an ``alerts`` block)."""
    block = card.get("alerts")
    text = headline(block)
    if text is None or not isinstance(block, Mapping):
        return ""
    head = "".join(f"<th>{escape(c)}</th>" for c in COLUMNS)
    body = "".join(
        "<tr>" + "".join(f"<td>{escape(c)}</td>" for c in row_cells(r)) + "</tr>"
        for r in block.get("rules") or []
    )
    return (
        f'<h3 id="alerts">Alerts: time to alert</h3><p class="note">{escape(text)}. The SRE '
        "workbook's multi-window, multi-burn-rate alerts, windows scaled to the run "
        "(<code>gpuchaos alerts</code>; times in seconds from the load start).</p>"
        f'<table class="alerts"><tr>{head}</tr>{body}</table>'
    )
