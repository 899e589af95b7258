"""The tenancy part of a run's reports: a section of ``report.html``, lines of ``summary.md``.

Why a module of its own: a tenancy run's scorecard (:mod:`harness.scoring.tenancy`) holds a
full scorecard per tenant plus what only the run as a whole can say (the blast radius, cost
per tenant, capacity refused); the single-run writers stay as they are and call these for
the per-tenant parts. Each tenant's own report (plots included) is written into
``tenants/<name>/`` by the ordinary writer and linked from here.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from html import escape
from typing import Any

#: Where a tenant's own report lies, relative to the run folder.
TENANT_REPORT = "tenants/{}/report.html"


def is_tenancy(card: Mapping[str, Any]) -> bool:
    """Whether a scorecard is a tenancy run's (it has ``tenants``)."""
    return isinstance(card.get("tenants"), Mapping) and bool(card["tenants"])


def _num(value: Any, unit: str = "", digits: int = 1) -> str:
    if value is None or isinstance(value, bool) or not isinstance(value, int | float):
        return "n/a"
    if not math.isfinite(value):
        return "n/a"
    if unit == "ratio":
        return f"{float(value):.4f}"
    text = f"{value:,.{digits}f}" if isinstance(value, float) else f"{value:,}"
    return f"{text} {unit}".strip()


def _pct(value: Any) -> str:
    return "n/a" if not isinstance(value, int | float) else f"{float(value):.1f}%"


def cost_pairs(cost: Mapping[str, Any]) -> list[tuple[str, str]]:
    """A tenant's cost and utilization as (label, text) pairs."""
    util = _pct(cost.get("utilization_pct"))
    if cost.get("wasted"):
        util += " (under 60%: paid for and idle)"
    pairs = [
        ("GPU-seconds allocated", _num(cost.get("gpu_seconds_allocated"), digits=2)),
        ("GPU-seconds used", _num(cost.get("gpu_seconds_used"), digits=2)),
        ("GPU-seconds idle", _num(cost.get("gpu_seconds_idle"), digits=2)),
        ("utilization", util),
        ("measured from", str(cost.get("source_note") or cost.get("source") or "n/a")),
    ]
    if cost.get("cost") is not None:
        pairs.append(
            (
                "cost",
                f"{_num(cost.get('cost'), digits=4)} (idle {_num(cost.get('idle_cost'), digits=4)})"
                f" at {_num(cost.get('price_per_gpu_hour'), digits=2)} per GPU-hour",
            )
        )
    return pairs


def _slo_rows(card: Mapping[str, Any]) -> str:
    rows = []
    for e in card.get("slos") or []:
        unit = str(e.get("unit", ""))
        ok = bool(e.get("passed"))
        result = '<span class="ok">PASS</span>' if ok else '<span class="bad">FAIL</span>'
        note = f' <span class="note">{escape(str(e["note"]))}</span>' if e.get("note") else ""
        rows.append(
            f"<tr><td>{escape(str(e.get('name')))}</td>"
            f'<td class="num">{escape(str(e.get("comparator", "")))} '
            f"{escape(_num(e.get('objective'), unit, 2))}</td>"
            f'<td class="num">{escape(_num(e.get("measured"), unit, 2))}</td>'
            f"<td>{result}{note}</td></tr>"
        )
    return "".join(rows) or '<tr><td colspan="4">no SLO set</td></tr>'


def _tenant_html(name: str, card: Mapping[str, Any], cost: Mapping[str, Any], link: bool) -> str:
    verdict = str(card.get("verdict", "unknown"))
    run = card.get("run") or {}
    pairs = [
        ("requests", _num(run.get("requests"))),
        ("failed", _num(run.get("errors"))),
        ("availability", _num(run.get("availability"), "ratio")),
        ("p99 latency", _num(run.get("p99_latency_ms"), "ms")),
        *cost_pairs(cost),
    ]
    figures = "".join(
        f"<tr><th>{escape(k)}</th><td class='num'>{escape(v)}</td></tr>" for k, v in pairs
    )
    href = TENANT_REPORT.format(name)
    more = f' &middot; <a href="{escape(href)}">its report, with plots</a>' if link else ""
    return (
        f'<h3 id="tenant-{escape(name)}">{escape(name)} '
        f'<span class="verdict {escape(verdict)}">{escape(verdict.upper())}</span>{more}</h3>'
        '<div class="grid2"><div><table class="tenant-slos"><tr><th>SLO</th><th>objective</th>'
        f"<th>measured</th><th>result</th></tr>{_slo_rows(card)}</table></div>"
        f'<div><table class="tenant-cost">{figures}</table></div></div>'
    )


