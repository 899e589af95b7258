"""Where the load and the faults lie on a run's timeline: the run window (``t0`` and the load
end) and every ``fault_start`` paired with its ``fault_end``.

Why a module of its own: the scorecard, its recovery figures and the report's fault shading
must agree on which end belongs to which fault, so the pairing is defined once, here (the
definitions are in :mod:`harness.scoring.scorecard`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, Protocol, overload

import pandas as pd


class TimeRange(Protocol):
    """Requests as far as :func:`run_window` needs them: how many, and when they span."""

    def __len__(self) -> int: ...

    def time_range(self) -> tuple[float, float]:
        """The first start and the last end."""
        ...


def events_of(timeline: Sequence[Mapping[str, Any]], kind: str) -> list[Mapping[str, Any]]:
    """The events of one ``kind`` that have a time, in time order."""
    found = [e for e in timeline if e.get("kind") == kind and _is_number(e.get("time"))]
    return sorted(found, key=lambda e: float(e["time"]))


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def run_window(
    requests: pd.DataFrame | TimeRange, timeline: Sequence[Mapping[str, Any]]
) -> tuple[float, float]:
    """``(t0, load_end)`` of a run as unix seconds (see :mod:`harness.scoring.scorecard`);
    ``(0.0, 0.0)`` with no data. ``requests`` may be anything with a length and a
    ``time_range()`` (a log read in parts)."""
    starts = events_of(timeline, "load_start")
    if isinstance(requests, pd.DataFrame):
        first, last = (
            (float(requests["start"].min()), float(requests["end"].max()))
            if len(requests)
            else (0.0, 0.0)
        )
    else:
        first, last = requests.time_range() if len(requests) else (0.0, 0.0)
    if starts:
        t0 = float(starts[0]["time"])
    elif len(requests):
        t0 = first
    else:
        times = [float(e["time"]) for e in timeline if _is_number(e.get("time"))]
        t0 = min(times) if times else 0.0
    ends = [e for e in events_of(timeline, "load_end") if float(e["time"]) >= t0]
    if ends:
        load_end = float(ends[0]["time"])
    elif len(requests):
        load_end = last
    else:
        load_end = t0
    return t0, max(t0, load_end)


def fault_pairs(
    timeline: Sequence[Mapping[str, Any]],
) -> list[tuple[Mapping[str, Any], Mapping[str, Any] | None]]:
    """Every ``fault_start`` event, in time order, with its ``fault_end``: the first of the
    same target at or after it that no earlier fault took (``None`` when it never ended)."""
    ends = events_of(timeline, "fault_end")
    taken: set[int] = set()
    out: list[tuple[Mapping[str, Any], Mapping[str, Any] | None]] = []
    for start in events_of(timeline, "fault_start"):
        target = str(start.get("target", ""))
        match: Mapping[str, Any] | None = None
        for i, end in enumerate(ends):
            if (
                i not in taken
                and str(end.get("target", "")) == target
                and float(end["time"]) >= float(start["time"])
            ):
                taken.add(i)
                match = end
                break
        out.append((start, match))
    return out


@overload
def fault_windows(
    timeline: Sequence[Mapping[str, Any]],
    *,
    t0: float = 0.0,
    open_until: None = None,
    labels: bool = False,
) -> list[tuple[float, float | None, str]]: ...


@overload
def fault_windows(
    timeline: Sequence[Mapping[str, Any]],
    *,
    t0: float = 0.0,
    open_until: float,
    labels: bool = False,
) -> list[tuple[float, float, str]]: ...


def fault_windows(
    timeline: Sequence[Mapping[str, Any]],
    *,
    t0: float = 0.0,
    open_until: float | None = None,
    labels: bool = False,
) -> list[tuple[float, float | None, str]] | list[tuple[float, float, str]]:
    """``(fault_start, fault_end, target)`` of every fault in time order (see
    :func:`fault_pairs`), as unix seconds; ``fault_end`` is None when the fault never ended.

    For plots (the report shades these windows): times are seconds since ``t0`` when it is
    given; a fault that never ended lasts until ``open_until`` when that is given; with
    ``labels`` the third item is ``"<fault> <target>"`` (the fault named in the details of
    its start event, else ``fault``), `` (not reverted)`` added when it never ended.
    """
    out: list[tuple[float, float | None, str]] = []
    for start, end in fault_pairs(timeline):
        name = str(start.get("target", ""))
        if labels:
            details = start.get("details")
            fault = (details if isinstance(details, Mapping) else {}).get("fault") or "fault"
            name = f"{fault} {name}" + ("" if end is not None else " (not reverted)")
        if end is not None:
            finish: float | None = float(end["time"]) - t0
        else:
            finish = None if open_until is None else open_until - t0
        out.append((float(start["time"]) - t0, finish, name))
    return out


def fault_window(
    timeline: Sequence[Mapping[str, Any]],
) -> tuple[float | None, float | None, str | None]:
    """``(fault_start, fault_end, target)`` of the first fault; all None without one."""
    windows = fault_windows(timeline)
    if not windows:
        return None, None, None
    return windows[0]
