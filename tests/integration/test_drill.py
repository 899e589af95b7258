"""A short real drill over HTTP: ``gpuchaos drill PACK --seed 1 --facilitator`` with a scripted
trainee.

The drill (:mod:`tests.support.drill_session`, shared with ``test_drill_browser.py``) runs a
hang of node-a-0 (no liveness probe: it stays hung until someone acts). The trainee reads
only what the trainee page serves: it sees node-a-0 turn Unready on /api/state,
acknowledges, diagnoses, restarts node-a-0 through the page's actions (in chromium when it is
there, else over HTTP), waits until it is Ready again and declares the incident resolved,
which ends the drill. Every trainee response is kept, and searched for any fault's name.
Wrong, missing and facilitator-only tokens are tried while it runs, and must change nothing.
"""

from __future__ import annotations

import json

import pytest

from harness.drill.view import hidden_words
from harness.timeline import read_timeline
from tests.support.drill_session import TARGET, Drill, shared_drill


@pytest.fixture(scope="module")
def drill_run(tmp_path_factory: pytest.TempPathFactory) -> Drill:
    return shared_drill(tmp_path_factory)


def test_the_drill_ends_when_declared_resolved(drill_run: Drill) -> None:
    assert drill_run.returncode == 0, drill_run.output[-3000:]
    drill = drill_run.drill
    assert drill["ended_by"] == "resolved"
    assert drill["scenario"]["fault"] == "hang_replica" and drill["scenario"]["target"] == TARGET
    assert (drill_run.out / "debrief.html").is_file()
    assert not (drill_run.out / "drill-connection.json").exists()  # removed with the server


def test_the_connection_file_is_the_users_only(drill_run: Drill) -> None:
    assert drill_run.conn_mode == 0o600


def test_no_trainee_response_names_a_fault(drill_run: Drill) -> None:
    paths = {p.split("?")[0] for p, _ in drill_run.trainee_bodies}
    assert {"/", "/api/state", "act ack", "act diagnose", "act restart", "act resolve"} <= paths
    assert any(p.startswith("/api/log/") for p in paths)
    names = hidden_words()
    assert "hang_replica" in names
    for path, body in drill_run.trainee_bodies:
        low = body.lower()
        # the page's script knows the event kinds; the data it is sent must hold none
        words = names if path == "/" else names | {"fault_start", "fault_end", "fault_effect"}
        found = [w for w in words if w.lower() in low]
        assert not found, f"{path} names {found}: {body[:500]}"
    # the trainee page carries the drill's panel: its forms post to the actions
    page = next(body for p, body in drill_run.trainee_bodies if p == "/")
    assert 'data-act="diagnose"' in page and 'data-act="restart"' in page


def test_wrong_or_missing_tokens_are_refused_and_change_nothing(drill_run: Drill) -> None:
    r = drill_run.refusals
    assert r["state without token"] == r["state wrong token"] == 403
    assert r["act without token"] == r["act wrong token"] == 403
    assert r["act as GET"] == 405
    assert r["facilitator state, trainee token"] == 403
    assert r["facilitator page, trainee token"] == 403
    assert r["facilitator act, trainee token"] == 403
    assert drill_run.actions_after_refusals == drill_run.actions_before_refusals
    events = read_timeline(drill_run.out / "timeline.jsonl")
    # the only restart of node-a-0 is the trainee's, after the fault: nothing before it
    kills = [e for e in events if e["kind"] == "replica_exit" and e["target"] == TARGET]
    starts = [e for e in events if e["kind"] == "fault_start"]
    assert starts and all(k["time"] > starts[0]["time"] for k in kills)
    assert not any(e["kind"] == "node_down" for e in events)  # the intruder's inject did not run


def test_a_refused_action_is_recorded_and_answers_400(drill_run: Drill) -> None:
    assert drill_run.answers["bad diagnose"]["status"] == 400
    refused = [a for a in drill_run.drill["trainee"] if not a["ok"]]
    assert [a["action"] for a in refused] == ["diagnose"]


def test_the_facilitator_sees_the_truth(drill_run: Drill) -> None:
    truth = drill_run.facilitator_state.get("facilitator", {}).get("drill", {})
    assert truth.get("scenario", {}).get("fault") == "hang_replica", drill_run.facilitator_state
    assert [a["action"] for a in truth["trainee"]][:1] == ["ack"]


def test_the_debrief_scores_the_scripted_trainee(drill_run: Drill) -> None:
    drill = drill_run.drill
    events = read_timeline(drill_run.out / "timeline.jsonl")
    t0 = json.loads((drill_run.out / "load_t0.json").read_text())["t0"]
    fault_start = next(e["time"] for e in events if e["kind"] == "fault_start") - t0
    acts = {e["details"]["action"]: e["time"] - t0 for e in reversed(events)
            if e["kind"] == "drill_action" and e["details"]["ok"]}  # fmt: skip
    end = next(e["time"] for e in events if e["kind"] == "run_end") - t0
    score = drill["score"]
    assert drill["injected_at_s"] == pytest.approx(fault_start, abs=0.1)
    # time to acknowledge and to diagnose: inside the window the timeline shows
    assert 0 < score["time_to_acknowledge_s"] <= end - fault_start
    assert score["time_to_acknowledge_s"] == pytest.approx(acts["ack"] - fault_start, abs=0.15)
    assert score["time_to_diagnose_s"] == pytest.approx(acts["diagnose"] - fault_start, abs=0.15)
    assert score["time_to_acknowledge_s"] <= score["time_to_diagnose_s"]
    assert score["time_to_mitigate_s"] == pytest.approx(acts["restart"] - fault_start, abs=0.15)
    assert score["wrong_guesses"] == 0  # the refused guess is no guess
    parts = score["parts"]
    assert parts["detect"]["points"] > 0 and parts["diagnose"]["points"] > 0
    assert parts["mitigate"]["first"] == "restart"
    assert parts["mitigate"]["helped"] is None  # no baseline: unknown, half marks at most
    assert 0 < parts["mitigate"]["points"] <= parts["mitigate"]["out_of"] / 2
    assert score["score"] == pytest.approx(sum(p["points"] for p in parts.values()), abs=0.11)
    # the true timeline shows the restart the trainee made
    restarts = [e for e in drill["true_timeline"]
                if e["kind"] == "replica_exit" and e["target"] == TARGET]  # fmt: skip
    assert restarts and restarts[0]["t_s"] >= drill["trainee"][-2]["t_s"] - 0.1
    page = (drill_run.out / "debrief.html").read_text(encoding="utf-8")
    assert "hang_replica" in page and f"{score['score']:g} / 100" in page
    assert "<svg" in page and 'src="http' not in page and "<link" not in page