def _capacity_rows(card: Mapping[str, Any]) -> list[list[str]]:
    denied = card.get("denied_capacity") or {}
    admission = card.get("admission_denials") or {}
    recreated = card.get("recreated") or {}
    rows = []
    for name in card.get("tenants") or {}:
        d, a = denied.get(name) or {}, admission.get(name) or {}
        rules = ", ".join(f"{r} x{n}" for r, n in (a.get("rules") or {}).items())
        rows.append(
            [
                name,
                _num(d.get("refusals")),
                _num(d.get("replica_seconds_denied"), "replica-s"),
                _num(a.get("denials")) + (f" ({rules})" if rules else ""),
                _num(len(recreated.get(name) or [])),
            ]
        )
    return rows


def tenancy_html(card: Mapping[str, Any], links: bool = True) -> str:
    """The tenants section of ``report.html``: per tenant its SLOs, verdict, cost and
    utilization (and a link to its own report); the blast radius; the capacity refused."""
    if not is_tenancy(card):
        return ""
    costs = card.get("cost") or {}
    parts = [
        f'<h2>Tenants</h2><p class="sub">Sharing: <b>{escape(str(card.get("sharing")))}</b>'
        " &middot; each tenant is scored on its own records and objectives; the run fails when "
        "any tenant fails.</p>"
    ]
    for name, tenant in (card.get("tenants") or {}).items():
        parts.append(_tenant_html(name, tenant, costs.get(name) or {}, links))
    blast = card.get("blast_radius") or []
    items = "".join(f"<li>{escape(str(e.get('line')))}</li>" for e in blast)
    parts.append(
        "<h3>Blast radius</h3>"
        + (f'<ul class="blast">{items}</ul>' if items else "<p>No fault was aimed at a tenant.</p>")
    )
    head = ["tenant", "quota refusals", "capacity denied", "admission denials", "recreated"]
    rows = "".join(
        "<tr>" + "".join(f"<td>{escape(c)}</td>" for c in row) + "</tr>"
        for row in _capacity_rows(card)
    )
    parts.append(
        '<h3>Capacity refused</h3><table class="denied"><tr>'
        + "".join(f"<th>{escape(h)}</th>" for h in head)
        + f"</tr>{rows}</table>"
    )
    return '<section id="tenants">' + "".join(parts) + "</section>"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


_ICONS = {"pass": "✅", "fail": "❌", "aborted": "⚠️", "incomplete": "⚠️"}


def tenancy_summary(card: Mapping[str, Any]) -> list[str]:
    """The tenancy lines of ``summary.md``: a table per tenant, the blast radius and the
    capacity refused."""
    if not is_tenancy(card):
        return []
    costs = card.get("cost") or {}
    lines = [
        f"**Tenants** (sharing `{_cell(str(card.get('sharing')))}`):",
        "",
        "| tenant | verdict | requests | failed | p99 | GPU-s allocated | utilization | cost |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, tenant in (card.get("tenants") or {}).items():
        run, cost = tenant.get("run") or {}, costs.get(name) or {}
        verdict = str(tenant.get("verdict", "unknown"))
        util = _pct(cost.get("utilization_pct")) + (" ⚠️" if cost.get("wasted") else "")
        lines.append(
            f"| {_cell(name)} | {_ICONS.get(verdict, '')} {verdict} | {_num(run.get('requests'))}"
            f" | {_num(run.get('errors'))} | {_num(run.get('p99_latency_ms'), 'ms')}"
            f" | {_num(cost.get('gpu_seconds_allocated'), digits=2)} | {util}"
            f" | {_num(cost.get('cost'), digits=4)} |"
        )
    lines += ["", "**Blast radius:**", ""]
    blast = card.get("blast_radius") or []
    lines += [f"- {_cell(str(e.get('line')))}" for e in blast] or ["- no fault aimed at a tenant"]
    rows = [r for r in _capacity_rows(card) if any(c not in ("0", "0.0 replica-s") for c in r[1:])]
    if rows:
        lines += [
            "",
            "| tenant | quota refusals | capacity denied | admission denials | recreated |",
            "|---|---:|---:|---:|---:|",
        ]
        lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    lines.append("")
    return lines
