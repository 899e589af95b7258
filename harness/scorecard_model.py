"""A run's ``scorecard.json`` as a typed, read-only object: what a release gate asserts on.

Why: a team's CI gate (the pytest plugin, :mod:`harness.pytest_plugin`) should say
``card.slo("p99_latency_ms").measured`` and ``card.assert_slos()`` rather than dig through
JSON, and a failed assertion should name the SLO, the measured value against its objective
and the run folder to open. The scorecard itself stays the contract (``gpuchaos score``
writes it); this module only reads it, tolerating keys it does not know, so a newer
scorecard never breaks an older gate. Comparisons with a baseline go through
:mod:`harness.compare`, the same logic as ``gpuchaos compare``.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.compare import compare, load_scorecard, parse_thresholds
from harness.errors import ScoringError
from harness.rundir import RunDir

log = logging.getLogger(__name__)

#: ``scorecard.regressions("last-pass")``: the newest earlier passing run of the same
#: experiment beside this one (in the same ``--gpuchaos-out`` folder).
LAST_PASS = "last-pass"


def _num(value: Any) -> float | None:
    """A finite number from JSON, else None (missing, null, a string, a bool)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


@dataclass(frozen=True)
class SLOResult:
    """One SLO of the scorecard: its objective, what the run measured, and the outcome."""

    name: str
    objective: float
    comparator: str  # "<=" (latency, error rate, recovery) or ">=" (throughput)
    measured: float | None  # None: nothing to measure (counts as missed)
    unit: str
    window: str
    passed: bool
    note: str | None = None

    def describe(self) -> str:
        """``p99_latency_ms: measured 812.4 ms, objective <= 500 ms (run)``."""
        unit = f" {self.unit}" if self.unit and self.unit != "ratio" else ""
        measured = "n/a" if self.measured is None else f"{self.measured:g}{unit}"
        text = (
            f"{self.name}: measured {measured}, objective {self.comparator} "
            f"{self.objective:g}{unit} ({self.window})"
        )
        return text + (f": {self.note}" if self.note else "")

    @classmethod
    def from_json(cls, entry: Mapping[str, Any]) -> SLOResult:
        return cls(
            name=str(entry.get("name")),
            objective=_num(entry.get("objective")) or 0.0,
            comparator=str(entry.get("comparator", "<=")),
            measured=_num(entry.get("measured")),
            unit=str(entry.get("unit") or ""),
            window=str(entry.get("window") or "run"),
            passed=bool(entry.get("passed")),
            note=entry.get("note"),
        )


@dataclass(frozen=True)
class Recovery:
    """The recovery figures of the run (``recovery`` in the scorecard); None: not measured."""

    fault: bool
    breached: bool
    recovered: bool
    time_to_detect_s: float | None
    time_to_recover_s: float | None
    capacity_return_s: float | None
    requests_lost: float | None
    degraded_s: float | None
    worst_error_rate: float | None
    worst_p99_ms: float | None

    @classmethod
    def from_json(cls, rec: Mapping[str, Any]) -> Recovery:
        return cls(
            fault=bool(rec.get("fault")),
            breached=bool(rec.get("breached")),
            recovered=bool(rec.get("recovered")),
            time_to_detect_s=_num(rec.get("time_to_detect_s")),
            time_to_recover_s=_num(rec.get("time_to_recover_s")),
            capacity_return_s=_num(rec.get("capacity_return_s")),
            requests_lost=_num(rec.get("requests_lost")),
            degraded_s=_num(rec.get("degraded_s")),
            worst_error_rate=_num(rec.get("worst_error_rate")),
            worst_p99_ms=_num(rec.get("worst_p99_ms")),
        )


