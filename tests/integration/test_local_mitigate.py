"""On-call's hand on the local platform, with real replica processes: cordon, eject and
readmit, scale a node, move replicas off a node, restart a replica; restore undoes them."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from harness.config import LocalPlatformSpec, NodeSpec, WorkloadSpec
from harness.errors import PlatformError
from harness.platforms.local import LocalPlatform
from harness.platforms.local.mitigate import drain_node, restart_replica, scale_node
from harness.timeline import Timeline
from tests.support.procs import wait_for

READY_TIMEOUT_S = 90.0
COMPLETION = {"prompt": "hello there", "max_tokens": 2}


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalPlatform]:
    tmp = tmp_path_factory.mktemp("mitigate")
    spec = LocalPlatformSpec(
        nodes=[
            NodeSpec(name="node-a", device="cpu", max_replicas=2),
            NodeSpec(name="node-b", device="cpu", max_replicas=2),
        ],
        restart_backoff_s=0.2,
        probe_interval_s=0.1,
    )
    workload = WorkloadSpec(model="tiny", max_batch_size=4, ready_timeout_s=READY_TIMEOUT_S)
    p = LocalPlatform(spec, workload, Timeline(tmp / "timeline.jsonl"), tmp / "logs")
    p.start()
    try:
        yield p
    finally:
        p.stop()


def on(p: LocalPlatform, node: str) -> list[str]:
    return sorted(r.id for r in p.replicas() if r.node == node)


def served_by(p: LocalPlatform, n: int = 8) -> set[str]:
    """The replicas that answered ``n`` requests through the router."""
    seen = set()
    with httpx.Client(timeout=30) as client:
        for _ in range(n):
            r = client.post(f"{p.endpoint}/v1/completions", json=COMPLETION)
            assert r.status_code == 200, r.text
            seen.add(r.headers["x-replica-id"])
    return seen


def kinds(p: LocalPlatform, mark: int, kind: str) -> list[str]:
    return [e["target"] for e in p.timeline.events[mark:] if e["kind"] == kind]


def test_eject_takes_a_replica_out_of_the_router_until_readmitted(platform: LocalPlatform) -> None:
    assert served_by(platform) == {"node-a-0", "node-b-0"}
    mark = len(platform.timeline.events)
    platform.eject("node-a-0")
    assert served_by(platform) == {"node-b-0"}
    assert {r.id: r.state for r in platform.replicas()}["node-a-0"] == "ready"  # still running
    platform.eject("node-a-0", False)
    wait_for(lambda: served_by(platform) == {"node-a-0", "node-b-0"}, 10, "node-a-0 back")
    assert kinds(platform, mark, "replica_ejected") == ["node-a-0"]
    assert kinds(platform, mark, "replica_returned") == ["node-a-0"]
    with pytest.raises(PlatformError, match="unknown replica"):
        platform.eject("node-z-9")


def test_scale_and_cordon(platform: LocalPlatform) -> None:
    out = scale_node(platform, "node-b", 5)  # room for 2
    assert out["added"] == ["node-b-1"] and out["replicas"] == 2
    assert platform.wait_ready(READY_TIMEOUT_S)
    assert platform.cordon("node-b") is True and platform.cordon("node-b") is False
    assert platform.cordoned() == ["node-b"]
    assert platform.add_replica("node-b") is None  # nothing new placed on a cordoned node
    out = scale_node(platform, "node-b", 1)
    assert out["removed"] == ["node-b-1"] and out["replicas"] == 1
    assert platform.cordon("node-b", False) is True
    assert platform.cordoned() == []
    assert on(platform, "node-b") == ["node-b-0"]


def test_drain_moves_replicas_off_a_node(platform: LocalPlatform) -> None:
    out = drain_node(platform, "node-a")
    assert out["cordoned"] and out["stayed"] == []
    new = out["moved"]["node-a-0"]
    assert on(platform, "node-a") == []
    assert new in on(platform, "node-b")
    assert platform.wait_ready(READY_TIMEOUT_S)
    assert served_by(platform) == {"node-b-0", new}
    # a game day's reset puts it all back: uncordoned, the declared replicas, the router
    platform.eject("node-b-0")
    done = platform.restore()
    assert "uncordoned node-a" in done and "node-b-0 back in the router" in done
    assert on(platform, "node-a") == ["node-a-0"]
    scale_node(platform, "node-b", 1)
    assert platform.wait_ready(READY_TIMEOUT_S)


def test_restart_replica_kills_it_and_the_supervisor_starts_it_again(
    platform: LocalPlatform,
) -> None:
    before = platform.replica_pids()["node-a-0"]
    mark = len(platform.timeline.events)
    out = restart_replica(platform, "node-a-0")
    assert out["killed_pid"] == before and out["node"] == "node-a"
    wait_for(lambda: platform.replica_pids().get("node-a-0") not in (None, before), 30, "a new pid")
    assert platform.wait_ready(READY_TIMEOUT_S)
    assert kinds(platform, mark, "replica_exit") == ["node-a-0"]
    time.sleep(0.1)
    assert "node-a-0" in kinds(platform, mark, "replica_ready")
