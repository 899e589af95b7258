"""The drill score on synthetic timelines whose answers are known by construction."""

from __future__ import annotations

from typing import Any

import pytest

from harness.drill.score import (
    DETECT_POINTS,
    DIAGNOSE_POINTS,
    MITIGATE_POINTS,
    RESOLVE_POINTS,
    WRONG_GUESS_POINTS,
    DamageFigures,
    Truth,
    helped,
    score_drill,
)

TRUTH = Truth(at_s=40.0, diagnosis="replica-hung", target="node-a-0")
BAD = DamageFigures(requests=1000, failed=100, bad_s=50.0, window_s=100.0)  # left alone
BETTER = DamageFigures(requests=1000, failed=10, bad_s=10.0, window_s=100.0)
SAME = DamageFigures(requests=1000, failed=95, bad_s=48.0, window_s=100.0)


def act(t_s: float, action: str, ok: bool = True, **args: Any) -> dict[str, Any]:
    return {"t_s": t_s, "action": action, "args": args, "ok": ok}


def perfect() -> list[dict[str, Any]]:
    return [
        act(45, "ack"),
        act(60, "diagnose", kind="replica-hung", target="node-a-0"),
        act(70, "restart", replica="node-a-0"),
        act(95, "resolve"),
    ]


def test_a_fast_right_and_helpful_response_scores_full_marks() -> None:
    s = score_drill(TRUTH, perfect(), BETTER, BAD, resolved_healthy=True)
    assert s["score"] == s["out_of"] == 100
    assert s["time_to_acknowledge_s"] == 5.0
    assert s["time_to_diagnose_s"] == 20.0
    assert s["time_to_mitigate_s"] == 30.0
    assert s["time_to_resolve_s"] == 55.0
    assert s["wrong_guesses"] == 0
    assert s["mitigation_helped"] is True
    assert s["parts"]["mitigate"]["first"] == "restart"


def test_doing_nothing_scores_nothing() -> None:
    s = score_drill(TRUTH, [], BETTER, BAD)
    assert s["score"] == 0
    assert s["time_to_acknowledge_s"] is None and s["time_to_diagnose_s"] is None


def test_an_acknowledgement_before_the_fault_is_a_false_alarm() -> None:
    s = score_drill(TRUTH, [act(10, "ack")], None, None)
    assert s["parts"]["detect"]["points"] == 0
    assert s["parts"]["detect"]["false_alarms"] == 1
    late = score_drill(TRUTH, [act(10, "ack"), act(50, "ack")], None, None)
    assert late["time_to_acknowledge_s"] == 10.0
    assert late["parts"]["detect"]["points"] == DETECT_POINTS


@pytest.mark.parametrize(
    ("after_s", "points"),
    [(30, DETECT_POINTS), (105, DETECT_POINTS / 2), (180, 0.0), (500, 0.0)],
)
def test_detection_points_fall_linearly_after_30_s(after_s: float, points: float) -> None:
    s = score_drill(TRUTH, [act(TRUTH.at_s + after_s, "ack")], None, None)
    assert s["parts"]["detect"]["points"] == pytest.approx(points, abs=0.05)


def test_wrong_guesses_cost_points_and_are_counted() -> None:
    actions = [
        act(50, "diagnose", kind="node-lost", target="node-a"),
        act(55, "diagnose", kind="replica-hung", target="node-b-0"),  # right kind, wrong target
        act(60, "diagnose", kind="replica-hung", target="node-a-0"),
    ]
    s = score_drill(TRUTH, actions, None, None)
    assert s["wrong_guesses"] == 2
    assert s["parts"]["diagnose"]["tries"] == 3
    assert s["time_to_diagnose_s"] == 20.0
    assert s["parts"]["diagnose"]["points"] == DIAGNOSE_POINTS - 2 * WRONG_GUESS_POINTS


def test_a_slow_diagnosis_keeps_half_and_a_refused_one_does_not_count() -> None:
    slow = score_drill(TRUTH, [act(TRUTH.at_s + 400, "diagnose", kind="replica-hung",
                                   target="node-a-0")], None, None)  # fmt: skip
    assert slow["parts"]["diagnose"]["points"] == DIAGNOSE_POINTS / 2
    refused = score_drill(
        TRUTH, [act(60, "diagnose", ok=False, kind="replica-hung", target="node-a-0")], None, None
    )
    assert refused["time_to_diagnose_s"] is None and refused["parts"]["diagnose"]["points"] == 0


def test_a_mitigation_that_did_not_help_scores_nothing_for_it() -> None:
    s = score_drill(TRUTH, perfect(), SAME, BAD, resolved_healthy=True)
    assert s["mitigation_helped"] is False
    assert s["parts"]["mitigate"]["points"] == 0
    assert s["score"] == DETECT_POINTS + DIAGNOSE_POINTS + RESOLVE_POINTS


def test_without_a_baseline_the_help_is_unknown_and_worth_half() -> None:
    s = score_drill(TRUTH, perfect(), BETTER, None, resolved_healthy=True)
    assert s["mitigation_helped"] is None
    assert s["parts"]["mitigate"]["points"] == MITIGATE_POINTS / 2


def test_declared_resolved_while_still_broken_scores_nothing_for_it() -> None:
    s = score_drill(TRUTH, perfect(), BETTER, BAD, resolved_healthy=False)
    assert s["parts"]["resolve"]["points"] == 0
    assert s["score"] == 100 - RESOLVE_POINTS


def test_helped_compares_the_share_of_bad_seconds() -> None:
    assert helped(BETTER, BAD) is True
    assert helped(SAME, BAD) is False
    assert helped(BETTER, None) is None
    calm = DamageFigures(requests=1000, failed=0, bad_s=0.0, window_s=100.0)
    assert helped(calm, calm) is True  # nothing to help, nothing broken
    assert helped(BETTER, calm) is False
    # a shorter window (the drill declared resolved early) is compared by share, not seconds
    short = DamageFigures(requests=200, failed=5, bad_s=5.0, window_s=20.0)
    assert helped(short, BAD) is True
