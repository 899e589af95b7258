"""The sharing modes compared: the same tenancy experiment run under several modes, side by
side (``gpuchaos tenancy compare RUN_DIR...``; the README's measured table).

Why: choosing time-slicing, MPS or MIG trades utilization gained against isolation lost. One
row per run folder makes the trade visible: each tenant's verdict and availability, what the
faults aimed at one tenant cost the others (the blast radius: the victims' failed requests
inside the fault windows), each tenant's utilization and the GPU-seconds it was billed.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from harness.errors import ScoringError
from harness.report.tenancy import is_tenancy
from harness.rundir import RunDir
from harness.scoring.rundir import score_run_dir


def load_tenancy_card(run_dir: str | Path) -> dict[str, Any]:
    """A tenancy run folder's scorecard (scored first when it has none);
    :class:`ScoringError` when the folder is not a tenancy run."""
    path = RunDir(run_dir).scorecard
    if path.is_file():
        try:
            card = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ScoringError(f"{path}: unreadable ({exc})") from None
    else:
        card = score_run_dir(run_dir)
    if not isinstance(card, dict) or not is_tenancy(card):
        raise ScoringError(f"{run_dir}: not a tenancy run (its scorecard has no tenants)")
    return card


def _availability(card: Mapping[str, Any]) -> float | None:
    run = card.get("run") or {}
    value = run.get("availability")
    if isinstance(value, int | float):
        return float(value)
    rate = run.get("error_rate")
    return 1.0 - float(rate) if isinstance(rate, int | float) else None


def compare_rows(cards: Sequence[tuple[str, Mapping[str, Any]]]) -> list[dict[str, Any]]:
    """One row per (run folder name, scorecard): ``mode``, ``run``, and per tenant its
    ``verdict``, ``availability``, ``victim`` (whether a fault was aimed at another tenant),
    ``blast_failed`` (the failed requests it suffered inside those faults' windows),
    ``utilization_pct`` and ``gpu_seconds_allocated``; ``faults_aimed``: faults aimed at a
    tenant."""
    rows = []
    for name, card in cards:
        costs = card.get("cost") or {}
        suffered: dict[str, int] = {}
        for entry in card.get("blast_radius") or []:
            victim = str(entry.get("victim"))
            suffered[victim] = suffered.get(victim, 0) + int(entry.get("failed_requests") or 0)
        tenants = {}
        for tenant, own in (card.get("tenants") or {}).items():
            cost = costs.get(tenant) or {}
            tenants[tenant] = {
                "verdict": own.get("verdict"),
                "availability": _availability(own),
                "victim": tenant in suffered,
                "blast_failed": suffered.get(tenant, 0),
                "utilization_pct": cost.get("utilization_pct"),
                "gpu_seconds_allocated": cost.get("gpu_seconds_allocated"),
            }
        rows.append(
            {
                "mode": str(card.get("sharing")),
                "run": name,
                "faults_aimed": len(
                    {(e.get("start_s"), e.get("tenant")) for e in card.get("blast_radius") or []}
                ),
                "tenants": tenants,
            }
        )
    return rows


def _f(value: Any, fmt: str) -> str:
    return "n/a" if not isinstance(value, int | float) else format(float(value), fmt)


def _verdict_cell(own: Mapping[str, Any] | None) -> str:
    """``fail, 90.75%``: a tenant's verdict and availability; ``-`` when the run lacks it."""
    if own is None:
        return "-"
    availability = own.get("availability")
    pct = None if availability is None else 100.0 * float(availability)
    return f"{own.get('verdict')}, {_f(pct, '.2f')}%"


def compare_markdown(rows: Sequence[Mapping[str, Any]]) -> str:
    """The rows as a Markdown table (see module)."""
    names: list[str] = []
    for row in rows:
        names += [n for n in row["tenants"] if n not in names]
    modes = [row["mode"] for row in rows]
    head = ["mode", *(f"{n}: verdict, availability" for n in names)]
    head += ["blast radius (victims' failed requests)", "utilization", "GPU-s allocated"]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    for row in rows:
        mode = row["mode"] if modes.count(row["mode"]) == 1 else f"{row['mode']} ({row['run']})"
        t = row["tenants"]
        cells = [mode]
        cells += [_verdict_cell(t.get(n)) for n in names]
        blast = ", ".join(
            f"{n} {t[n]['blast_failed']}" for n in names if t.get(n, {}).get("victim")
        )
        cells.append(blast if row["faults_aimed"] else "no fault aimed at a tenant")
        cells.append(
            ", ".join(f"{n} {_f(t[n]['utilization_pct'], '.1f')}%" for n in names if n in t)
        )
        cells.append(
            ", ".join(f"{n} {_f(t[n]['gpu_seconds_allocated'], ',.1f')}" for n in names if n in t)
        )
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
