"""``gpuchaos compare BASELINE_RUN RUN``: the deltas of the key figures of two runs, and
whether the second regressed beyond thresholds (exit 1) or not (exit 0); bad input exits 2.

Each run is a run folder (its ``scorecard.json``; scored offline, without writing, when the
folder has none) or a ``scorecard.json`` file. A figure **regressed** when it moved in its
bad direction by more than its threshold, in percent of the baseline value, *and* by more
than its absolute tolerance (one per-second bucket for times, 1 ms for latencies, ...), so a
baseline of 0 does not make any change a regression. A run that did not recover when the
baseline did, and a verdict that went from pass to something else, are regressions too.
Only the figures in :data:`DEFAULT_GATES` are gated unless ``--max-regression NAME=PCT``
names another; ``--max-regression PCT`` sets the threshold of every gated figure.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.errors import ConfigError, ScoringError
from harness.rundir import SCORECARD_FILE, RunDir

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Figure:
    """A key figure of the scorecard: where it lives, which way is better, its tolerance."""

    name: str
    path: tuple[str, ...]
    higher_is_better: bool
    tolerance: float
    unit: str


#: The key figures, in the order they are printed.
FIGURES: tuple[Figure, ...] = (
    Figure("score", ("score", "value"), True, 1.0, ""),
    Figure("time_to_recover_s", ("recovery", "time_to_recover_s"), False, 1.0, "s"),
    Figure("time_to_detect_s", ("recovery", "time_to_detect_s"), False, 1.0, "s"),
    Figure("capacity_return_s", ("recovery", "capacity_return_s"), False, 1.0, "s"),
    Figure("requests_lost", ("recovery", "requests_lost"), False, 5.0, ""),
    Figure("error_budget_spent", ("error_budget", "spent"), False, 0.01, ""),
    Figure("error_rate", ("run", "error_rate"), False, 0.001, ""),
    Figure("p50_latency_ms", ("run", "p50_latency_ms"), False, 1.0, "ms"),
    Figure("p99_latency_ms", ("run", "p99_latency_ms"), False, 1.0, "ms"),
    Figure("ttft_p95_ms", ("run", "ttft_p95_ms"), False, 1.0, "ms"),
    Figure("tpot_p95_ms", ("run", "tpot_p95_ms"), False, 0.1, "ms"),
    Figure("throughput_rps", ("run", "throughput_rps"), True, 0.5, "rps"),
    Figure("goodput_rps", ("run", "goodput_rps"), True, 0.5, "rps"),
    Figure("idle_gpu_s", ("gpu", "idle_gpu_s"), False, 1.0, "s"),
)

BY_NAME = {f.name: f for f in FIGURES}

#: Figures gated by default, and the default threshold in percent.
DEFAULT_GATES: tuple[str, ...] = (
    "score",
    "time_to_recover_s",
    "p99_latency_ms",
    "error_budget_spent",
    "goodput_rps",
)
DEFAULT_MAX_REGRESSION_PCT = 20.0


def parse_thresholds(items: Sequence[str]) -> dict[str, float]:
    """``--max-regression`` values (``PCT`` or ``NAME=PCT``) to ``{figure: pct}`` of the gated
    figures. Raises :class:`ConfigError` on a bad value or an unknown figure."""
    default = DEFAULT_MAX_REGRESSION_PCT
    named: dict[str, float] = {}
    for item in items:
        name, sep, value = item.rpartition("=")
        try:
            pct = float(value)
        except ValueError:
            raise ConfigError(
                "--max-regression", item, "expected PCT or NAME=PCT with PCT a number"
            ) from None
        if not math.isfinite(pct) or pct < 0:
            raise ConfigError("--max-regression", item, "expected a percentage >= 0")
        if not sep:
            default = pct
        elif name in BY_NAME:
            named[name] = pct
        else:
            raise ConfigError(
                "--max-regression", item, f"unknown figure; expected one of {', '.join(BY_NAME)}"
            )
    gates = {name: default for name in DEFAULT_GATES}
    gates.update(named)
    return gates


def load_scorecard(path: str | Path) -> dict[str, Any]:
    """The scorecard of a run folder or a ``scorecard.json``; scores a folder without one."""
    path = Path(path)
    if path.is_dir():
        card_path = RunDir(path).scorecard
        if not card_path.is_file():
            from harness.scoring.rundir import score_run_dir

            log.info("%s: no %s, scoring it offline", path, SCORECARD_FILE)
            return score_run_dir(path, write=False)
    elif path.is_file():
        card_path = path
    else:
        raise ScoringError(f"{path}: no such run folder or scorecard")
    try:
        card = json.loads(card_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ScoringError(f"{card_path}: unreadable scorecard: {exc}") from exc
    if not isinstance(card, dict) or "run" not in card or "verdict" not in card:
        raise ScoringError(f"{card_path}: not a gpuchaos scorecard")
    return card


def _get(card: Mapping[str, Any], path: Sequence[str]) -> float | None:
    value: Any = card
    for key in path:
        if not isinstance(value, Mapping):
            return None
        value = value.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def compare(
    baseline: Mapping[str, Any], run: Mapping[str, Any], gates: Mapping[str, float]
) -> dict[str, Any]:
    """Rows of ``figure, baseline, run, delta, delta_pct, limit_pct, result`` and whether
    anything regressed. ``result`` is ``ok``, ``REGRESSED``, ``better``, ``n/a`` or ``-``
    (not gated)."""
    rows: list[dict[str, Any]] = []
    regressions: list[str] = []
    for fig in FIGURES:
        base, new = _get(baseline, fig.path), _get(run, fig.path)
        limit = gates.get(fig.name)
        row: dict[str, Any] = {
            "figure": fig.name,
            "unit": fig.unit,
            "baseline": base,
            "run": new,
            "delta": None,
            "delta_pct": None,
            "limit_pct": limit,
            "result": "n/a",
        }
        if fig.name == "time_to_recover_s":
            base_rec = (baseline.get("recovery") or {}).get("recovered")
            new_rec = (run.get("recovery") or {}).get("recovered")
            if base_rec and new_rec is False:
                row["result"] = "REGRESSED" if limit is not None else "-"
                row["note"] = "not recovered"
                if limit is not None:
                    regressions.append(f"{fig.name}: not recovered (baseline {base} s)")
                rows.append(row)
                continue
        if base is not None and new is not None:
            delta = new - base
            worse = -delta if fig.higher_is_better else delta
            pct = 100.0 * delta / abs(base) if base != 0 else None
            row.update(delta=delta, delta_pct=pct)
            if limit is None:
                row["result"] = "-"
            elif worse > fig.tolerance and worse > abs(base) * limit / 100.0:
                row["result"] = "REGRESSED"
                regressions.append(
                    f"{fig.name}: {base:g} -> {new:g}"
                    + (f" ({pct:+.1f}%, limit {limit:g}%)" if pct is not None else "")
                )
            else:
                row["result"] = "better" if worse < -fig.tolerance else "ok"
        rows.append(row)
    verdicts = (str(baseline.get("verdict")), str(run.get("verdict")))
    if verdicts[0] == "pass" and verdicts[1] != "pass":
        regressions.append(f"verdict: {verdicts[0]} -> {verdicts[1]}")
    return {"rows": rows, "verdicts": verdicts, "regressions": regressions}


def _fmt(value: float | None, unit: str = "") -> str:
    if value is None:
        return "n/a"
    text = f"{value:.4g}" if abs(value) < 1 else f"{value:.1f}"
    return f"{text} {unit}".rstrip()


def comparison_table(result: Mapping[str, Any]) -> str:
    """The comparison as plain text: one line per figure, then the verdicts and the outcome."""
    lines = [("figure", "baseline", "run", "delta", "limit", "result")]
    for row in result["rows"]:
        delta = "n/a" if row["delta"] is None else _fmt(row["delta"], row["unit"])
        if row["delta"] is not None and not delta.startswith("-"):
            delta = "+" + delta
        if row["delta_pct"] is not None:
            delta += f" ({row['delta_pct']:+.1f}%)"
        limit = "-" if row["limit_pct"] is None else f"{row['limit_pct']:g}%"
        result_text = row["result"] + (f" ({row['note']})" if row.get("note") else "")
        lines.append(
            (
                row["figure"],
                _fmt(row["baseline"], row["unit"]),
                _fmt(row["run"], row["unit"]),
                delta,
                limit,
                result_text,
            )
        )
    widths = [max(len(r[i]) for r in lines) for i in range(5)]
    out = ["  ".join(r[i].ljust(widths[i]) for i in range(5)) + "  " + r[5] for r in lines]
    base_v, run_v = result["verdicts"]
    out.append("")
    out.append(f"verdict  {base_v} -> {run_v}")
    if result["regressions"]:
        out.append("REGRESSION: " + "; ".join(result["regressions"]))
    else:
        out.append("no regression beyond the thresholds")
    return "\n".join(line.rstrip() for line in out)


def run_compare(baseline: str | Path, run: str | Path, thresholds: Sequence[str]) -> int:
    """Print the comparison; 1 on a regression, 0 otherwise (errors raise, exit 2)."""
    gates = parse_thresholds(thresholds)
    result = compare(load_scorecard(baseline), load_scorecard(run), gates)
    print(comparison_table(result))
    return 1 if result["regressions"] else 0
