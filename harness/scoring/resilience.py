"""The 0-100 resilience score, and the Krkn-style and LitmusChaos-style scores beside it.

gpuchaos score = 100 x sum(W_c x S_c) / sum(W_c) over the components that apply:

- ``slos`` (W = 0.5): weighted share of SLOs met, ``sum(w_i x passed_i) / sum(w_i)`` with
  ``w_i`` from ``slos.weights`` (default 1). Applies when an SLO is set.
- ``recovery`` (W = 0.25): 1 when the fault breached nothing; ``clamp(1 - ttr / (2 R), 0, 1)``
  when the service recovered after ``ttr`` seconds, ``R`` being the ``recovery_s`` objective
  (60 s when unset), so recovering exactly at the objective scores 0.5; 0 when it never
  recovered. Applies when a fault was injected.
- ``error_budget`` (W = 0.25): ``clamp(1 - spent, 0, 1)``, ``spent`` the share of the error
  budget used; with a zero budget 1 without failures, else 0. Applies when an availability
  or error-rate objective is set and requests were recorded.

No requests at all scores 0. With no component applying the score is null.

- **Krkn style**: 100 x the weighted share of SLOs passed (Krkn's resilience score: each SLO
  check carries a weight, the score is the weight passed over the weight checked).
- **LitmusChaos style**: 100 x the share of Chaos Toolkit probes that succeeded (steady-state
  probes before and after, and the method's probes) in ``journal.json``; LitmusChaos's
  resilience score is the weighted mean of each experiment's probe success percentage, and a
  run is one experiment. Null without a journal or without probes.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from harness.config import SLOSpec

log = logging.getLogger(__name__)

#: Component weights of the score.
COMPONENT_WEIGHTS: dict[str, float] = {"slos": 0.5, "recovery": 0.25, "error_budget": 0.25}

#: Recovery reference when no ``recovery_s`` objective is set, seconds.
DEFAULT_RECOVERY_REF_S = 60.0

FORMULA = (
    "100 x (0.5 S_slos + 0.25 S_recovery + 0.25 S_budget) / (sum of the weights that apply); "
    "S_slos = weighted share of SLOs met; S_recovery = 1 - ttr / (2 x recovery_s) clamped to "
    "[0, 1] (1 without a breach, 0 if not recovered); S_budget = 1 - error budget spent, "
    "clamped to [0, 1]"
)


def _clamp(value: float) -> float:
    return min(1.0, max(0.0, value))


def slo_share(entries: Sequence[Mapping[str, Any]], slos: SLOSpec) -> float | None:
    """Weighted share of SLOs passed, 0-1; None when no SLO (or only zero weights) is set."""
    total = passed = 0.0
    for entry in entries:
        weight = float(slos.weights.get(str(entry["name"]), 1.0))
        total += weight
        passed += weight if entry.get("passed") else 0.0
    return passed / total if total > 0 else None


def resilience_score(
    entries: Sequence[Mapping[str, Any]],
    recovery: Mapping[str, Any],
    budget: Mapping[str, Any],
    slos: SLOSpec,
    requests: int,
) -> dict[str, Any]:
    """The score block of the scorecard (see module)."""
    components: dict[str, float | None] = {
        "slos": slo_share(entries, slos),
        "recovery": None,
        "error_budget": None,
    }
    if recovery.get("fault"):
        ttr = recovery.get("time_to_recover_s")
        if not recovery.get("recovered") or ttr is None:
            components["recovery"] = 0.0
        elif not recovery.get("breached"):
            components["recovery"] = 1.0
        else:
            ref = slos.recovery_s if slos.recovery_s is not None else DEFAULT_RECOVERY_REF_S
            components["recovery"] = _clamp(1.0 - float(ttr) / (2.0 * ref))
    if budget.get("objective") is not None and int(budget.get("requests") or 0) > 0:
        spent = budget.get("spent")
        components["error_budget"] = 0.0 if spent is None else _clamp(1.0 - float(spent))
    applied = {k: v for k, v in components.items() if v is not None}
    note: str | None = None
    value: float | None
    if requests == 0:
        value, note = 0.0, "no requests recorded"
    elif not applied:
        value, note = None, "no SLO, fault or error budget to score"
    else:
        weight = sum(COMPONENT_WEIGHTS[k] for k in applied)
        value = round(100.0 * sum(COMPONENT_WEIGHTS[k] * v for k, v in applied.items()) / weight, 1)
    share = components["slos"]
    result: dict[str, Any] = {
        "value": value,
        "formula": FORMULA,
        "components": components,
        "weights": dict(COMPONENT_WEIGHTS),
        "krkn_style": None if share is None else round(100.0 * share, 1),
        "litmus_style": None,
    }
    if note:
        result["note"] = note
    log.debug("score %s from %s", value, components)
    return result


def litmus_style(journal: Mapping[str, Any] | None) -> float | None:
    """100 x share of probes that succeeded in a Chaos Toolkit journal; None without any."""
    if not journal:
        return None
    passed = total = 0
    steady = journal.get("steady_states") or {}
    for key in ("before", "after"):
        part = steady.get(key) or {}
        for probe in part.get("probes") or []:
            total += 1
            passed += bool(probe.get("tolerance_met"))
    for run in journal.get("run") or []:
        if (run.get("activity") or {}).get("type") == "probe":
            total += 1
            passed += run.get("status") == "succeeded"
    return round(100.0 * passed / total, 1) if total else None
