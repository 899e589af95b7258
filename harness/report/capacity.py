"""The capacity section of ``report.html`` and ``summary.md``: the preflight lines and the
chain's table (:mod:`harness.scoring.capacity`): when each link happened and how long it
took after the one before. Nothing is shown for a run without a preflight or a pool node."""

from __future__ import annotations

from html import escape
from typing import Any


def _s(value: Any) -> str:
    return "-" if not isinstance(value, int | float) else f"{value:,.1f} s"


def _delay(value: Any) -> str:
    """A link's delay; one that happened before the link above it (SLOs that held again
    before the new replica was Ready: the survivors coped) says so."""
    if isinstance(value, int | float) and value < 0:
        return f"{-value:,.1f} s earlier"
    return _s(value)


def _shown(card: dict[str, Any]) -> dict[str, Any] | None:
    cap = card.get("capacity")
    if not isinstance(cap, dict):
        return None
    if not cap.get("preflight") and cap.get("note"):
        return None  # no preflight, no pool node: nothing to say
    return cap


def _what(row: dict[str, Any]) -> str:
    extra = [f"{k} {row[k]}" for k in ("metric", "to", "replica", "node") if row.get(k)]
    return ", ".join(extra)


def capacity_html(card: dict[str, Any]) -> str:
    """``<h2>Capacity</h2>`` with the preflight lines and the chain table, or ''."""
    cap = _shown(card)
    if cap is None:
        return ""
    out = "<h2>Capacity</h2>"
    for check in cap.get("preflight") or []:
        cls = "bad" if check.get("in_time") is False else "note"
        out += f'<p class="{cls}">preflight: {escape(str(check.get("line", "")))}</p>'
    if not cap.get("note"):
        rows = "".join(
            f"<tr><td>{escape(str(r.get('link')))}</td><td class='num'>{_s(r.get('at_s'))}</td>"
            f"<td class='num'>{_delay(r.get('delay_s'))}</td><td>{escape(_what(r))}</td></tr>"
            for r in cap.get("chain") or []
        )
        out += (
            '<table class="capacity"><tr><th>link</th><th>at</th><th>after the link before'
            f"</th><th></th></tr>{rows}</table>"
            f'<p class="note">first link to the last: {_s(cap.get("total_s"))}; pool nodes '
            f"added {cap.get('nodes_added', 0)}, removed {cap.get('nodes_removed', 0)}.</p>"
        )
    return out


def capacity_summary(card: dict[str, Any]) -> list[str]:
    """Markdown lines for ``summary.md`` (with a blank line first), or []."""
    cap = _shown(card)
    if cap is None:
        return []
    lines = [""]
    lines += [f"> preflight: {c.get('line', '')}" for c in cap.get("preflight") or []]
    if not cap.get("note"):
        if len(lines) > 1:
            lines.append("")
        lines += ["| capacity chain | at | after the link before |", "|---|---:|---:|"]
        for r in cap.get("chain") or []:
            lines.append(f"| {r.get('link')} | {_s(r.get('at_s'))} | {_delay(r.get('delay_s'))} |")
        lines += ["", f"Capacity chain: {_s(cap.get('total_s'))} from the first link to the last."]
    return lines
