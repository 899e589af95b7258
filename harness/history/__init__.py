"""History: every run folder and game-day folder under some folders, as one pandas table.

Why: a game day is compared with the last one, and a CI gate with the last passing run;
both need to find earlier runs of the same experiment without a database. The run folders
are the database: each one's ``scorecard.json``, ``experiment.yaml`` (hashed, so a changed
experiment file is told apart from the same one) and the ``run_start`` event of its
timeline (the harness version that ran it). A game-day folder (one with ``gameday.json``)
adds its plan's name to the runs inside it.

A folder that is not what it seems (no scorecard yet, an unreadable JSON file, a scorecard
of another tool) is skipped with a warning; indexing never fails because of one folder.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from harness.errors import ConfigError
from harness.rundir import EXPERIMENT_FILE, SCORECARD_FILE, TIMELINE_FILE

log = logging.getLogger(__name__)

#: The file that makes a folder a game-day folder (written by ``gpuchaos gameday``).
GAMEDAY_FILE = "gameday.json"

#: The fixed columns of :func:`history_table`, in order; then one ``slo.<name>`` column per
#: SLO (its measured value) and ``run_dir``.
COLUMNS: tuple[str, ...] = (
    "time",
    "experiment",
    "experiment_sha256",
    "harness_version",
    "verdict",
    "exit_code",
    "score",
    "time_to_recover_s",
    "requests_lost",
    "plan",
    "gameday_dir",
)
SLO_PREFIX = "slo."

#: How many timeline lines are read looking for ``run_start`` (the runner's first event).
_TIMELINE_HEAD = 50


@dataclass(frozen=True)
class GameDay:
    """A game-day folder, from its ``gameday.json``."""

    folder: Path
    plan_name: str
    started: pd.Timestamp | None
    exit_code: int | None
    doc: dict[str, Any]


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _read_json(path: Path) -> dict[str, Any] | None:
    """A JSON object from ``path``, or None with a warning."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as exc:
        log.warning("history: skipping %s: unreadable (%s)", path, exc)
        return None
    if not isinstance(doc, dict):
        log.warning("history: skipping %s: not a JSON object", path)
        return None
    return doc


def _timestamp(value: Any) -> pd.Timestamp | None:
    """A UTC timestamp from unix seconds or an ISO text; None when it is neither."""
    try:
        if _number(value) is not None:
            return pd.Timestamp(float(value), unit="s", tz="UTC")
        if isinstance(value, str) and value:
            stamp = pd.Timestamp(value)
            return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    except (ValueError, OverflowError):
        return None
    return None


def read_gameday(folder: Path) -> GameDay | None:
    """The game day of ``folder`` (its ``gameday.json``), or None (with a warning when the
    file is there but unreadable)."""
    doc = _read_json(folder / GAMEDAY_FILE)
    if doc is None:
        return None
    name = doc.get("plan_name") or Path(str(doc.get("plan") or folder.name)).stem
    code = doc.get("exit_code")
    return GameDay(
        folder=folder,
        plan_name=str(name),
        started=_timestamp(doc.get("started")),
        exit_code=code if isinstance(code, int) and not isinstance(code, bool) else None,
        doc=doc,
    )


def file_sha256(path: Path) -> str | None:
    """The sha256 of a file's bytes (None when it cannot be read)."""
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


def _run_start(run_dir: Path) -> dict[str, Any] | None:
    """The ``run_start`` event among the first lines of the timeline (None without one)."""
    try:
        with (run_dir / TIMELINE_FILE).open(encoding="utf-8", errors="replace") as fh:
            for i, line in enumerate(fh):
                if i >= _TIMELINE_HEAD:
                    break
                try:
                    event = json.loads(line)
                except ValueError:
                    continue
                if isinstance(event, dict) and event.get("kind") == "run_start":
                    return event
    except OSError:
        return None
    return None


def run_row(run_dir: Path, gameday: GameDay | None = None) -> dict[str, Any] | None:
    """One history row of a run folder, or None (with a warning) when it has no usable
    scorecard."""
    card_path = run_dir / SCORECARD_FILE
    if not card_path.is_file():
        log.warning(
            "history: skipping %s: no %s (score it: gpuchaos score %s)",
            run_dir,
            SCORECARD_FILE,
            run_dir,
        )
        return None
    card = _read_json(card_path)
    if card is None:
        return None
    if not isinstance(card.get("run"), dict) or "verdict" not in card:
        log.warning("history: skipping %s: not a gpuchaos scorecard", card_path)
        return None
    meta = _dict(card.get("meta"))
    exp = _dict(meta.get("experiment"))
    start = _run_start(run_dir)
    details = _dict(start.get("details") if start else None)
    time = _timestamp(card["run"].get("t0")) or _timestamp(start.get("time") if start else None)
    if time is None:  # a run that never started its load: the folder's own time
        time = _timestamp(run_dir.stat().st_mtime)
    score, recovery = _dict(card.get("score")), _dict(card.get("recovery"))
    row: dict[str, Any] = {
        "time": time,
        "experiment": str(
            exp.get("name") or (start.get("target") if start else None) or run_dir.name
        ),
        "experiment_sha256": file_sha256(run_dir / EXPERIMENT_FILE),
        "harness_version": details.get("harness_version") or meta.get("harness_version"),
        "verdict": str(card.get("verdict")),
        "exit_code": card.get("exit_code"),
        "score": _number(score.get("value")),
        "time_to_recover_s": _number(recovery.get("time_to_recover_s")),
        "requests_lost": _number(recovery.get("requests_lost")),
        "plan": gameday.plan_name if gameday else None,
        "gameday_dir": str(gameday.folder) if gameday else None,
    }
    for slo in card.get("slos") or []:
        if isinstance(slo, dict) and slo.get("name"):
            row[f"{SLO_PREFIX}{slo['name']}"] = _number(slo.get("measured"))
    row["run_dir"] = str(run_dir)
    return row


