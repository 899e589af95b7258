"""Score a tenancy run: each tenant with the scorer of single-tenant runs, then combined.

Why: a multi-tenant experiment asks two questions at once, "did each team meet its own
SLOs?" and "what did a fault in one team cost the others?". The first is answered by the
existing scorer on each tenant's view of the run folder (:mod:`harness.scoring.tenancy_view`),
so a tenant's SLOs mean exactly what they mean in a single-tenant run; the second by the
blast radius (:mod:`harness.scoring.tenancy_blast`). Cost, utilization and the capacity a
tenant was refused come from :mod:`harness.scoring.tenancy_cost`.

The combined ``scorecard.json`` (keys others read):

- ``sharing``: the sharing mode; ``tenants``: ``{name: scorecard}``, each tenant's full
  scorecard (also written to ``tenants/<name>/scorecard.json``), with ``tenant`` set;
- ``slos``: every tenant's SLO entries, ``name`` ``"<tenant>: <slo>"``, with ``tenant`` and
  ``slo`` (what CI gates, JUnit and history read);
- ``run``: ``t0`` (earliest), ``load_end`` (latest), ``duration_s``, and ``requests``,
  ``errors``, ``error_rate``, ``throughput_rps`` over all tenants;
- ``blast_radius``: a list of entries (see :mod:`~harness.scoring.tenancy_blast`), each with
  its ``line``;
- ``cost``, ``denied_capacity``, ``admission_denials``: ``{tenant: {...}}``;
  ``recreated``: ``{tenant: [...]}`` (see :mod:`~harness.scoring.tenancy_cost`);
- ``recovery``: ``fault`` and ``faults`` (per-tenant recovery is in each tenant's card);
  ``score``: ``value``, the lowest tenant's;
- ``verdict``/``exit_code``: the worst tenant's: exit 2 (``aborted`` when a tenant was
  aborted, else ``incomplete``) beats 1 (``fail``) beats 0 (``pass``); then the steady-state
  hypothesis can still turn a pass into a fail, as in a single-tenant run;
- ``warnings``: the scorer's, each tenant's prefixed ``<tenant>: ``.

The **utilization SLO** (``slos.gpu_min_utilization_pct``) of a tenant is measured on the
tenant's own utilization (``cost.<tenant>.utilization_pct``) instead of the devices' mean,
and its verdict recomputed.
"""

from __future__ import annotations

import json
import logging
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from harness import __version__
from harness.config import HarnessSpec
from harness.errors import ScoringError
from harness.records import COLUMNS
from harness.rundir import REQUESTS_FILE, RunDir
from harness.scoring.gpu import read_telemetry
from harness.scoring.intake import read_events
from harness.scoring.scorecard import EXIT_CODES, SCHEMA_VERSION, json_safe
from harness.scoring.slis import read_requests
from harness.scoring.tenancy_blast import blast_radius
from harness.scoring.tenancy_cost import (
    admission_denials,
    denied_capacity,
    recreations,
    tenant_costs,
)
from harness.scoring.tenancy_view import build_view, tenant_dir

log = logging.getLogger(__name__)

#: Scores one (single-tenant) run folder: :func:`harness.scoring.rundir.score_run_dir`'s own.
ScoreFolder = Callable[[Path], dict[str, Any]]

UTILIZATION_SLO = "gpu_min_utilization_pct"


def _own_utilization(card: dict[str, Any], cost: Mapping[str, Any]) -> None:
    """Measure the tenant's utilization SLO on its own utilization; redo its verdict."""
    entries = card.get("slos") or []
    for entry in entries:
        if entry.get("name") != UTILIZATION_SLO:
            continue
        measured = cost.get("utilization_pct")
        entry["measured"] = measured
        entry["passed"] = measured is not None and measured >= entry["objective"]
        entry["note"] = (
            f"the tenant's own utilization ({cost.get('source_note')})"
            if measured is not None
            else "no utilization samples of the tenant's replicas"
        )
        if measured is not None and measured < 60.0:
            entry["note"] += "; under 60%: capacity paid for and idle"
    if card.get("verdict") in ("pass", "fail"):
        requests = (card.get("run") or {}).get("requests") or 0
        ok = requests > 0 and all(e.get("passed") for e in entries)
        card["verdict"] = "pass" if ok else "fail"
        card["exit_code"] = EXIT_CODES[card["verdict"]]


