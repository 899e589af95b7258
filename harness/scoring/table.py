"""The scorecard as a short plain-text table: what ``gpuchaos run`` and ``gpuchaos score`` print.

Why a module of its own: it only reads a finished scorecard (the dict of
:func:`harness.scoring.scorecard.build_scorecard`), so the wording can change without touching
how anything is scored.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from harness.alerts.view import headline


def _fmt(value: Any, unit: str = "") -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        text = f"{value:.4f}" if unit == "ratio" else f"{value:.1f}"
    else:
        text = str(value)
    if unit and unit != "ratio":
        text += f" {unit}"
    return text


def _recovery_lines(scorecard: Mapping[str, Any]) -> list[tuple[str, str]]:
    rec = scorecard.get("recovery") or {}
    if not rec.get("fault"):
        return [("fault", "none (never injected)")]
    pairs = [
        ("fault", f"{rec.get('fault_target') or '-'} at {_fmt(rec.get('fault_start'), 's')}"),
        ("time to detect", _fmt(rec.get("time_to_detect_s"), "s")),
        (
            "time to recover",
            _fmt(rec.get("time_to_recover_s"), "s") if rec.get("recovered") else "not recovered",
        ),
        ("capacity return", _fmt(rec.get("capacity_return_s"), "s")),
        ("requests lost", _fmt(rec.get("requests_lost"))),
    ]
    worst = [f"p99 {_fmt(rec.get('worst_p99_ms'), 'ms')}"]
    worst.append(f"errors {_fmt(rec.get('worst_error_rate'), 'ratio')}")
    if rec.get("worst_throughput_ratio") is not None:
        worst.append(f"throughput x{rec['worst_throughput_ratio']:.2f}")
    pairs.append(("worst second", ", ".join(worst)))
    faults = rec.get("per_fault") or []
    if len(faults) > 1:
        for i, f in enumerate(faults, 1):
            pairs.append((f"fault {i}", fault_line(f)))
    return pairs


def fault_line(f: Mapping[str, Any]) -> str:
    """One fault of ``recovery.per_fault`` in a line."""
    recover = _fmt(f.get("time_to_recover_s"), "s") if f.get("recovered") else "not recovered"
    return (
        f"{f.get('target') or '-'} {_fmt(f.get('start_s'), 's')}-{_fmt(f.get('end_s'), 's')}: "
        f"detect {_fmt(f.get('time_to_detect_s'), 's')}, recover {recover}, "
        f"lost {_fmt(f.get('requests_lost'))}"
    )


def _analytics_lines(scorecard: Mapping[str, Any]) -> list[tuple[str, str]]:
    pairs: list[tuple[str, str]] = []
    auto = scorecard.get("autoscaler") or {}
    if auto.get("autoscaler"):
        pairs.append(
            (
                "autoscaler",
                f"scale-up {_fmt(auto.get('decision_s'), 's')}, "
                f"replica Ready {_fmt(auto.get('replica_ready_s'), 's')} after the spike",
            )
        )
    else:
        pairs.append(("autoscaler", str(auto.get("note") or "none")))
    budget = scorecard.get("error_budget") or {}
    if budget.get("objective") is None:
        pairs.append(("error budget", "n/a (no availability or error_rate objective)"))
    else:
        spent = budget.get("spent")
        text = "n/a" if spent is None else f"{100.0 * spent:.1f}% spent"
        burn = budget.get("burn_rate")
        text += f", burn rate {'n/a' if burn is None else f'{burn:.2f}'}"
        pairs.append((f"error budget ({budget.get('window')})", text))
    good = scorecard.get("goodput") or {}
    ratio = good.get("goodput_ratio")
    pairs.append(
        (
            "goodput",
            f"{_fmt(good.get('goodput_rps'), 'rps')}"
            + ("" if ratio is None else f" ({100.0 * ratio:.2f}% of requests)"),
        )
    )
    alerts = headline(scorecard.get("alerts"))  # the default burn-rate alerts
    if alerts is not None:
        pairs.append(("time to alert", alerts))
    gpu = scorecard.get("gpu") or {}
    if not gpu.get("gpus"):
        pairs.append(("GPU", "no GPU telemetry"))
    else:
        text = (
            f"{gpu['gpus']} GPU(s), {_fmt(gpu.get('utilization_pct'))}% busy, "
            f"{_fmt(gpu.get('idle_gpu_s'), 's')} idle GPU-time"
        )
        if gpu.get("cost") is not None:
            text += f", cost {gpu['cost']:.4f} (idle {gpu['idle_cost']:.4f})"
        pairs.append(("GPU", text))
    score = scorecard.get("score") or {}
    krkn, litmus = score.get("krkn_style"), score.get("litmus_style")
    pairs.append(
        (
            "score",
            f"{_fmt(score.get('value'))} / 100 (Krkn-style {_fmt(krkn)}, "
            f"Litmus-style {_fmt(litmus)})",
        )
    )
    return pairs


def _tenancy_lines(scorecard: Mapping[str, Any]) -> list[tuple[str, str]]:
    """A tenancy run (:mod:`harness.scoring.tenancy`): the sharing mode, a line per tenant
    (verdict, requests, cost and utilization), the blast radius, the capacity refused."""
    pairs = [("sharing", str(scorecard.get("sharing")))]
    costs = scorecard.get("cost") or {}
    for name, card in (scorecard.get("tenants") or {}).items():
        run, cost = card.get("run") or {}, costs.get(name) or {}
        text = (
            f"{str(card.get('verdict', '?')).upper()}, {_fmt(run.get('requests'))} requests, "
            f"{_fmt(run.get('errors'))} failed, p99 {_fmt(run.get('p99_latency_ms'), 'ms')}; "
            f"{_fmt(cost.get('gpu_seconds_allocated'))} GPU-s allocated, "
            f"{_fmt(cost.get('utilization_pct'))}% used"
        )
        if cost.get("cost") is not None:
            text += f", cost {cost['cost']:.4f}"
        pairs.append((f"tenant {name}", text + (" (under 60%)" if cost.get("wasted") else "")))
    blast = scorecard.get("blast_radius") or []
    pairs += [("blast radius", str(e.get("line"))) for e in blast]
    if not blast:
        pairs.append(("blast radius", "no fault aimed at a tenant"))
    for name, d in (scorecard.get("denied_capacity") or {}).items():
        if d.get("refusals"):
            pairs.append(
                (
                    f"quota {name}",
                    f"{d['refusals']} refusal(s), "
                    f"{_fmt(d.get('replica_seconds_denied'))} replica-s denied",
                )
            )
    for name, d in (scorecard.get("admission_denials") or {}).items():
        if d.get("denials"):
            rules = ", ".join(f"{r} x{n}" for r, n in (d.get("rules") or {}).items())
            pairs.append((f"admission {name}", f"{d['denials']} denial(s) ({rules})"))
    for name, items in (scorecard.get("recreated") or {}).items():
        if items:
            pairs.append((f"recreated {name}", ", ".join(str(i.get("replica")) for i in items)))
    return pairs


def scorecard_table(scorecard: Mapping[str, Any]) -> str:
    """A short plain-text table: one line per SLO, recovery and analytics lines, verdict."""
    rows = [("SLO", "objective", "measured", "result")]
    for e in scorecard.get("slos", []):
        window = e.get("window")
        suffix = f" [{window}]" if window not in (None, "run", "fault") else ""
        rows.append(
            (
                str(e["name"]),
                f"{e['comparator']} {_fmt(e['objective'], e['unit'])}{suffix}",
                _fmt(e["measured"], e["unit"]),
                ("PASS" if e["passed"] else "FAIL") + (f" ({e['note']})" if e.get("note") else ""),
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    lines = ["  ".join(r[i].ljust(widths[i]) for i in range(3)) + "  " + r[3] for r in rows]
    if isinstance(scorecard.get("tenants"), Mapping):
        pairs = _tenancy_lines(scorecard)
    else:
        pairs = _recovery_lines(scorecard) + _analytics_lines(scorecard)
    verdict = str(scorecard.get("verdict", "?")).upper()
    if scorecard.get("abort_reason"):
        verdict += f": {scorecard['abort_reason']}"
    elif scorecard.get("incomplete_reason"):
        verdict += f": {scorecard['incomplete_reason']}"
    elif scorecard.get("note"):  # a fail with every SLO met: the hypothesis said no
        verdict += f": {scorecard['note']}"
    pairs.append(("verdict", f"{verdict} (exit {scorecard.get('exit_code')})"))
    warning = (scorecard.get("instrument") or {}).get("warning")
    if warning:  # the verdict was reached while the load generator was saturated
        pairs.append(("instrument", str(warning)))
    # what the scorer stepped over in a damaged run folder (torn lines, bad rows, no file)
    pairs.extend(("warning", str(w)) for w in scorecard.get("warnings") or [])
    key_width = max(len(k) for k, _ in pairs)
    lines.append("")
    lines.extend(f"{k.ljust(key_width)}  {v}" for k, v in pairs)
    return "\n".join(line.rstrip() for line in lines)
