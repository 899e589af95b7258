"""What a finished drill comes to: the content of ``drill.json``, from the run folder (the
true timeline, the SLIs per second), the trainee's records and the baseline.

Times are seconds after the load started (``load_t0.json``), the origin of the report's
plots, so the debrief, the page and report.html agree.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.drill.damage import damage, damage_dict, held_before
from harness.drill.debrief import true_timeline
from harness.drill.herrings import load_t0
from harness.drill.score import DamageFigures, Truth, score_drill
from harness.rundir import RunDir
from harness.timeline import read_timeline

if TYPE_CHECKING:
    from harness.drill.pack import LoadedPack
    from harness.drill.pick import Scenario
    from harness.runner import RunResult

log = logging.getLogger(__name__)


def _events(run_dir: Path) -> list[dict[str, Any]]:
    path = RunDir(run_dir).timeline
    return read_timeline(path) if path.is_file() else []


def _end_s(events: list[dict[str, Any]], t0: float) -> float:
    """When the load ended (or the run, when the load never said), after load start."""
    for kind in ("load_end", "run_end"):
        times = [float(e["time"]) for e in events if e.get("kind") == kind]
        if times:
            return max(0.0, times[0] - t0)
    return 0.0


def _ensure_scored(run_dir: Path, result: RunResult | None) -> None:
    """A run whose scoring the interrupt cut short is scored now (slis.csv is needed)."""
    if result is not None and (run_dir / "slis.csv").is_file():
        return
    from harness.scoring.rundir import score_run_dir

    try:
        score_run_dir(run_dir)
    except Exception as exc:
        log.warning("the drill's run could not be scored: %s", exc)


def baseline_figures(stored: dict[str, Any] | None) -> DamageFigures | None:
    if not stored:
        return None
    return DamageFigures(
        requests=int(stored["requests"]),
        failed=int(stored["failed"]),
        bad_s=float(stored["bad_s"]),
        window_s=float(stored["window_s"]),
    )


@dataclass
class DrillRecord:
    """What the drill kept of itself: its pack and scenario, the trainee's and the
    facilitator's doings, and how it ended."""

    run_dir: Path
    loaded: LoadedPack
    scenario: Scenario
    trainee: bool
    baseline: dict[str, Any] | None
    actions: list[dict[str, Any]]
    hand_injected: list[dict[str, Any]]
    herrings: list[dict[str, Any]]
    resolved: bool


def build_drill(rec: DrillRecord, result: RunResult | None) -> dict[str, Any]:
    """The content of drill.json."""
    run_dir, scenario, spec = rec.run_dir, rec.scenario, rec.loaded.spec
    _ensure_scored(run_dir, result)
    events = _events(run_dir)
    t0 = load_t0(run_dir) or (float(events[0]["time"]) if events else 0.0)
    starts = [
        float(e["time"]) - t0
        for e in events
        if e.get("kind") == "fault_start" and (e.get("details") or {}).get("activity") == "incident"
    ]
    injected = round(starts[0], 1) if starts else None
    at = injected if injected is not None else scenario.at_s
    end_s = _end_s(events, t0)
    records = [dict(a) for a in rec.actions]
    for a in records:
        a["t_s"] = round(float(a["time"]) - t0, 1)
    resolves = [r for r in records if r["action"] == "resolve" and r["ok"]]
    healthy = None
    if resolves:
        healthy = held_before(
            run_dir, spec.slos, float(resolves[0]["t_s"]), rec.loaded.pack.verify_s
        )
    mine = damage(run_dir, spec.slos, at, end_s) if injected is not None else None
    base = baseline_figures(rec.baseline)
    truth = Truth(at_s=at, diagnosis=scenario.diagnosis, target=scenario.target)
    score = score_drill(truth, records if rec.trainee else [], mine, base, healthy)
    if rec.resolved:
        ended_by = "resolved"
    elif result is not None and result.interrupted:
        ended_by = "interrupted"
    elif result is not None and result.error is not None:
        ended_by = f"error: {result.error}"
    else:
        ended_by = "time"
    baseline = damage_dict(base)
    if baseline is not None:
        baseline["source"] = (rec.baseline or {}).get("source", "pack")
    return {
        "schema": 1,
        "title": rec.loaded.pack.title,
        "pack": str(rec.loaded.path),
        "run_dir": str(run_dir),
        "trainee_run": rec.trainee,
        "ended_by": ended_by,
        "scenario": scenario.as_dict(),
        "injected_at_s": injected,
        "load_end_s": round(end_s, 1),
        "herrings": rec.herrings,
        "hand_injected": rec.hand_injected,
        "trainee": records,
        "true_timeline": true_timeline(events, t0),
        "damage": damage_dict(mine),
        "baseline": baseline,
        "resolved_healthy": healthy,
        "score": score,
        "exit_code": 0 if ended_by in ("time", "resolved") else 2,
    }
