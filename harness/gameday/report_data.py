"""A game-day folder, read for its reports: ``gameday.json``, each run's scorecard, and how
each experiment moved since the last game day of the same plan.

A run folder without ``scorecard.json`` is scored first (as ``gpuchaos report`` does); one
that cannot be scored is shown without figures. "Since the last game day" compares each
experiment that ran both times with :func:`harness.compare.compare` and its default
thresholds, against the previous game-day folder of the plan that :mod:`harness.history`
finds: the same figures and limits as ``gpuchaos compare``, never a second copy.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.compare import compare, parse_thresholds
from harness.errors import ReportError
from harness.history import GAMEDAY_FILE, GameDay, previous_gameday, read_gameday
from harness.report.junit import slo_message
from harness.rundir import EXPERIMENT_FILE, SCORECARD_FILE

log = logging.getLogger(__name__)

#: Statuses of an experiment that ran to the end (the others are errors or not run).
FINISHED = ("passed", "failed")
NOT_RUN = "not run"
ICONS = {
    "passed": "✅",
    "failed": "❌",
    "error": "⚠️",
    "aborted": "⚠️",
    "incomplete": "⚠️",
    NOT_RUN: "⏭️",
}


@dataclass
class Entry:
    """One experiment of the game day: its ``gameday.json`` item, its run folder and
    scorecard (None when it did not run or could not be scored)."""

    index: int
    item: dict[str, Any]
    run_dir: Path | None
    card: dict[str, Any] | None

    @property
    def name(self) -> str:
        return str(self.item.get("name") or f"experiment-{self.index}")

    @property
    def suite(self) -> str:
        """A unique name: the run folder's (``01-gpu-node-loss``), or made the same way."""
        return self.run_dir.name if self.run_dir else f"{self.index:02d}-{self.name}"

    @property
    def status(self) -> str:
        return str(self.item.get("status") or NOT_RUN)

    @property
    def reason(self) -> str | None:
        reason = self.item.get("reason")
        return str(reason) if reason else None

    def figure(self, *path: str) -> Any:
        value: Any = self.card
        for key in path:
            value = value.get(key) if isinstance(value, dict) else None
        return value

    @property
    def misses(self) -> list[dict[str, Any]]:
        """The SLOs this run missed."""
        slos = self.figure("slos") or []
        return [s for s in slos if isinstance(s, dict) and not s.get("passed")]


@dataclass
class Change:
    """How one experiment moved since the last game day of the plan."""

    name: str
    verdicts: tuple[str, str]
    score: tuple[float | None, float | None]
    worse: list[str] = field(default_factory=list)
    better: list[str] = field(default_factory=list)


@dataclass
class GameDayData:
    """A game-day folder, read."""

    folder: Path
    doc: dict[str, Any]
    entries: list[Entry]
    previous: GameDay | None
    changes: list[Change]
    notes: list[str]

    @property
    def title(self) -> str:
        return str(self.doc.get("title") or self.doc.get("plan_name") or self.folder.name)

    @property
    def exit_code(self) -> int | None:
        code = self.doc.get("exit_code")
        return code if isinstance(code, int) and not isinstance(code, bool) else None

    @property
    def outcome(self) -> str:
        """``passed``, ``failed``, ``error`` or ``unfinished`` (no exit code yet)."""
        code = -1 if self.exit_code is None else self.exit_code
        return {0: "passed", 1: "failed", 2: "error"}.get(code, "unfinished")


def _card(run_dir: Path) -> dict[str, Any] | None:
    """The run's scorecard; scores the folder when it has none (None when it cannot)."""
    path = run_dir / SCORECARD_FILE
    try:
        if path.is_file():
            card = json.loads(path.read_text(encoding="utf-8"))
            return card if isinstance(card, dict) else None
        if (run_dir / EXPERIMENT_FILE).is_file():
            from harness.scoring.rundir import score_run_dir

            log.info("%s has no %s: scoring it first", run_dir, SCORECARD_FILE)
            return score_run_dir(run_dir)
    except Exception as exc:  # an odd folder is reported as such, never a crash
        log.warning("game-day report: %s: no scorecard (%s)", run_dir, exc)
    return None


