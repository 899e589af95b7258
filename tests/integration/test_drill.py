"""A short real drill over HTTP: ``gpuchaos drill PACK --seed 1 --facilitator`` with a scripted
trainee.

One drill (a module fixture) runs a hang of node-a-0 (no liveness probe: it stays hung
until someone acts). The scripted trainee reads only what the trainee page serves: it sees
node-a-0 turn Unready on /api/state, acknowledges, diagnoses, restarts node-a-0 through the
page's actions, waits until it is Ready again and declares the incident resolved, which
ends the drill. Every trainee response is kept, and searched for any fault's name. Wrong,
missing and facilitator-only tokens are tried while it runs, and must change nothing.
"""

from __future__ import annotations

import json
import os
import re
import stat
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from harness.drill.view import hidden_words
from harness.timeline import read_timeline
from tests.integration.conftest import ROOT
from tests.support.procs import running

DEFAULT_PACK = ROOT / "experiments" / "drills" / "cpu-basics.yaml"
#: A generous ceiling for a busy machine; every wait also ends when the drill exits.
CEILING_S = 240.0
TARGET = "node-a-0"
FACILITATOR_LINE = re.compile(
    r"facilitator page: http://127\.0\.0\.1:\d+/facilitator/\?token=([\w-]+)"
)


def short_pack(path: Path) -> Path:
    """The default pack's deployment, 90 s of load, one scenario: node-a-0 hung at 12 s."""
    doc = yaml.safe_load(DEFAULT_PACK.read_text(encoding="utf-8"))
    doc["base"]["load"]["shape"]["duration_s"] = 90
    doc["base"]["warmup_s"] = 5
    doc["scenarios"] = [
        {"fault": "hang_replica", "targets": [TARGET], "window_s": [12, 13], "duration_s": 60}
    ]
    doc["red_herrings"] = []
    doc["verify_s"] = 3
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return path


@dataclass
class Drill:
    """What the fixture's drill left: its folder, exit code, output and every response."""

    out: Path
    returncode: int
    output: str
    conn_mode: int
    trainee_bodies: list[tuple[str, str]] = field(default_factory=list)
    refusals: dict[str, int] = field(default_factory=dict)
    facilitator_state: dict[str, Any] = field(default_factory=dict)
    answers: dict[str, dict[str, Any]] = field(default_factory=dict)
    actions_before_refusals: int = 0
    actions_after_refusals: int = 0

    @property
    def drill(self) -> dict[str, Any]:
        return dict(json.loads((self.out / "drill.json").read_text(encoding="utf-8")))


def _wait(proc: Any, cond: Callable[[], Any], what: str, log: Path) -> Any:
    deadline = time.monotonic() + CEILING_S
    while time.monotonic() < deadline:
        got = cond()
        if got:
            return got
        if proc.poll() is not None:
            pytest.fail(f"the drill exited ({proc.returncode}) before {what}:\n{log.read_text()}")
        time.sleep(0.3)
    pytest.fail(f"no {what} within {CEILING_S:.0f} s:\n{log.read_text()[-3000:]}")


def _drill_actions(out: Path) -> int:
    path = out / "timeline.jsonl"
    return (
        sum(1 for e in read_timeline(path) if e["kind"] == "drill_action") if path.is_file() else 0
    )


def _script(proc: Any, out: Path, log: Path, d: Drill) -> None:
    """The trainee (and the intruder) while the drill runs."""
    conn_path = out / "drill-connection.json"
    _wait(proc, conn_path.is_file, "the connection file", log)
    d.conn_mode = stat.S_IMODE(conn_path.stat().st_mode)
    conn = json.loads(conn_path.read_text(encoding="utf-8"))
    base, token = conn["base"], conn["token"]
    fac_url = _wait(
        proc, lambda: FACILITATOR_LINE.search(log.read_text()), "the facilitator URL", log
    )
    fac_token = fac_url.group(1)
    client = httpx.Client(base_url=base, timeout=30)

    def get(path: str, tok: str | None = token) -> httpx.Response:
        r = client.get(path, params={"token": tok} if tok is not None else None)
        if tok == token and r.status_code == 200:
            d.trainee_bodies.append((path, r.text))
        return r

    def act(name: str, body: dict[str, Any], tok: str | None = token) -> httpx.Response:
        headers = {"X-Gpuchaos-Token": tok} if tok is not None else {}
        r = client.post(f"/api/act/{name}", json=body, headers=headers)
        if tok == token:
            d.trainee_bodies.append((f"act {name}", r.text))
        return r

    def state() -> dict[str, Any]:
        r = get("/api/state")
        assert r.status_code == 200, r.text
        return dict(r.json())

    def replica_state() -> str:
        return next((r["state"] for r in state()["replicas"] if r["id"] == TARGET), "")

    assert get("/").status_code == 200
    # the intruder: every refusal must change nothing
    d.actions_before_refusals = _drill_actions(out)
    d.refusals = {
        "state without token": get("/api/state", None).status_code,
        "state wrong token": get("/api/state", "nope").status_code,
        "act without token": act("restart", {"replica": TARGET}, None).status_code,
        "act wrong token": act("restart", {"replica": TARGET}, "x" * 22).status_code,
        "act as GET": get("/api/act/restart").status_code,
        "facilitator state, trainee token": get("/facilitator/api/state").status_code,
        "facilitator page, trainee token": get("/facilitator/").status_code,
        "facilitator act, trainee token": client.post(
            "/facilitator/api/act/inject",
            json={"fault": "lose_node", "target": "node-b"},
            headers={"X-Gpuchaos-Token": token},
        ).status_code,
    }
    d.actions_after_refusals = _drill_actions(out)
    # the trainee: notice, find, fix, verify, resolve
    _wait(proc, lambda: replica_state() not in ("ready", ""), f"{TARGET} not Ready", log)
    d.answers["ack"] = act("ack", {}).json()
    d.answers["diagnose"] = act("diagnose", {"kind": "replica-hung", "target": TARGET}).json()
    d.answers["bad diagnose"] = {"status": act("diagnose", {"kind": "gremlins"}).status_code}
    r = client.get("/facilitator/api/state", params={"token": fac_token})
    d.facilitator_state = r.json() if r.status_code == 200 else {"status": r.status_code}
    d.answers["restart"] = act("restart", {"replica": TARGET}).json()
    _wait(proc, lambda: replica_state() == "ready", f"{TARGET} Ready again", log)
    time.sleep(5)  # the SLOs hold a few seconds before it is declared resolved
    for rid in [r["id"] for r in state()["replicas"]]:
        get(f"/api/log/{rid}")
    d.answers["resolve"] = act("resolve", {}).json()


@pytest.fixture(scope="module")
def drill_run(tmp_path_factory: pytest.TempPathFactory) -> Drill:
    tmp = tmp_path_factory.mktemp("drill")
    out, log = tmp / "run", tmp / "drill.log"
    pack = short_pack(tmp / "short.yaml")
    cmd = [sys.executable, "-m", "harness", "drill", str(pack), "--seed", "1",
           "--facilitator", "--out", str(out)]  # fmt: skip
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    d = Drill(out, -1, "", 0)
    with running(cmd, cwd=ROOT, log_path=log, env=env) as proc:
        _script(proc, out, log, d)
        try:
            proc.wait(timeout=CEILING_S)
        except Exception:
            pytest.fail(f"the drill did not end after resolve:\n{log.read_text()[-3000:]}")
        d.returncode = proc.returncode
    d.output = log.read_text(errors="replace")
    return d


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
