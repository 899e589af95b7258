"""Scored run folders and game-day folders with known content, for the history and the
game-day report tests (unit tier: files only, the real scorer, nothing started).

:func:`scored_run` is ``tests/unit/test_report_writers.make_run`` (60 s of load, a node-a
fault from 20 s to 30 s) moved ``day`` days later, with the SLOs and the harness version
given, scored by :func:`harness.scoring.rundir.score_run_dir` (``scorecard.json`` and
``slis.csv``) and, with ``reports``, its ``report.html``, ``junit.xml`` and ``summary.md``.
:func:`gameday_folder` puts such runs into a game-day folder with a ``gameday.json`` as the
game-day runner writes it (the contract of issue #13).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import yaml

from harness.config import EXTENSION_NAME
from harness.report import write_reports
from harness.scoring.rundir import score_run_dir
from tests.unit.test_report_writers import make_run

DAY_S = 86_400.0
#: SLOs the known run meets: p50 50 ms, 10 of 600 requests failed, recovered in 2 s.
PASSING_SLOS: dict[str, Any] = {
    "p50_latency_ms": 250,
    "error_rate": 0.05,
    "recovery_s": 20,
    "hold_s": 3,
}
#: Requests of the known run that end slow (5 s) from this second on: p50 then misses.
SLOW_AFTER_S = 10.0


def _shift_csv(path: Path, columns: tuple[int, ...], offset: float) -> None:
    with path.open(newline="") as fh:
        rows = list(csv.reader(fh))
    out = [rows[0]]
    for row in rows[1:]:
        if len(row) != len(rows[0]):
            continue  # a torn last line
        for c in columns:
            row[c] = f"{float(row[c]) + offset:.3f}"
        out.append(row)
    with path.open("w", newline="") as fh:
        csv.writer(fh).writerows(out)


def scored_run(
    path: Path,
    *,
    day: float = 0.0,
    name: str = "gpu-node-loss",
    slos: dict[str, Any] | None = None,
    slow: bool = False,
    harness_version: str = "9.9.9-test",
    title: str | None = None,
    reports: bool = False,
) -> Path:
    """A scored run folder of experiment ``name`` (see module); ``slow`` makes p50 miss
    from 10 s on; ``title`` changes the experiment file (so its sha256) without changing what
    it measures."""
    make_run(path, slow_after=SLOW_AFTER_S if slow else None)
    exp_path = path / "experiment.yaml"
    doc = yaml.safe_load(exp_path.read_text())
    if slos is not None:
        ext = next(e for e in doc["extensions"] if e.get("name") == EXTENSION_NAME)
        ext["slos"] = dict(slos)
    if title is not None:
        doc["title"] = title
    exp_path.write_text(yaml.safe_dump(doc, sort_keys=False))
    offset = day * DAY_S
    _shift_csv(path / "requests.csv", (0, 1), offset)
    _shift_csv(path / "telemetry.csv", (0,), offset)
    events = [json.loads(line) for line in (path / "timeline.jsonl").read_text().splitlines()]
    for e in events:
        e["time"] += offset
        if e["kind"] == "run_start":
            e["target"] = name  # the experiment's name, as the runner writes it
            e["details"] = {"harness_version": harness_version}
    (path / "timeline.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    score_run_dir(path)
    if reports:
        write_reports(path)
    return path


def gameday_folder(
    folder: Path,
    runs: list[tuple[str, dict[str, Any]]],
    *,
    plan_name: str = "weekly",
    started: str = "2026-11-01T08:00:00Z",
    not_run: list[tuple[str, str]] | None = None,
    exit_code: int | None = None,
) -> Path:
    """A game-day folder: each ``(experiment name, scored_run keyword arguments)`` becomes
    run folder ``NN-name``; ``not_run`` adds ``(name, reason)`` entries that did not run.
    Statuses come from each run's real scorecard."""
    folder.mkdir(parents=True, exist_ok=True)
    items: list[dict[str, Any]] = []
    for i, (name, kw) in enumerate(runs, 1):
        run_dir = scored_run(folder / f"{i:02d}-{name}", name=name, **kw)
        card = json.loads((run_dir / "scorecard.json").read_text())
        status = {"pass": "passed", "fail": "failed"}.get(card["verdict"], card["verdict"])
        items.append(
            {
                "name": name,
                "path": f"experiments/{name}.yaml",
                "vars": {"duration_s": 60},
                "run_dir": run_dir.name,
                "status": status,
                "reason": None if status == "passed" else "an SLO missed",
                "exit_code": card["exit_code"],
                "reset_s": None if i == 1 else 4.2,
                "shared_platform": True,
            }
        )
    for name, reason in not_run or []:
        items.append(
            {
                "name": name,
                "path": f"experiments/{name}.yaml",
                "vars": {},
                "run_dir": None,
                "status": "not run",
                "reason": reason,
                "exit_code": None,
                "reset_s": None,
                "shared_platform": True,
            }
        )
    codes = {0 if i["status"] == "passed" else 1 for i in items if i["run_dir"]}
    if exit_code is None:
        exit_code = 2 if not_run else max(codes, default=0)
    doc = {
        "plan": f"experiments/gamedays/{plan_name}.yaml",
        "plan_name": plan_name,
        "title": f"The {plan_name} game day",
        "plan_sha256": "0" * 64,
        "harness_version": "9.9.9-test",
        "started": started,
        "ended": started,
        "seed": None,
        "deploy_s": 12.3,
        "experiments": items,
        "exit_code": exit_code,
    }
    (folder / "gameday.json").write_text(json.dumps(doc, indent=2))
    return folder
