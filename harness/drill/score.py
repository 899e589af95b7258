"""The drill score: how fast the trainee noticed, found and fixed the hidden incident.

Pure functions over plain figures (times in seconds after the load started), so every part
can be checked on a synthetic timeline with a known answer. Four parts, 100 points:

- **detect** (25): the first acknowledgement after the injection; full marks within
  ``DETECT_FULL_S``, falling linearly to nothing at ``DETECT_ZERO_S``. An acknowledgement
  before the injection is a false alarm: it does not count.
- **diagnose** (30): the first correct diagnosis (kind and target) after the injection; full
  within ``DIAGNOSE_FULL_S``, falling to half at ``DIAGNOSE_SLOW_S`` and staying there; each
  wrong guess (before or after) costs ``WRONG_GUESS_POINTS``; never below 0.
- **mitigate** (30): the first mitigation that worked (a platform action accepted after the
  injection), when it helped: SLO damage (the share of seconds that missed the SLOs) at
  most ``HELPED_RATIO`` of the same scenario left alone; full within ``MITIGATE_FULL_S``,
  half at ``MITIGATE_SLOW_S``. Without a baseline the help is unknown: half of that.
  Nothing to help (the scenario left alone did no damage): full marks for doing no harm.
- **resolve** (15): declared resolved after the injection while the SLOs held over the
  pack's ``verify_s`` before it. Declared too early, or never: nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from harness.drill.actions import MITIGATIONS

DETECT_POINTS, DIAGNOSE_POINTS, MITIGATE_POINTS, RESOLVE_POINTS = 25.0, 30.0, 30.0, 15.0
DETECT_FULL_S, DETECT_ZERO_S = 30.0, 180.0
DIAGNOSE_FULL_S, DIAGNOSE_SLOW_S = 60.0, 300.0
MITIGATE_FULL_S, MITIGATE_SLOW_S = 90.0, 300.0
WRONG_GUESS_POINTS = 5.0
#: The mitigation helped when the drill's damage is at most this share of the baseline's.
HELPED_RATIO = 0.8


@dataclass(frozen=True)
class Truth:
    """What really happened: the injection time, and the right diagnosis."""

    at_s: float
    diagnosis: str
    target: str


@dataclass(frozen=True)
class DamageFigures:
    """SLO damage from the injection to the end of a run's window."""

    requests: int
    failed: int
    bad_s: float
    window_s: float

    @property
    def bad_share(self) -> float:
        """Share of the window's seconds that missed the SLOs."""
        return self.bad_s / self.window_s if self.window_s > 0 else 0.0


def _decay(t: float, full_s: float, zero_s: float, floor: float = 0.0) -> float:
    """1 up to ``full_s``, then linearly down to ``floor`` at ``zero_s``, then ``floor``."""
    if t <= full_s:
        return 1.0
    if t >= zero_s:
        return floor
    return 1.0 - (1.0 - floor) * (t - full_s) / (zero_s - full_s)


def helped(damage: DamageFigures | None, baseline: DamageFigures | None) -> bool | None:
    """Whether the drill's damage was clearly below the baseline's; None when unknown."""
    if damage is None or baseline is None:
        return None
    if baseline.bad_share <= 0:
        return damage.bad_share <= 0
    return damage.bad_share <= HELPED_RATIO * baseline.bad_share


def score_drill(
    truth: Truth,
    actions: list[dict[str, Any]],
    damage: DamageFigures | None = None,
    baseline: DamageFigures | None = None,
    resolved_healthy: bool | None = None,
) -> dict[str, Any]:
    """The score and its parts. ``actions``: the trainee's records, each with ``t_s``
    (seconds after load start), ``action``, ``args`` and ``ok``. ``resolved_healthy``:
    whether the SLOs held over the verify window before the (first) resolve."""
    at = truth.at_s
    ok = [a for a in actions if a.get("ok")]
    after = [a for a in ok if float(a["t_s"]) >= at]

    acks = [a for a in after if a["action"] == "ack"]
    false_alarms = sum(1 for a in ok if a["action"] == "ack" and float(a["t_s"]) < at)
    tta = float(acks[0]["t_s"]) - at if acks else None
    detect = DETECT_POINTS * _decay(tta, DETECT_FULL_S, DETECT_ZERO_S) if tta is not None else 0.0

    guesses = [a for a in ok if a["action"] == "diagnose"]
    right = [
        a
        for a in guesses
        if (a["args"].get("kind"), a["args"].get("target")) == (truth.diagnosis, truth.target)
        and float(a["t_s"]) >= at
    ]
    wrong = [a for a in guesses if a not in right]
    ttd = float(right[0]["t_s"]) - at if right else None
    diagnose = 0.0
    if ttd is not None:
        diagnose = DIAGNOSE_POINTS * _decay(ttd, DIAGNOSE_FULL_S, DIAGNOSE_SLOW_S, 0.5)
    diagnose = max(0.0, diagnose - WRONG_GUESS_POINTS * len(wrong))

    fixes = [a for a in after if a["action"] in MITIGATIONS]
    ttm = float(fixes[0]["t_s"]) - at if fixes else None
    did_help = helped(damage, baseline)
    mitigate = 0.0
    if ttm is not None:
        speed = _decay(ttm, MITIGATE_FULL_S, MITIGATE_SLOW_S, 0.5)
        share = {True: 1.0, False: 0.0, None: 0.5}[did_help]
        mitigate = MITIGATE_POINTS * speed * share
    elif baseline is not None and baseline.bad_share <= 0:
        mitigate = MITIGATE_POINTS  # nothing needed fixing, and nothing was broken

    resolves = [a for a in after if a["action"] == "resolve"]
    ttr = float(resolves[0]["t_s"]) - at if resolves else None
    resolve = RESOLVE_POINTS if ttr is not None and resolved_healthy else 0.0

    parts = {
        "detect": _part(detect, DETECT_POINTS, tta=tta, false_alarms=false_alarms),
        "diagnose": _part(
            diagnose, DIAGNOSE_POINTS, ttd=ttd, wrong_guesses=len(wrong), tries=len(guesses)
        ),
        "mitigate": _part(
            mitigate,
            MITIGATE_POINTS,
            ttm=ttm,
            first=fixes[0]["action"] if fixes else None,
            helped=did_help,
        ),
        "resolve": _part(resolve, RESOLVE_POINTS, ttr=ttr, healthy=resolved_healthy),
    }
    return {
        "score": round(sum(p["points"] for p in parts.values()), 1),
        "out_of": DETECT_POINTS + DIAGNOSE_POINTS + MITIGATE_POINTS + RESOLVE_POINTS,
        "time_to_acknowledge_s": _r(tta),
        "time_to_diagnose_s": _r(ttd),
        "wrong_guesses": len(wrong),
        "time_to_mitigate_s": _r(ttm),
        "mitigation_helped": did_help,
        "time_to_resolve_s": _r(ttr),
        "parts": parts,
    }


def _r(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def _part(points: float, out_of: float, **facts: Any) -> dict[str, Any]:
    rounded = {k: (_r(v) if isinstance(v, float) else v) for k, v in facts.items()}
    return {"points": round(points, 1), "out_of": out_of, **rounded}
