"""The report's GPU failure section: every XID seen with NVIDIA's action, and how long a
lost GPU was unschedulable and its replicas took to be Ready elsewhere.

Why its own section: an XID in the timeline says what broke; on-call needs what to do about
it (restart the application, reset the GPU, drain the node), and that is the row here.
Reads only the scorecard's ``gpu`` block (:mod:`harness.scoring.gpu_slos`).
"""

from __future__ import annotations

from html import escape
from typing import Any


def _s(value: Any) -> str:
    return "-" if not isinstance(value, int | float) else f"{float(value):.1f} s"


def _elsewhere(row: dict[str, Any]) -> str:
    got = row.get("ready_elsewhere_s") or {}
    if not got:
        return "no replica of the node"
    return ", ".join(f"{rid} {_s(v) if v is not None else 'never'}" for rid, v in got.items())


def _blocks(card: dict[str, Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    gpu = card.get("gpu") or {}
    return list(gpu.get("xids") or []), list(gpu.get("gpu_unschedulable") or [])


def gpu_faults_html(card: dict[str, Any]) -> str:
    """``<h2>GPU failures</h2>`` with the XID table and the lost-GPU rows, or ''."""
    xids, lost = _blocks(card)
    if not xids and not lost:
        return ""
    out = "<h2>GPU failures</h2>"
    if xids:
        rows = "".join(
            f"<tr><td class='num'>{int(r['xid'])}</td><td class='num'>{r.get('count')}</td>"
            f"<td>{escape(', '.join(map(str, r.get('where') or [])))}</td>"
            f"<td>{escape(', '.join(map(str, r.get('origin') or [])))}</td>"
            f"<td>{escape(str(r.get('meaning')))}</td><td>{escape(str(r.get('action')))}</td></tr>"
            for r in xids
        )
        out += (
            '<table class="xids"><tr><th>XID</th><th>count</th><th>where</th><th>origin</th>'
            f"<th>meaning</th><th>NVIDIA's action</th></tr>{rows}</table>"
        )
    for row in lost:
        out += (
            f'<p class="note">GPU of {escape(str(row.get("node")))} unschedulable '
            f"{_s(row.get('unschedulable_s'))}"
            f"{'' if row.get('ended') else ' (still at the end of the load)'}; "
            f"its replicas Ready elsewhere after: {escape(_elsewhere(row))}.</p>"
        )
    return out


def gpu_faults_summary(card: dict[str, Any]) -> list[str]:
    """Markdown lines for ``summary.md`` (a blank line first), or []."""
    xids, lost = _blocks(card)
    if not xids and not lost:
        return []
    lines = [""]
    if xids:
        lines += ["| XID | count | meaning | NVIDIA's action |", "|---|---|---|---|"]
        lines += [
            f"| {r['xid']} | {r.get('count')} | {r.get('meaning')} | {r.get('action')} |"
            for r in xids
        ]
    for row in lost:
        lines.append(
            f"> GPU of {row.get('node')} unschedulable {_s(row.get('unschedulable_s'))}; "
            f"replicas Ready elsewhere after: {_elsewhere(row)}"
        )
    return lines
