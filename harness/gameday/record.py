"""``gameday.json``: the game day as it goes, written again after every experiment.

Why flushed each time (atomically: a new file renamed over the old): a game day that is
interrupted or killed still leaves a readable file saying what ran, what did not and why;
the reports (:mod:`harness.gameday.report`) and the history read it.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from harness import __version__
from harness.gameday.prepare import LoadedPlan

GAMEDAY_FILE = "gameday.json"
#: The shared deployment's own events (its bring-up and the resets between experiments).
GAMEDAY_TIMELINE = "gameday-timeline.jsonl"
#: The harness's log for the whole game day (each run folder has its own harness.log too).
GAMEDAY_LOG = "gameday.log"

#: An experiment's status: passed, failed (an SLO missed), error (the harness could not run
#: it), aborted (interrupted or stopped by an abort guard), incomplete, or not run.
STATUSES = ("passed", "failed", "error", "aborted", "incomplete", "not run")
NOT_RUN = "not run"


def utc(t: float | None = None) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def _shown(path: Path) -> str:
    """A path as the user would type it: relative to here when it is below."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


class GamedayRecord:
    """The content of ``gameday.json`` and its writer."""

    def __init__(self, folder: Path, loaded: LoadedPlan) -> None:
        self.path = folder / GAMEDAY_FILE
        self.data: dict[str, Any] = {
            "plan": _shown(loaded.path),
            "plan_name": loaded.name,
            "title": loaded.plan.title,
            "plan_sha256": loaded.sha256,
            "harness_version": __version__,
            "started": utc(),
            "ended": None,
            "seed": loaded.seed,
            "deploy_s": None,
            "experiments": [
                {
                    "name": e.name,
                    "path": _shown(e.path),
                    "vars": e.vars,
                    "run_dir": None,
                    "status": NOT_RUN,
                    "reason": None,
                    "exit_code": None,
                    "reset_s": None,
                    "shared_platform": e.shared,
                }
                for e in loaded.entries
            ],
            "exit_code": None,
        }

    @property
    def experiments(self) -> list[dict[str, Any]]:
        return list(self.data["experiments"])

    def update(self, index: int, **fields: Any) -> None:
        self.data["experiments"][index].update(fields)
        self.flush()

    def not_run(self, reason: str) -> None:
        """Every experiment that has not run yet: ``not run`` with ``reason``."""
        for item in self.data["experiments"]:
            if item["status"] == NOT_RUN and item["reason"] is None:
                item["reason"] = reason
        self.flush()

    def finish(self) -> int:
        """Close the record; returns the game day's exit code: 0 all passed, 2 any
        experiment that could not run (error, aborted, incomplete, not run), else 1 (an SLO
        missed)."""
        statuses = {item["status"] for item in self.data["experiments"]}
        if statuses <= {"passed"}:
            code = 0
        elif statuses & {"error", "aborted", "incomplete", NOT_RUN}:
            code = 2
        else:
            code = 1
        self.data["exit_code"] = code
        self.data["ended"] = utc()
        self.flush()
        return code

    def flush(self) -> None:
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        tmp.write_text(json.dumps(self.data, indent=2, default=str) + "\n", encoding="utf-8")
        os.replace(tmp, self.path)
