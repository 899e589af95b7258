"""The local platform with real replica processes (the reference server, tiny model, CPU)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from harness.config import LocalPlatformSpec, NodeSpec, WorkloadSpec
from harness.errors import PlatformError, WorkloadNotReady
from harness.platforms.local import LocalPlatform
from harness.timeline import Timeline
from tests.support.procs import Processes, gone, wait_for

READY_TIMEOUT_S = 60.0
COMPLETION = {"prompt": "hello there", "max_tokens": 4}


def make_platform(
    tmp: Path, extra_args: list[str] | None = None, ready_timeout_s: float = READY_TIMEOUT_S
) -> tuple[LocalPlatform, Timeline]:
    timeline = Timeline(tmp / "timeline.jsonl")
    spec = LocalPlatformSpec(
        nodes=[NodeSpec(name="node-a", device="cpu"), NodeSpec(name="node-b", device="cpu")],
        restart_backoff_s=0.2,
        probe_interval_s=0.1,
    )
    workload = WorkloadSpec(
        model="tiny",
        max_batch_size=4,
        ready_timeout_s=ready_timeout_s,
        extra_args=extra_args or [],
    )
    return LocalPlatform(spec, workload, timeline, tmp / "logs"), timeline


@pytest.fixture(scope="module")
def started(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LocalPlatform, Timeline]]:
    platform, timeline = make_platform(tmp_path_factory.mktemp("local"))
    platform.start()
    try:
        yield platform, timeline
    finally:
        platform.stop()


def child_pids() -> set[int]:
    return {p.pid for p in psutil.Process().children(recursive=True)}


def events_since(timeline: Timeline, mark: int, kind: str) -> list[dict[str, Any]]:
    return [e for e in timeline.events[mark:] if e["kind"] == kind]


def completion(endpoint: str) -> httpx.Response:
    """One request on a fresh connection."""
    return httpx.post(f"{endpoint}/v1/completions", json=COMPLETION, timeout=30)


def test_start_serves_through_router(started: tuple[LocalPlatform, Timeline]) -> None:
    platform, timeline = started
    infos = platform.replicas()
    assert {r.id for r in infos} == {"node-a-0", "node-b-0"}
    assert all(r.state == "ready" and r.device == "cpu" for r in infos)
    assert all(psutil.pid_exists(pid) for pid in platform.replica_pids().values())
    assert {e["target"] for e in timeline.events if e["kind"] == "replica_ready"} >= {
        "node-a-0",
        "node-b-0",
    }

    seen = set()
    for _ in range(6):
        resp = completion(platform.endpoint)
        assert resp.status_code == 200, resp.text
        assert resp.json()["choices"]
        seen.add(resp.headers["x-replica-id"])
    assert seen == {"node-a-0", "node-b-0"}

    body = {**COMPLETION, "stream": True}
    with httpx.stream("POST", f"{platform.endpoint}/v1/completions", json=body, timeout=30) as r:
        assert r.status_code == 200
        assert r.headers["x-replica-id"] in seen
        text = r.read().decode()
    assert "data:" in text
    assert "[DONE]" in text


def keep_alive_client_on(endpoint: str, replica_id: str) -> httpx.Client:
    """A keep-alive client whose last request was served by ``replica_id``."""
    for _ in range(4):
        client = httpx.Client(timeout=30, limits=httpx.Limits(max_connections=1))
        resp = client.post(f"{endpoint}/v1/completions", json=COMPLETION)
        if resp.headers["x-replica-id"] == replica_id:
            return client
        client.close()
    raise AssertionError(f"round-robin never picked {replica_id}")


def test_node_down_then_up(started: tuple[LocalPlatform, Timeline]) -> None:
    platform, timeline = started
    mark = len(timeline.events)
    old = platform.replica_pids("node-a")
    pinned = keep_alive_client_on(platform.endpoint, "node-a-0")

    pids = platform.node_down("node-a")

    assert pids == list(old.values())
    assert not any(psutil.pid_exists(pid) for pid in pids)
    assert [r.state for r in platform.replicas() if r.node == "node-a"] == ["down"]
    try:  # the same keep-alive connection now gets node-b-0
        resp = pinned.post(f"{platform.endpoint}/v1/completions", json=COMPLETION)
    finally:
        pinned.close()
    assert resp.status_code == 200
    assert resp.headers["x-replica-id"] == "node-b-0"
    for _ in range(4):
        resp = completion(platform.endpoint)
        assert resp.status_code == 200
        assert resp.headers["x-replica-id"] == "node-b-0"
    (down,) = events_since(timeline, mark, "node_down")
    assert down["target"] == "node-a" and down["details"]["pids"] == pids
    exits = events_since(timeline, mark, "replica_exit")
    assert [e["details"]["pid"] for e in exits] == pids
    assert exits[0]["details"]["reason"] == "node_down"
    assert platform.node_down("node-a") == []  # already down: nothing to kill

    platform.node_up("node-a")
    assert platform.wait_ready(READY_TIMEOUT_S)

    new_pid = platform.replica_pids("node-a")["node-a-0"]
    assert new_pid not in pids
    kinds = [e["kind"] for e in timeline.events[mark:] if e["target"] in ("node-a", "node-a-0")]
    assert kinds.index("node_up") < kinds.index("replica_start") < kinds.index("replica_ready")
    (start,) = events_since(timeline, mark, "replica_start")
    assert start["details"]["pid"] == new_pid

    # routing is per request: one keep-alive client reaches the returned replica again
    with httpx.Client(timeout=30, limits=httpx.Limits(max_connections=1)) as client:
        seen = {
            client.post(f"{platform.endpoint}/v1/completions", json=COMPLETION).headers[
                "x-replica-id"
            ]
            for _ in range(6)
        }
    assert seen == {"node-a-0", "node-b-0"}


def test_unknown_node_is_an_error(started: tuple[LocalPlatform, Timeline]) -> None:
    platform, _ = started
    with pytest.raises(PlatformError, match="node-a, node-b"):
        platform.node_down("node-z")


def test_crashed_replica_is_restarted(started: tuple[LocalPlatform, Timeline]) -> None:
    platform, timeline = started
    mark = len(timeline.events)
    old_pid = platform.replica_pids("node-b")["node-b-0"]

    psutil.Process(old_pid).send_signal(signal.SIGKILL)  # from outside the platform

    wait_for(
        lambda: platform.replica_pids().get("node-b-0") not in (None, old_pid),
        READY_TIMEOUT_S,
        "a new node-b-0 process",
    )
    assert platform.wait_ready(READY_TIMEOUT_S)
    (crash,) = events_since(timeline, mark, "replica_exit")
    assert crash["target"] == "node-b-0"
    assert crash["details"]["pid"] == old_pid
    assert crash["details"]["returncode"] == -signal.SIGKILL
    ready = events_since(timeline, mark, "replica_ready")
    assert ready and ready[-1]["time"] > crash["time"]
    assert next(r for r in platform.replicas() if r.id == "node-b-0").restarts == 1


def test_no_ready_replica_gives_503(started: tuple[LocalPlatform, Timeline]) -> None:
    platform, _ = started
    for node in platform.nodes():
        platform.node_down(node)

    t0 = time.monotonic()
    resp = completion(platform.endpoint)
    elapsed = time.monotonic() - t0

    assert resp.status_code == 503
    assert resp.headers["x-replica-id"] == "none"
    assert "no ready replicas" in resp.text
    assert elapsed < 5.0  # answered at once, not after a client timeout
    for node in platform.nodes():
        platform.node_up(node)
    assert platform.wait_ready(READY_TIMEOUT_S)


def test_stop_leaves_no_child(started: tuple[LocalPlatform, Timeline]) -> None:
    platform, _ = started
    pids = set(platform.replica_pids().values())
    assert pids <= child_pids()

    platform.stop()
    platform.stop()  # idempotent

    assert not pids & child_pids()
    assert not any(psutil.pid_exists(pid) for pid in pids)
    assert all(r.pid is None for r in platform.replicas())


def test_workload_that_never_gets_ready(tmp_path: Path) -> None:
    platform, _ = make_platform(tmp_path, extra_args=["--no-such-flag"])
    before = child_pids()
    t0 = time.monotonic()

    with pytest.raises(WorkloadNotReady, match=r"node-[ab]-0") as info:
        platform.start()

    assert time.monotonic() - t0 < READY_TIMEOUT_S / 2
    assert "\n" not in str(info.value)
    assert child_pids() <= before


HARNESS_SCRIPT = """
import json, sys, time
from pathlib import Path
from harness.config import LocalPlatformSpec, NodeSpec, WorkloadSpec
from harness.platforms.local import LocalPlatform
from harness.timeline import Timeline
spec = LocalPlatformSpec(nodes=[NodeSpec(name="node-a", device="cpu")])
workload = WorkloadSpec(model="tiny", ready_timeout_s=60)
platform = LocalPlatform(spec, workload, Timeline(None), Path(sys.argv[1]))
platform.start()
print(json.dumps(list(platform.replica_pids().values())), flush=True)
time.sleep(120)
"""


def test_replicas_die_with_a_killed_harness(tmp_path: Path, processes: Processes) -> None:
    harness = processes.start(
        [sys.executable, "-c", HARNESS_SCRIPT, str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert harness.stdout is not None
        pids = json.loads(harness.stdout.readline())
        assert pids and not any(gone(pid) for pid in pids)
    finally:
        harness.kill()  # SIGKILL: no atexit, no teardown; only PR_SET_PDEATHSIG is left
        harness.wait()
    wait_for(lambda: all(gone(pid) for pid in pids), 5.0, "replicas to die with the harness")
