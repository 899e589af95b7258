"""The live page's server over real HTTP on 127.0.0.1 (harness.live.LiveServer): tokens,
POST-only actions, the facilitator's data kept from the trainee, the view filter, loopback
binding, and a log endpoint that serves the replicas' own logs and nothing else.

The run folder is the report tests' synthetic run (a fault on node-a from 20 s to 30 s);
the replicas come from a stand-in platform with real log files in the run's logs/.
"""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from harness.errors import ConfigError, HarnessError
from harness.live import LiveServer, is_loopback, parse_bind
from harness.platforms.base import ReplicaInfo
from harness.rundir import RunDir
from tests.unit.test_report_writers import make_run

SECRET = "the-hidden-fault-is-lose_node-on-node-a"


class Replicas:
    """A platform's replicas() as the server sees it."""

    def __init__(self) -> None:
        self.rows = [
            ReplicaInfo("node-a-0", "node-a", 101, 9001, "unready", 1, "cpu"),
            ReplicaInfo("node-b-0", "node-b", 102, 9002, "ready", 0, "cpu"),
        ]

    def replicas(self) -> list[ReplicaInfo]:
        return list(self.rows)


@pytest.fixture
def live(tmp_path: Path) -> Iterator[LiveServer]:
    run_dir = make_run(tmp_path / "run")
    logs = RunDir(run_dir).logs
    logs.mkdir(exist_ok=True)
    for rid in ("node-a-0", "node-b-0"):
        lines = [f"{rid} line {i}" for i in range(30)] + [f"{rid}: {SECRET} says the injector"]
        RunDir(run_dir).replica_log(rid).write_text("\n".join(lines) + "\n")
    (logs / "fault-workers.log").write_text(f"{SECRET}\n")
    server = LiveServer(run_dir, "a live run", source=Replicas())
    server.start()
    try:
        yield server
    finally:
        server.stop()