def combine_verdicts(cards: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """The run's verdict from its tenants' (see module): ``verdict``, ``exit_code`` and the
    ``abort_reason`` or ``incomplete_reason`` of the first tenant that has one."""
    worst = max((int(c.get("exit_code", 2)) for c in cards.values()), default=2)
    out: dict[str, Any] = {"exit_code": worst}
    if worst == 0:
        out["verdict"] = "pass"
    elif worst == 1:
        out["verdict"] = "fail"
        failed = [n for n, c in cards.items() if c.get("verdict") != "pass"]
        out["note"] = "tenant(s) that failed: " + ", ".join(failed)
    else:
        verdicts = {c.get("verdict") for c in cards.values()}
        out["verdict"] = "aborted" if "aborted" in verdicts else "incomplete"
        key = "abort_reason" if out["verdict"] == "aborted" else "incomplete_reason"
        reason = next((c[key] for c in cards.values() if c.get(key)), None)
        out[key] = reason or f"a tenant's run is {out['verdict']}"
    return out


def _requests(folder: Path) -> pd.DataFrame:
    """A tenant's records (none when it recorded nothing), read as the scorer reads them."""
    path = folder / REQUESTS_FILE
    if not path.is_file():
        return pd.DataFrame({c: pd.Series(dtype="float64") for c in COLUMNS})
    return read_requests(path)


def _telemetry(path: Path) -> pd.DataFrame | None:
    """The run's telemetry, None when it has none or it is unreadable (the tenants' cards
    already say so in their warnings)."""
    try:
        return read_telemetry(path) if path.is_file() else None
    except ScoringError:
        return None


def _run_block(cards: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    runs = [c.get("run") or {} for c in cards.values()]
    t0s = [r["t0"] for r in runs if isinstance(r.get("t0"), int | float) and r.get("requests")]
    ends = [r["load_end"] for r in runs if isinstance(r.get("load_end"), int | float)]
    t0 = min(t0s) if t0s else min((r.get("t0") or 0.0 for r in runs), default=0.0)
    load_end = max([t0, *ends])
    requests = sum(int(r.get("requests") or 0) for r in runs)
    errors = sum(int(r.get("errors") or 0) for r in runs)
    duration = load_end - t0
    return {
        "t0": t0,
        "load_end": load_end,
        "duration_s": duration,
        "requests": requests,
        "errors": errors,
        "error_rate": errors / requests if requests else None,
        "throughput_rps": requests / duration if duration > 0 else None,
    }


def score_tenancy(
    run_dir: Path,
    doc: Mapping[str, Any],
    spec: HarnessSpec,
    *,
    write: bool,
    score_folder: ScoreFolder,
) -> dict[str, Any]:
    """The combined scorecard of a tenancy run (see module). With ``write`` each tenant's
    view is ``tenants/<name>/`` (scored there: its own ``scorecard.json``, ``slis.csv``);
    else a scratch folder. ``score_folder`` scores one single-tenant folder."""
    if spec.tenancy is None or spec.platform is None:
        raise ScoringError(f"{run_dir}: not a tenancy run")
    names = spec.tenancy.names()
    paths = RunDir(run_dir)
    warnings: list[str] = []
    events = read_events(paths.timeline, warnings)
    cards: dict[str, dict[str, Any]] = {}
    frames: dict[str, pd.DataFrame] = {}
    with tempfile.TemporaryDirectory(prefix="gpuchaos-tenants-") as scratch:
        for name in names:
            dest = tenant_dir(run_dir, name) if write else Path(scratch) / name
            build_view(run_dir, doc, spec, name, events, dest, warnings)
            cards[name] = score_folder(dest)
            frames[name] = _requests(dest)
    run = _run_block(cards)
    t0, load_end = float(run["t0"]), float(run["load_end"])
    timeline = events or []
    costs = tenant_costs(spec, timeline, _telemetry(paths.telemetry), t0, load_end)
    for name, own in cards.items():
        own["tenant"] = name
        _own_utilization(own, costs[name])
        warnings += [f"{name}: {w}" for w in own.get("warnings") or []]
    timeouts = {t.name: t.load.request_timeout_s * 1000.0 for t in spec.tenancy.tenants}
    blast = blast_radius(timeline, frames, timeouts, cards, t0, load_end)
    slos = [
        {**e, "name": f"{n}: {e.get('name')}", "tenant": n, "slo": e.get("name")}
        for n, tenant_card in cards.items()
        for e in tenant_card.get("slos") or []
    ]
    faults = sum(1 for e in timeline if e.get("kind") == "fault_start")
    scores = [
        float(value)
        for c in cards.values()
        if isinstance(value := (c.get("score") or {}).get("value"), int | float)
    ]
    first = next(iter(cards.values()))
    card: dict[str, Any] = {
        "schema": SCHEMA_VERSION,
        "meta": {
            "harness_version": __version__,
            "experiment": (first.get("meta") or {}).get("experiment"),
            "run_dir": run_dir.name,
            "tenants": names,
        },
        "sharing": spec.tenancy.sharing,
        "tenants": cards,
        "slos": slos,
        "run": run,
        "recovery": {"fault": faults > 0, "faults": faults},
        "score": {"value": min(scores) if scores else None, "of": "the lowest tenant's"},
        "blast_radius": blast,
        "cost": costs,
        "denied_capacity": denied_capacity(timeline, names, t0, load_end),
        "admission_denials": admission_denials(timeline, names, t0),
        "recreated": recreations(timeline, names, t0),
    }
    card.update(combine_verdicts(cards))
    card["warnings"] = warnings
    if write:
        for name, tenant_card in cards.items():
            text = json.dumps(json_safe(tenant_card), indent=2, allow_nan=False) + "\n"
            RunDir(tenant_dir(run_dir, name)).scorecard.write_text(text, encoding="utf-8")
    log.info(
        "scored %d tenants (%s): verdict %s, %d blast-radius entries",
        len(cards),
        spec.tenancy.sharing,
        card["verdict"],
        len(blast),
    )
    result: dict[str, Any] = json_safe(card)
    return result
