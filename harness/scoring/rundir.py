"""Score a run folder offline: ``gpuchaos score RUN_DIR`` reproduces ``scorecard.json``.

Everything is read from the folder: the resolved experiment (for the SLOs), the request
records (and their ``lag_ms`` when the folder has it), the timeline, the telemetry and Chaos
Toolkit's journal.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pandas as pd
import yaml
from pydantic import ValidationError

from harness import __version__
from harness.config import EXTENSION_NAME, HarnessSpec
from harness.errors import ConfigError, ScoringError
from harness.records import COLUMNS
from harness.rundir import EXPERIMENT_FILE, RunDir
from harness.scoring.gpu import read_telemetry
from harness.scoring.instrument import read_lag
from harness.scoring.persecond import per_second, write_per_second
from harness.scoring.resilience import litmus_style
from harness.scoring.scorecard import build_scorecard
from harness.scoring.slis import read_requests
from harness.timeline import read_timeline

log = logging.getLogger(__name__)


def load_run_spec(run_dir: Path) -> tuple[dict[str, Any], HarnessSpec]:
    """The resolved experiment document of a run and its harness spec."""
    path = RunDir(run_dir).experiment
    if not path.is_file():
        raise ScoringError(f"{run_dir}: not a run folder (no {EXPERIMENT_FILE})")
    doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    for i, ext in enumerate(doc.get("extensions") or []):
        if isinstance(ext, dict) and ext.get("name") == EXTENSION_NAME:
            try:
                return doc, HarnessSpec.model_validate(ext)
            except ValidationError as exc:
                err = exc.errors()[0]
                loc = ".".join(str(p) for p in err["loc"])
                raise ConfigError(str(path), f"extensions[{i}].{loc}", err["msg"]) from None
    raise ConfigError(str(path), "extensions", f"no {EXTENSION_NAME} block")


def _chaos_summary(journal: dict[str, Any] | None) -> dict[str, Any]:
    if journal is None:
        return {"ran": False}
    ss = journal.get("steady_states") or {}

    def met(key: str) -> bool | None:
        part = ss.get(key)
        return None if not part else bool(part.get("steady_state_met"))

    return {
        "ran": True,
        "status": journal.get("status"),
        "deviated": bool(journal.get("deviated")),
        "steady_state_before": met("before"),
        "steady_state_after": met("after"),
        "activities": [
            {
                "name": (r.get("activity") or {}).get("name"),
                "status": r.get("status"),
                "start": r.get("start"),
                "end": r.get("end"),
            }
            for r in (journal.get("run") or []) + (journal.get("rollbacks") or [])
        ],
    }


def read_run_logs(run_dir: Path) -> tuple[pd.DataFrame, list[dict[str, Any]]]:
    """A run folder's request records (no rows when it has no ``requests.csv``) and
    timeline events (none without ``timeline.jsonl``)."""
    paths = RunDir(run_dir)
    req_path = paths.requests
    if req_path.is_file():
        requests = read_requests(req_path)
    else:
        requests = pd.DataFrame({c: pd.Series(dtype="float64") for c in COLUMNS})
    tl_path = paths.timeline
    timeline = read_timeline(tl_path) if tl_path.is_file() else []
    return requests, timeline


def score_run_dir(run_dir: str | Path, write: bool = True) -> dict[str, Any]:
    """Build the scorecard of a run folder (and write ``scorecard.json`` and ``slis.csv``)."""
    run_dir = Path(run_dir)
    paths = RunDir(run_dir)
    doc, spec = load_run_spec(run_dir)
    requests, timeline = read_run_logs(run_dir)
    journal_path = paths.journal
    try:
        journal = json.loads(journal_path.read_text()) if journal_path.is_file() else None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        log.warning("%s: unreadable journal (%s); scoring without it", journal_path, exc)
        journal = None
    tel_path = paths.telemetry
    telemetry = read_telemetry(tel_path) if tel_path.is_file() else None
    timeout_ms = spec.load.request_timeout_s * 1000.0
    meta = {
        "harness_version": __version__,
        "experiment": {
            "title": doc.get("title"),
            "version": doc.get("version"),
            "name": next((e.get("target") for e in timeline if e.get("kind") == "run_start"), None),
        },
        "run_dir": run_dir.name,
    }
    card = build_scorecard(
        requests,
        timeline,
        spec.slos,
        timeout_ms=timeout_ms,
        meta=meta,
        telemetry=telemetry,
        lag=read_lag(paths.requests),
    )
    card["score"]["litmus_style"] = litmus_style(journal)
    chaos = _chaos_summary(journal)
    card["chaos"] = chaos
    if card.get("verdict") == "pass":
        if chaos.get("steady_state_before") is False:
            card.update(verdict="fail", exit_code=1)
            card["note"] = "the steady-state hypothesis did not hold before the method"
        elif chaos.get("deviated"):
            card.update(verdict="fail", exit_code=1)
            card["note"] = "the steady-state hypothesis deviated after the method"
    if write:
        paths.scorecard.write_text(
            json.dumps(card, indent=2, allow_nan=False) + "\n", encoding="utf-8"
        )
        t0 = card["run"].get("t0")
        if t0 is not None and len(requests):
            write_per_second(per_second(requests, t0, timeout_ms, slos=spec.slos), paths.slis)
    return card