def _walk(roots: Sequence[Path]) -> Iterator[tuple[Path, GameDay | None]]:
    """Every run folder under ``roots`` (a root may be a run folder itself), with the game
    day it belongs to. A run folder's own subfolders (its logs) are not searched."""
    seen: set[Path] = set()
    for root in roots:
        if not root.is_dir():
            raise ConfigError(str(root), "", "no such folder")
        for here, dirs, files in os.walk(root, followlinks=False):
            folder = Path(here)
            dirs.sort()
            if EXPERIMENT_FILE in files:
                dirs.clear()  # a run folder: nothing to find inside
                real = folder.resolve()
                if real not in seen:
                    seen.add(real)
                    parent = folder.parent
                    gameday = read_gameday(parent) if (parent / GAMEDAY_FILE).is_file() else None
                    yield folder, gameday


def history_table(
    roots: Iterable[str | Path],
    experiment: str | None = None,
    since: pd.Timestamp | None = None,
) -> pd.DataFrame:
    """The runs under ``roots`` (recursively, run folders inside game-day folders too), oldest
    first: :data:`COLUMNS`, then ``slo.<name>`` per SLO, then ``run_dir``. ``experiment``
    keeps one experiment's runs; ``since`` those that started at or after it."""
    rows = []
    for run_dir, gameday in _walk([Path(r) for r in roots]):
        try:
            row = run_row(run_dir, gameday)
        except OSError as exc:  # a folder that vanished or cannot be read meanwhile
            log.warning("history: skipping %s: %s", run_dir, exc)
            continue
        if row is None or (experiment is not None and row["experiment"] != experiment):
            continue
        if since is not None and row["time"] < since:
            continue
        rows.append(row)
    slo_cols = sorted({k for r in rows for k in r if k.startswith(SLO_PREFIX)})
    table = pd.DataFrame(rows, columns=[*COLUMNS, *slo_cols, "run_dir"])
    if not table.empty:
        table = table.sort_values("time", kind="stable").reset_index(drop=True)
    return table


def gameday_folders(roots: Iterable[str | Path]) -> list[GameDay]:
    """The game-day folders under ``roots`` (readable ``gameday.json``), oldest first."""
    found: list[GameDay] = []
    for root in (Path(r) for r in roots):
        if not root.is_dir():
            continue
        for here, dirs, files in os.walk(root, followlinks=False):
            dirs.sort()
            if EXPERIMENT_FILE in files:
                dirs.clear()
            elif GAMEDAY_FILE in files:
                gameday = read_gameday(Path(here))
                if gameday is not None:
                    found.append(gameday)
    epoch = pd.Timestamp(0, unit="s", tz="UTC")
    return sorted(found, key=lambda g: (g.started or epoch, g.folder.name))


def history_root(path: Path) -> Path:
    """Where to look for a run's or a game day's predecessors: the folder it lives in, or,
    for a run inside a game-day folder, above the game days (``results/gamedays/X/01-a`` ->
    ``results``), so both single runs and other game days are found."""
    folder = path.resolve().parent
    if (folder / GAMEDAY_FILE).is_file():
        folder = folder.parent
    if folder.name == "gamedays":
        folder = folder.parent
    return folder


def previous_gameday(folder: Path, roots: Iterable[str | Path] | None = None) -> GameDay | None:
    """The last game day of the same plan before the one in ``folder`` (None when there is
    none, or ``folder`` has no readable ``gameday.json``)."""
    current = read_gameday(folder)
    if current is None:
        return None
    here = folder.resolve()
    search = list(roots) if roots is not None else [history_root(folder / "x")]
    earlier = [
        g
        for g in gameday_folders(search)
        if g.plan_name == current.plan_name
        and g.folder.resolve() != here
        and (current.started is None or g.started is None or g.started < current.started)
    ]
    return earlier[-1] if earlier else None


def parse_since(text: str) -> pd.Timestamp:
    """``--since``: an ISO date or time (UTC unless it says otherwise), or an age such as
    ``7d`` or ``12h`` before now."""
    text = text.strip()
    if text[-1:] in ("d", "h") and text[:-1].replace(".", "", 1).isdigit():
        unit = "D" if text[-1] == "d" else "h"
        return pd.Timestamp.now(tz="UTC") - pd.Timedelta(float(text[:-1]), unit=unit)
    stamp = _timestamp(text)
    if stamp is None:
        raise ConfigError(
            "--since",
            text,
            "expected a date or time (2026-11-29, 2026-11-29T08:00Z) or an age (7d, 12h)",
        )
    return stamp