@dataclass(frozen=True)
class Scorecard:
    """A scored run. Build one with :meth:`load` (a run folder or a ``scorecard.json``)."""

    run_dir: Path
    experiment: str | None  # the experiment's name (its file name without .yaml)
    verdict: str  # pass, fail, incomplete
    exit_code: int  # 0 pass, 1 an SLO missed, 2 incomplete
    score: float | None  # 0-100
    t0: float | None  # when the load started (unix seconds)
    slos: tuple[SLOResult, ...]
    recovery: Recovery
    p50_latency_ms: float | None
    p99_latency_ms: float | None
    error_rate: float | None
    throughput_rps: float | None
    goodput_rps: float | None
    warnings: tuple[str, ...]
    note: str | None
    raw: Mapping[str, Any] = field(repr=False, compare=False)  # the whole scorecard.json

    @classmethod
    def from_json(cls, card: Mapping[str, Any], run_dir: str | Path) -> Scorecard:
        meta = card.get("meta") or {}
        run = card.get("run") or {}
        return cls(
            run_dir=Path(run_dir),
            experiment=(meta.get("experiment") or {}).get("name"),
            verdict=str(card.get("verdict")),
            exit_code=int(card.get("exit_code", 2)),
            score=_num((card.get("score") or {}).get("value")),
            t0=_num(run.get("t0")),
            slos=tuple(SLOResult.from_json(s) for s in card.get("slos") or ()),
            recovery=Recovery.from_json(card.get("recovery") or {}),
            p50_latency_ms=_num(run.get("p50_latency_ms")),
            p99_latency_ms=_num(run.get("p99_latency_ms")),
            error_rate=_num(run.get("error_rate")),
            throughput_rps=_num(run.get("throughput_rps")),
            goodput_rps=_num(run.get("goodput_rps")),
            warnings=tuple(str(w) for w in card.get("warnings") or ()),
            note=card.get("note"),
            raw=card,
        )

    @classmethod
    def load(cls, path: str | Path) -> Scorecard:
        """The scorecard of a run folder (scored offline when it has none) or of a
        ``scorecard.json``; :class:`ScoringError` when there is none to read."""
        path = Path(path).resolve()
        run_dir = path if path.is_dir() else path.parent
        return cls.from_json(load_scorecard(path), run_dir)

    @property
    def passed(self) -> bool:
        return self.verdict == "pass"

    def slo(self, name: str) -> SLOResult:
        """The SLO called ``name``; KeyError naming those the experiment has."""
        for s in self.slos:
            if s.name == name:
                return s
        have = ", ".join(s.name for s in self.slos) or "none"
        raise KeyError(f"no SLO {name!r} in {self.run_dir} (its SLOs: {have})")

    @property
    def missed(self) -> tuple[SLOResult, ...]:
        return tuple(s for s in self.slos if not s.passed)

    def assert_slos(self) -> None:
        """AssertionError listing every missed SLO (measured against its objective) and the
        run folder; also when the run is not a pass for another reason (incomplete, the
        steady-state hypothesis did not hold)."""
        __tracebackhide__ = True  # pytest shows the test's line, not this one
        problems = [s.describe() for s in self.missed]
        if self.verdict != "pass" and not problems:
            problems.append(f"verdict {self.verdict}" + (f": {self.note}" if self.note else ""))
        if problems:
            head = f"{self.experiment or 'run'}: {len(problems)} SLO(s) missed"
            if not self.missed:
                head = f"{self.experiment or 'run'}: not a pass"
            lines = [head, *(f"  {p}" for p in problems), f"  run folder: {self.run_dir}"]
            raise AssertionError("\n".join(lines))

    def regressions(
        self, baseline: str | Path | Scorecard, max_regression: Sequence[str] = ()
    ) -> list[str]:
        """What got worse than ``baseline`` beyond the thresholds, as ``gpuchaos compare``
        decides it: ``["time_to_recover_s: 4 -> 9 (+125.0%, limit 20%)", ...]``; empty
        when nothing did. ``baseline``: a run folder, a ``scorecard.json``, a Scorecard, or
        ``"last-pass"`` (:meth:`last_pass`; ScoringError when there is none).
        ``max_regression``: ``gpuchaos compare --max-regression`` values (``"10"``,
        ``"time_to_recover_s=50"``)."""
        if isinstance(baseline, str) and baseline == LAST_PASS:
            found = self.last_pass()
            if found is None:
                raise ScoringError(
                    f"no earlier passing run of {self.experiment} in {self.run_dir.parent}"
                )
            baseline = found
        base = baseline if isinstance(baseline, Scorecard) else Scorecard.load(baseline)
        result = compare(base.raw, self.raw, parse_thresholds(list(max_regression)))
        return list(result["regressions"])

    def last_pass(self) -> Scorecard | None:
        """The newest passing run of the same experiment that started before this one, among
        the run folders beside this one (``pytest --gpuchaos-out DIR`` keeps them there)."""
        best: Scorecard | None = None
        for sibling in sorted(self.run_dir.parent.iterdir()):
            card_path = RunDir(sibling).scorecard
            if sibling == self.run_dir or not card_path.is_file():
                continue
            try:
                card = Scorecard.from_json(json.loads(card_path.read_text("utf-8")), sibling)
            except (OSError, ValueError, TypeError, AttributeError) as exc:
                log.debug("%s: not a scorecard (%s), skipped", card_path, exc)
                continue
            if card.experiment != self.experiment or not card.passed or card.t0 is None:
                continue
            if self.t0 is not None and card.t0 >= self.t0:
                continue
            if best is None or (best.t0 or 0.0) < card.t0:
                best = card
        return best
