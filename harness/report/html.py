"""``report.html``: one self-contained page (inline CSS and SVG, nothing fetched).

Sections: the verdict and the experiment's title (and the instrument's warning when the load
generator was saturated); the scorecard (SLO table, recovery, run and instrument figures);
plots over the load with the fault windows and the load generator's saturated seconds
shaded, one renderer for both (latency percentiles, TTFT, error rate, throughput and
goodput, replicas Ready, GPU utilization and memory per GPU or CPU and RSS without a GPU,
queue depth and KV-cache usage, the Locust processes' CPU); the timeline; the experiment as
run.
"""

from __future__ import annotations

import json
import math
from html import escape
from pathlib import Path
from typing import Any

import pandas as pd

from harness import __version__
from harness.alerts.view import alerts_html
from harness.report.capacity import capacity_html
from harness.report.charts import build_charts
from harness.report.data import RunData
from harness.report.gpu_faults import gpu_faults_html
from harness.report.svg import render
from harness.report.tenancy import tenancy_html
from harness.rundir import RunDir

#: After layout, counts the plots the browser actually drew (a box with a size and at least
#: one drawn line) into ``<body data-plots-rendered>``: what the headless-browser test reads.
RENDER_CHECK = """
addEventListener("load", function () {
  var drawn = 0;
  document.querySelectorAll("svg.plot").forEach(function (svg) {
    var box = svg.getBoundingClientRect();
    var lines = Array.prototype.filter.call(svg.querySelectorAll("path.series"), function (p) {
      return p.getTotalLength() > 0;
    });
    if (box.width > 0 && box.height > 0 && lines.length > 0) drawn += 1;
  });
  document.body.setAttribute("data-plots-rendered", String(drawn));
});
"""

CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;color:#1b1f24;
background:#f6f7f9}
main{max-width:980px;margin:0 auto;padding:20px}
h1{font-size:22px;margin:0 0 4px}
h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #d0d7de;padding-bottom:4px}
.sub{color:#57606a}
.verdict{display:inline-block;padding:3px 10px;border-radius:4px;color:#fff;font-weight:600;
margin-right:8px}
.pass{background:#1a7f37}.fail{background:#cf222e}.aborted{background:#9a6700}.incomplete{background:#9a6700}
table{border-collapse:collapse;background:#fff;margin:6px 0}
td,th{border:1px solid #d0d7de;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#eef1f4}td.num{text-align:right;font-variant-numeric:tabular-nums}
.ok{color:#1a7f37;font-weight:600}.bad{color:#cf222e;font-weight:600}
.grid2{display:grid;grid-template-columns:1fr 1fr;gap:16px}
figure{margin:10px 0;background:#fff;border:1px solid #d0d7de;border-radius:4px}
svg.plot{width:100%;height:auto;display:block}
svg .title{font-weight:600;font-size:13px}svg .tick,svg .legend{font-size:11px;fill:#57606a}
svg .legend{fill:#1b1f24}svg .axis{font-size:11px;fill:#57606a}
svg .grid{stroke:#eaeef2}svg .xtick{stroke:#8c959f}svg .frame{fill:none;stroke:#8c959f}
svg .series{fill:none;stroke-width:1.6;stroke-linejoin:round}
svg .fault{fill:#cf222e;fill-opacity:.12}svg .faultlabel{font-size:10px;fill:#cf222e}
svg .instrument{fill:#9a6700;fill-opacity:.16}svg .instrumentlabel{font-size:10px;fill:#9a6700}
svg .ref{stroke:#6e7781;stroke-dasharray:2 3}svg .reflabel{font-size:10px;fill:#6e7781}
svg .empty{fill:#8c959f;font-size:13px}
pre{background:#fff;border:1px solid #d0d7de;padding:10px;overflow:auto;font-size:12px}
.timeline td:nth-child(2){white-space:nowrap}.timeline td:last-child{font-size:12px;color:#57606a}
tr.fault_start td,tr.fault_end td,tr.abort td{background:#fff1f0}
.note{color:#57606a;font-size:12px}
"""


def _num(value: Any, unit: str = "", digits: int = 1) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    if unit == "ratio":
        return f"{float(value):.4f}"
    if isinstance(value, float):
        text = f"{value:,.{digits}f}"
    else:
        text = f"{value:,}" if isinstance(value, int) else str(value)
    return f"{text} {unit}".strip()


def _scorecard_html(card: dict[str, Any]) -> str:
    rows = []
    for e in card.get("slos") or []:
        passed = bool(e.get("passed"))
        result = '<span class="ok">PASS</span>' if passed else '<span class="bad">FAIL</span>'
        note = f' <span class="note">{escape(str(e["note"]))}</span>' if e.get("note") else ""
        rows.append(
            f"<tr><td>{escape(str(e.get('name')))}</td>"
            f'<td class="num">{escape(str(e.get("comparator", "")))} '
            f"{_num(e.get('objective'), str(e.get('unit', '')))}</td>"
            f'<td class="num">{_num(e.get("measured"), str(e.get("unit", "")))}</td>'
            f"<td>{result}{note}</td></tr>"
        )
    slo_table = (
        "<table><tr><th>SLO</th><th>objective</th><th>measured</th><th>result</th></tr>"
        + ("".join(rows) or '<tr><td colspan="4">no SLO set</td></tr>')
        + "</table>"
    )
    rec = card.get("recovery") or {}
    pairs: list[tuple[str, str]] = []
    if rec.get("fault"):
        pairs += [
            ("fault", f"{rec.get('fault_target') or '-'} at {_num(rec.get('fault_start'), 's')}"),
            ("fault ended", _num(rec.get("fault_end"), "s")),
            ("time to detect", _num(rec.get("time_to_detect_s"), "s")),
            (
                "time to recover",
                _num(rec.get("time_to_recover_s"), "s")
                if rec.get("recovered")
                else "not recovered",
            ),
            ("capacity return", _num(rec.get("capacity_return_s"), "s")),
            ("requests lost", _num(rec.get("requests_lost"))),
        ]
        for key in ("worst_degradation", "error_budget_spent", "goodput_rps"):
            if key in rec and not isinstance(rec[key], dict | list):
                pairs.append((key.replace("_", " "), _num(rec[key], digits=3)))
    else:
        pairs.append(("fault", "none"))
    run = card.get("run") or {}
    for key, unit in (
        ("requests", ""),
        ("errors", ""),
        ("error_rate", "ratio"),
        ("p50_latency_ms", "ms"),
        ("p99_latency_ms", "ms"),
        ("ttft_p95_ms", "ms"),
        ("throughput_rps", "rps"),
        ("goodput_rps", "rps"),
        ("tokens_per_s", "tok/s"),
        ("duration_s", "s"),
    ):
        if key in run:
            pairs.append((key.replace("_", " "), _num(run[key], unit)))
    pairs += _instrument_pairs(card.get("instrument"))
    gpu = card.get("gpu")
    if isinstance(gpu, dict):
        for key, value in gpu.items():
            if not isinstance(value, dict | list):
                pairs.append((f"gpu {key.replace('_', ' ')}", _num(value, digits=2)))
    figures = "<table>" + "".join(
        f"<tr><th>{escape(k)}</th><td class='num'>{escape(v)}</td></tr>" for k, v in pairs
    )
    figures += "</table>"
    html = f'<div class="grid2"><div>{slo_table}</div><div>{figures}</div></div>'
    faults = rec.get("per_fault") or []
    if len(faults) > 1:  # a cascade: each fault's own figures
        rows = []
        for i, f in enumerate(faults, 1):
            back = "not recovered"
            if f.get("recovered"):
                back = _num(f.get("time_to_recover_s"), "s")
            cells = [
                str(i),
                str(f.get("target") or "-"),
                _num(f.get("start_s"), "s"),
                _num(f.get("end_s"), "s"),
                _num(f.get("time_to_detect_s"), "s"),
                back,
                _num(f.get("requests_lost")),
            ]
            rows.append("<tr>" + "".join(f"<td>{escape(c)}</td>" for c in cells) + "</tr>")
        html += (
            '<table class="faults"><tr><th>fault</th><th>target</th><th>start</th><th>end</th>'
            "<th>time to detect</th><th>time to recover</th><th>requests lost</th></tr>"
            + "".join(rows)
            + "</table>"
        )
    return html


def _instrument_pairs(inst: Any) -> list[tuple[str, str]]:
    """The instrument's figures for the scorecard table (none for an older scorecard)."""
    if not isinstance(inst, dict):
        return []
    if inst.get("saturated"):
        state = f"saturated {_num(inst.get('affected_s'), 's')}"
    elif inst.get("sampled") or inst.get("lag_recorded"):
        state = "not saturated"
    else:
        state = "not sampled"
    return [
        ("load generator", state),
        ("peak Locust CPU", _num(inst.get("peak_cpu_percent"), "% of a core", digits=0)),
        ("peak send lag", _num(inst.get("peak_lag_ms"), "ms", digits=0)),
    ]


def _offset(t: Any, t0: float) -> str:
    return f"{float(t) - t0:+.1f}" if isinstance(t, int | float) else "?"


def _timeline_html(data: RunData) -> str:
    rows = []
    for e in data.timeline:
        kind = str(e.get("kind", ""))
        details = e.get("details") or {}
        text = json.dumps(details, default=str, separators=(", ", ": ")) if details else ""
        if len(text) > 240:
            text = text[:237] + "..."
        rows.append(
            f'<tr class="{escape(kind)}"><td class="num">{_offset(e.get("time"), data.t0)}</td>'
            f"<td>{escape(kind)}</td><td>{escape(str(e.get('target', '')))}</td>"
            f"<td>{escape(text)}</td></tr>"
        )
    tel = data.telemetry
    gpu_events = tel[tel["metric"].isin(["xid", "ecc_double_bit", "ecc_single_bit"])]
    for t, s, m, v in gpu_events[["time", "source", "metric", "value"]].itertuples(index=False):
        rows.append(
            f'<tr class="abort"><td class="num">{_offset(t, data.t0)}</td><td>gpu_event</td>'
            f"<td>{escape(str(s))}</td><td>{escape(str(m))} {int(v)}</td></tr>"
        )
    return (
        '<table class="timeline"><tr><th>s since load start</th><th>kind</th><th>target</th>'
        "<th>details</th></tr>" + "".join(rows) + "</table>"
    )


def render_report(data: RunData) -> str:
    """The page as one string."""
    card = data.scorecard
    verdict = str(card.get("verdict", "unknown"))
    abort = card.get("abort_reason")
    note = card.get("note")
    charts = build_charts(data)
    nvml = not data.telemetry.empty and data.telemetry["source"].str.startswith("gpu").any()
    started = pd.Timestamp(data.t0, unit="s", tz="UTC").strftime("%Y-%m-%d %H:%M:%S UTC")
    head = (
        f"<h1>{escape(data.title)}</h1>"
        f'<p><span class="verdict {escape(verdict)}">{escape(verdict.upper())}</span>'
        f"exit code {escape(str(card.get('exit_code')))} &middot; run "
        f"<code>{escape(data.run_dir.name)}</code> &middot; load started {started} &middot; "
        f"{data.duration_s:.0f} s of load &middot; gpuchaos {escape(__version__)}</p>"
    )
    if abort:
        head += f'<p class="bad">aborted: {escape(str(abort))}</p>'
    incomplete = card.get("incomplete_reason")
    if incomplete:
        head += f'<p class="bad">incomplete: {escape(str(incomplete))}</p>'
    if note:
        head += f'<p class="bad">{escape(str(note))}</p>'
    warning = (card.get("instrument") or {}).get("warning")
    if warning:
        head += f'<p class="bad" id="instrument-warning">{escape(str(warning))}</p>'
    plots = "".join(
        f"<figure>{render(c)}"
        + (  # measured by tests/integration/test_known_truth.py; figures in docs/scoring.md
            '<figcaption class="note">TTFT is measured at the client and includes its '
            "overhead of about 1 ms at p50 (measured against a known-truth server; see the "
            "docs/scoring.md, &ldquo;How exact is TTFT?&rdquo;).</figcaption>"
            if c.id == "ttft"
            else ""
        )
        + "</figure>"
        for c in charts
    )
    telemetry_note = (
        "GPU figures from NVML."
        if nvml
        else "No GPU on the machine that ran this (NVML absent): CPU and memory from psutil."
    )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>gpuchaos: {escape(data.name)} ({escape(verdict)})</title>"
        f"<style>{CSS}</style></head><body><main>"
        f"{head}{tenancy_html(card)}<h2>Scorecard</h2>{_scorecard_html(card)}{alerts_html(card)}"
        f"{gpu_faults_html(card)}"
        f"{capacity_html(card)}"
        f'<h2>Over time</h2><p class="note">Shaded: fault windows (red) and seconds the load '
        f"generator was saturated (amber). Dashed horizontal lines: "
        f"objectives. Requests are bucketed by the second they ended; failed requests count "
        f"as at least the client timeout in percentiles. {telemetry_note}</p>{plots}"
        f"<h2>Timeline</h2>{_timeline_html(data)}"
        f"<h2>Experiment</h2><pre>{escape(data.experiment_text)}</pre>"
        f"</main><script>{RENDER_CHECK}</script></body></html>\n"
    )


def write_report_html(data: RunData, path: Path | None = None) -> Path:
    """Write ``report.html`` into the run folder (or ``path``)."""
    path = path or RunDir(data.run_dir).report
    path.write_text(render_report(data), encoding="utf-8")
    return path