def fmt(value: Any, unit: str = "", digits: int = 1) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "-"
    if not math.isfinite(value):
        return "n/a"
    text = f"{value:,.{digits}f}" if isinstance(value, float) else f"{value:,}"
    return f"{text} {unit}".strip()


def recovery_text(entry: Entry) -> str:
    """Time to recover as shown: seconds, ``not recovered``, or ``-`` without a fault."""
    if not entry.figure("recovery", "fault"):
        return "-"
    if not entry.figure("recovery", "recovered"):
        return "not recovered"
    return fmt(entry.figure("recovery", "time_to_recover_s"), "s")


def _changes(entries: list[Entry], previous: GameDay) -> list[Change]:
    """Each experiment that ran both times, compared with :func:`harness.compare.compare`
    and its default thresholds: the gated figures that regressed or got better."""
    before: dict[str, dict[str, Any]] = {}
    for item in previous.doc.get("experiments") or []:
        if isinstance(item, dict) and item.get("run_dir") and item.get("name"):
            card = _card(previous.folder / str(item["run_dir"]))
            if card is not None:
                before.setdefault(str(item["name"]), card)
    gates = parse_thresholds([])
    out: list[Change] = []
    for e in entries:
        old = before.get(e.name)
        if e.card is None or old is None:
            continue
        result = compare(old, e.card, gates)
        change = Change(
            e.name,
            (str(old.get("verdict")), str(e.card.get("verdict"))),
            ((old.get("score") or {}).get("value"), e.figure("score", "value")),
        )
        for row in result["rows"]:
            text = f"{row['figure']} {fmt(row['baseline'], row['unit'], 2)} → "
            text += f"{fmt(row['run'], row['unit'], 2)}"
            if row.get("note"):
                text = f"{row['figure']}: {row['note']}"
            elif row["delta_pct"] is not None:
                text += f" ({row['delta_pct']:+.0f}%)"
            if row["result"] == "REGRESSED":
                change.worse.append(text)
            elif row["result"] == "better":
                change.better.append(text)
        if change.verdicts[0] == "pass" and change.verdicts[1] != "pass":
            change.worse.insert(0, f"verdict {change.verdicts[0]} → {change.verdicts[1]}")
        elif change.verdicts[0] != "pass" and change.verdicts[1] == "pass":
            change.better.insert(0, f"verdict {change.verdicts[0]} → {change.verdicts[1]}")
        out.append(change)
    return out


def load_gameday(folder: str | Path) -> GameDayData:
    """Read a game-day folder; raises :class:`ReportError` without a readable
    ``gameday.json``."""
    folder = Path(folder)
    record = read_gameday(folder) if (folder / GAMEDAY_FILE).is_file() else None
    if record is None:
        raise ReportError(f"{folder}: not a game-day folder (no readable {GAMEDAY_FILE})")
    entries = []
    for i, item in enumerate(record.doc.get("experiments") or [], 1):
        if not isinstance(item, dict):
            continue
        run_dir = folder / str(item["run_dir"]) if item.get("run_dir") else None
        card = _card(run_dir) if run_dir is not None and run_dir.is_dir() else None
        entries.append(Entry(i, item, run_dir, card))
    notes: list[str] = []
    try:
        previous = previous_gameday(folder)
    except Exception as exc:  # history is a bonus: never lose the report over it
        log.warning("game-day report: no comparison with the last game day (%s)", exc)
        previous, notes = None, [f"no comparison with the last game day: {exc}"]
    changes = _changes(entries, previous) if previous is not None else []
    return GameDayData(folder, record.doc, entries, previous, changes, notes)


def miss_text(entry: Entry) -> str:
    """The missed SLOs in one line: ``p99_latency_ms (measured 1200.0 ms, objective <=
    1000.0 ms)``."""
    text = "; ".join(f"{m.get('name')} ({slo_message(m)})" for m in entry.misses)
    note = entry.card.get("note") if entry.card else None
    return text or (str(note) if note else "")  # a fail with every SLO met says why