def request(
    live: LiveServer,
    method: str,
    path: str,
    body: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", live.port, timeout=30)
    try:
        data = json.dumps(body).encode() if body is not None else None
        hdrs = {"Content-Type": "application/json", **(headers or {})}
        conn.request(method, path, body=data, headers=hdrs)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def state(live: LiveServer, token: str, facilitator: bool = False) -> dict[str, Any]:
    prefix = "/facilitator" if facilitator else ""
    status, body = request(live, "GET", f"{prefix}/api/state?token={token}")
    assert status == 200, body
    return json.loads(body)  # type: ignore[no-any-return]


class Recorder:
    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    def __call__(self, body: dict[str, Any]) -> dict[str, Any]:
        self.calls.append(body)
        return {"message": "done", "got": body}


def test_an_action_needs_the_token_and_a_refusal_calls_nothing(live: LiveServer) -> None:
    restart = Recorder()
    live.add_action("restart", restart)
    refused = [
        request(live, "POST", "/api/act/restart", {"replica": "node-a-0"}),  # no token
        request(live, "POST", "/api/act/restart", {"token": "wrong"}),
        request(live, "POST", "/api/act/restart", {}, {"X-Gpuchaos-Token": live.token[:-1]}),
        request(live, "POST", "/api/act/restart", {"token": ""}),
        request(live, "POST", f"/api/act/restart?token={live.token}", {}),  # URL: not enough
    ]
    assert [status for status, _ in refused] == [403] * 5, refused
    assert restart.calls == []
    status, body = request(live, "POST", "/api/act/restart", {"token": live.token, "r": "a"})
    assert status == 200 and json.loads(body)["got"] == {"r": "a"}  # the token taken out
    headers = {"X-Gpuchaos-Token": live.token}
    status, _ = request(live, "POST", "/api/act/restart", {"r": "b"}, headers)
    assert status == 200
    assert restart.calls == [{"r": "a"}, {"r": "b"}]


def test_get_on_an_action_is_refused_and_calls_nothing(live: LiveServer) -> None:
    ack = Recorder()
    live.add_action("ack", ack)
    for path in (f"/api/act/ack?token={live.token}", "/api/act/ack"):
        status, _ = request(live, "GET", path)
        assert status in (403, 405), path
    status, _ = request(live, "GET", f"/api/act/ack?token={live.token}")
    assert status == 405
    for method in ("PUT", "DELETE", "PATCH"):
        status, _ = request(live, method, "/api/act/ack", {"token": live.token})
        assert status == 405, method
    assert ack.calls == []


def test_an_action_that_raises_a_harness_error_is_a_400(live: LiveServer) -> None:
    def refuse(body: dict[str, Any]) -> dict[str, Any]:
        raise HarnessError("no such replica: node-z-0")

    live.add_action("restart", refuse)
    status, body = request(live, "POST", "/api/act/restart", {"token": live.token})
    assert status == 400 and "node-z-0" in json.loads(body)["error"]
    status, _ = request(live, "POST", "/api/act/nothing", {"token": live.token})
    assert status == 404


def test_the_trainee_token_cannot_read_the_facilitators_data(live: LiveServer) -> None:
    inject = Recorder()
    live.add_facilitator_data("scenario", lambda: {"fault": SECRET})
    live.add_action("inject", inject, facilitator=True)
    live.add_panel("truth", lambda: f"<p>{SECRET}</p>", facilitator=True)
    assert live.token != live.facilitator_token
    for path in ("/facilitator/", "/facilitator/api/state", "/facilitator/api/log/node-a-0"):
        for token in (live.token, "", "x"):
            status, body = request(live, "GET", f"{path}?token={token}")
            assert status == 403 and SECRET.encode() not in body, (path, token)
    status, _ = request(live, "POST", "/facilitator/api/act/inject", {"token": live.token})
    assert status == 403 and inject.calls == []
    status, _ = request(live, "POST", "/api/act/inject", {"token": live.facilitator_token})
    assert status == 404 and inject.calls == []  # a facilitator action is not a trainee one
    trainee = state(live, live.token)
    assert "facilitator" not in trainee
    status, page = request(live, "GET", f"/?token={live.token}")
    assert status == 200 and SECRET.encode() not in page
    # the facilitator's token reads it
    assert state(live, live.facilitator_token, facilitator=True)["facilitator"] == {
        "scenario": {"fault": SECRET}
    }
    status, page = request(live, "GET", f"/facilitator/?token={live.facilitator_token}")
    assert status == 200 and SECRET.encode() in page
    status, _ = request(
        live, "POST", "/facilitator/api/act/inject", {"token": live.facilitator_token}
    )
    assert status == 200 and inject.calls == [{}]


def test_every_read_needs_a_token(live: LiveServer) -> None:
    for path in ("/", "/api/state", "/api/log/node-a-0", "/favicon.ico"):
        for query in ("", "?token=", "?token=nope"):
            status, body = request(live, "GET", path + query)
            assert status == 403, (path, query)
            assert b"node-a" not in body


def test_the_view_hides_events_rows_and_log_lines(live: LiveServer) -> None:
    seen = state(live, live.token)
    kinds = {e["kind"] for e in seen["timeline"]}
    assert {"fault_start", "fault_end"} <= kinds  # shown by default, so hiding is a change
    assert any('class="fault"' in c["svg"] for c in seen["charts"])
    assert any(SECRET in line for lines in seen["logs"].values() for line in lines)

    def view(item: dict[str, Any]) -> dict[str, Any] | None:
        if item.get("kind") in ("fault_start", "fault_end"):
            return None
        if item.get("kind") == "log_line" and SECRET in item["line"]:
            return None
        if item.get("kind") == "replica" and item["id"] == "node-b-0":
            return None
        return item

    live.set_view(view)
    hidden = state(live, live.token)
    assert {e["kind"] for e in hidden["timeline"]} == kinds - {"fault_start", "fault_end"}
    assert not any('class="fault"' in c["svg"] for c in hidden["charts"])  # no shaded window
    assert [r["id"] for r in hidden["replicas"]] == ["node-a-0"]
    assert hidden["nodes"] == {"node-a": {"ready": 0, "replicas": 1}}
    assert list(hidden["logs"]) == ["node-a-0"]
    assert len(hidden["logs"]["node-a-0"]) == 20
    text = json.dumps(hidden)
    assert SECRET not in text and "lose_node" not in text
    status, body = request(live, "GET", f"/api/log/node-a-0?token={live.token}&lines=400")
    assert status == 200 and SECRET.encode() not in body and b"node-a-0 line 0" in body
    # the facilitator sees the truth
    truth = state(live, live.facilitator_token, facilitator=True)
    assert {"fault_start", "fault_end"} <= {e["kind"] for e in truth["timeline"]}


@pytest.mark.parametrize(
    "path",
    [
        "/api/log/../experiment.yaml",
        "/api/log/..%2Fexperiment.yaml",
        "/api/log/..%2F..%2F..%2Fetc%2Fpasswd",
        "/api/log/%2e%2e",
        "/api/log/fault-workers",
        "/api/log/node-c-0",
        "/api/log/",
        "/api/log//etc/passwd",
        "/api/log/node-a-0/../../experiment.yaml",
    ],
)
def test_the_log_endpoint_serves_only_the_replicas_own_logs(live: LiveServer, path: str) -> None:
    status, body = request(live, "GET", f"{path}?token={live.token}")
    assert status == 404, (path, body[:200])
    assert SECRET.encode() not in body and b"root:" not in body


def test_the_log_endpoint_serves_a_replicas_log(live: LiveServer) -> None:
    status, body = request(live, "GET", f"/api/log/node-b-0?token={live.token}&lines=5")
    assert status == 200
    assert body.decode().splitlines()[0] == "node-b-0 line 26"


def test_a_foreign_host_header_is_refused_on_loopback(live: LiveServer) -> None:
    status, _ = request(live, "GET", f"/api/state?token={live.token}", headers={"Host": "a.test"})
    assert status == 403
    for host in ("127.0.0.1", f"127.0.0.1:{live.port}", f"localhost:{live.port}"):
        status, _ = request(live, "GET", f"/api/state?token={live.token}", headers={"Host": host})
        assert status == 200, host


def test_responses_forbid_outside_content_and_caching(live: LiveServer) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", live.port, timeout=30)
    conn.request("GET", f"/?token={live.token}")
    resp = conn.getresponse()
    resp.read()
    conn.close()
    assert "default-src 'none'" in resp.getheader("Content-Security-Policy", "")
    assert resp.getheader("Cache-Control") == "no-store"
    assert resp.getheader("Referrer-Policy") == "no-referrer"


def test_a_non_loopback_host_needs_allow_remote(tmp_path: Path) -> None:
    run_dir = make_run(tmp_path / "run")
    for host in ("0.0.0.0", "192.0.2.10", "::", "example.com"):
        with pytest.raises(ConfigError, match="--serve-remote"):
            LiveServer(run_dir, "t", host=host)
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0")
    server = LiveServer(run_dir, "t", host="127.0.0.1")
    try:
        assert server.url.startswith(f"http://127.0.0.1:{server.port}/?token={server.token}")
        assert server.token not in server.facilitator_url
    finally:
        server.stop()


def test_parse_bind() -> None:
    assert parse_bind("8080") == ("127.0.0.1", 8080)
    assert parse_bind("127.0.0.1:0") == ("127.0.0.1", 0)
    assert parse_bind("[::1]:9000") == ("::1", 9000)
    assert parse_bind(":9000") == ("127.0.0.1", 9000)
    for bad in ("abc", "host:", "1:70000", "-1"):
        with pytest.raises(ConfigError, match="--serve"):
            parse_bind(bad)
