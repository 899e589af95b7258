"""SLO damage of a drill's run, second by second, from the scorer's ``slis.csv``.

A second is bad when its requests missed an objective the base sets (error rate, p99
latency, p95 time to first token) or when nothing was answered in it while load ran (a
hung service answers nothing at all). The same measure is taken of the trainee's run and
of the baseline (the scenario left alone), so the debrief can say whether the mitigation
helped.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any

from harness.config import SLOSpec
from harness.drill.score import DamageFigures

SLIS_FILE = "slis.csv"


def _number(row: dict[str, str], key: str) -> float | None:
    try:
        value = float(row.get(key) or "nan")
    except ValueError:
        return None
    return None if math.isnan(value) else value


def bad_second(row: dict[str, str], slos: SLOSpec) -> bool:
    """Whether one second of ``slis.csv`` missed the latency or error SLOs."""
    requests = _number(row, "requests") or 0.0
    errors = _number(row, "errors") or 0.0
    if requests <= 0 or errors >= requests:
        return True
    checks: list[tuple[float | None, str]] = [
        (slos.error_rate, "error_rate"),
        (slos.p99_latency_ms, "p99_ms"),
        (slos.ttft_p95_ms, "ttft_p95_ms"),
    ]
    for objective, key in checks:
        measured = _number(row, key)
        if objective is not None and measured is not None and measured > objective:
            return True
    return False


def read_seconds(run_dir: Path) -> list[dict[str, str]]:
    path = run_dir / SLIS_FILE
    if not path.is_file():
        return []
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def _in(row: dict[str, str], start: float, end: float) -> bool:
    second = _number(row, "second")
    return second is not None and start <= second < end


def damage(run_dir: Path, slos: SLOSpec, start_s: float, end_s: float) -> DamageFigures:
    """Damage over ``[start_s, end_s)`` seconds after the load started."""
    rows = [r for r in read_seconds(run_dir) if _in(r, math.floor(start_s), end_s)]
    return DamageFigures(
        requests=int(sum(_number(r, "requests") or 0 for r in rows)),
        failed=int(sum(_number(r, "errors") or 0 for r in rows)),
        bad_s=float(sum(1 for r in rows if bad_second(r, slos))),
        window_s=float(max(0.0, end_s - math.floor(start_s))),
    )


def held_before(run_dir: Path, slos: SLOSpec, at_s: float, verify_s: float) -> bool:
    """Whether every whole second of the ``verify_s`` before ``at_s`` met the SLOs."""
    rows = [r for r in read_seconds(run_dir) if _in(r, at_s - verify_s, math.floor(at_s))]
    return bool(rows) and not any(bad_second(r, slos) for r in rows)


def damage_dict(d: DamageFigures | None) -> dict[str, Any] | None:
    if d is None:
        return None
    return {
        "requests": d.requests,
        "failed": d.failed,
        "bad_s": d.bad_s,
        "window_s": round(d.window_s, 1),
        "bad_share": round(d.bad_share, 3),
    }
