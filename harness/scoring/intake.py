"""What ``gpuchaos score`` reads from a run folder that may be damaged or unfinished.

Why a module of its own: a run folder is written while the run goes (records and events are
flushed as they come), so a harness that was killed, a full disk or a hand edit leaves torn
lines, garbage and absurd numbers behind. The scorer must step over them, say what it
stepped over (the scorecard's ``warnings``), and tell a finished run from one that was not:

- **Timeline events** (:func:`read_events`): a line that is not a JSON object with a string
  ``kind`` and a finite number ``time`` is skipped (a torn last line of a killed run gets a
  warning of its own); ``target`` becomes a string and ``details`` an object (``{}`` when
  it was not one).
- **Times far from the run** (:func:`drop_far_off`): requests and events more than
  :data:`MAX_SPAN_S` from the run's median time (of the request starts, else of the
  events) are dropped with a warning: no run lasts that long, and one such number would
  make the per-second table billions of rows.
- **Unfinished run** (:func:`unfinished`): the runner writes ``run_start`` first and
  ``run_end`` last, also when the run was interrupted or aborted, so a timeline with a
  ``run_start`` and no ``run_end`` is a harness that was killed (or is still running); so
  is a folder without a timeline, or with one that holds no event. Such a folder scores as
  ``incomplete``. A timeline with neither ``run_start`` nor ``run_end`` was written by a
  tool or a test (the events of the load alone) and is scored as it is.
- **Journal** (:func:`read_journal`): one that is not a JSON object is left out with a
  warning (the chaos summary then says the experiment did not run).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from harness.rundir import REQUESTS_FILE, TIMELINE_FILE
from harness.scoring.lenient import warn

#: The farthest a request or an event may lie from the run's median time, in seconds (a
#: week: longer than any run, short enough for a per-second table).
MAX_SPAN_S = 7 * 24 * 3600.0


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _event(item: Any) -> dict[str, Any] | None:
    """``item`` as a timeline event, or None when it is not one."""
    if not isinstance(item, dict):
        return None
    kind, at = item.get("kind"), item.get("time")
    if not isinstance(kind, str) or not isinstance(at, int | float) or not _is_number(at):
        return None
    details = item.get("details")
    target = item.get("target")
    return {
        "time": float(at),
        "kind": kind,
        "target": "" if target is None else str(target),
        "details": details if isinstance(details, dict) else {},
    }


def read_events(path: Path, warnings: list[str] | None) -> list[dict[str, Any]] | None:
    """The events of ``timeline.jsonl`` (see module); None when there is no such file."""
    if not path.is_file():
        return None
    try:
        data = path.read_bytes()
    except OSError as exc:
        warn(warnings, path, f"unreadable ({exc.strerror or exc}); scored without events")
        return []
    lines = data.decode("utf-8", errors="replace").split("\n")
    torn = lines.pop()  # after the last newline: empty, or a line cut short
    events: list[dict[str, Any]] = []
    skipped = 0
    for line in lines:
        if not line.strip():
            continue
        try:
            event = _event(json.loads(line))
        except (ValueError, RecursionError):
            event = None
        if event is None:
            skipped += 1
        else:
            events.append(event)
    if torn.strip():
        try:
            last = _event(json.loads(torn))
        except (ValueError, RecursionError):
            last = None
        if last is None:
            warn(warnings, path, f"skipped a torn last line ({len(torn.encode())} bytes)")
        else:
            events.append(last)
    if skipped:
        warn(warnings, path, f"skipped {skipped} line(s) that are not timeline events")
    return events


def drop_far_off(
    requests: pd.DataFrame, events: list[dict[str, Any]], warnings: list[str] | None
) -> tuple[pd.DataFrame, list[dict[str, Any]]]:
    """Requests and events within :data:`MAX_SPAN_S` of the run's median time (see module)."""
    if len(requests):
        middle = float(np.median(requests["start"].to_numpy(dtype="float64")))
    elif events:
        middle = float(np.median([e["time"] for e in events]))
    else:
        return requests, events
    low, high = middle - MAX_SPAN_S, middle + MAX_SPAN_S
    inside = requests["start"].between(low, high) & requests["end"].between(low, high)
    if not inside.all():
        warn_far_off(warnings, REQUESTS_FILE, int((~inside).sum()), "row(s)")
        requests = requests[inside].reset_index(drop=True)
    return requests, events_near(events, low, high, warnings)


def warn_far_off(warnings: list[str] | None, file: str, count: int, what: str) -> None:
    """The warning of :func:`drop_far_off` for ``count`` rows or events of ``file``."""
    text = (
        f"dropped {count} {what} with a time more than {MAX_SPAN_S / 86400:g} days from the run's"
    )
    warn(warnings, file, text)


def events_near(
    events: list[dict[str, Any]], low: float, high: float, warnings: list[str] | None
) -> list[dict[str, Any]]:
    """The events from ``low`` to ``high`` (see :func:`drop_far_off`)."""
    kept = [e for e in events if low <= e["time"] <= high]
    if len(kept) < len(events):
        warn_far_off(warnings, TIMELINE_FILE, len(events) - len(kept), "event(s)")
    return kept


def unfinished(events: list[dict[str, Any]] | None) -> str | None:
    """Why the run did not finish (see module), or None when it did."""
    if events is None:
        return f"no {TIMELINE_FILE}: whether the run finished is unknown"
    if not events:
        return f"{TIMELINE_FILE} holds no event: whether the run finished is unknown"
    kinds = {e["kind"] for e in events}
    if "run_start" in kinds and "run_end" not in kinds:
        return (
            f"the run did not finish ({TIMELINE_FILE} has no run_end: the harness was killed "
            "or is still running); the figures cover what was recorded"
        )
    return None


def read_journal(path: Path, warnings: list[str] | None) -> dict[str, Any] | None:
    """Chaos Toolkit's journal, or None (none written, or unreadable: with a warning)."""
    if not path.is_file():
        return None
    try:
        journal = json.loads(path.read_bytes().decode("utf-8"))
    except (OSError, ValueError, RecursionError) as exc:
        warn(warnings, path, f"unreadable ({exc}); scored without it")
        return None
    if not isinstance(journal, Mapping):
        warn(warnings, path, "not a JSON object; scored without it")
        return None
    return dict(journal)
