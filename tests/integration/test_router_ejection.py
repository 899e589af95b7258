"""Outlier ejection in the local router, over real HTTP: without it a replica that fails
fast draws most of the traffic under least-in-flight routing (a black hole); with it that
replica is taken out of the rotation, comes back, and is ejected again for longer."""

from __future__ import annotations

import collections
import http.client
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from harness.config import OutlierEjectionSpec
from harness.platforms.local.router import Router
from harness.timeline import Timeline


def _backend(name: str, status: int, delay_s: float) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            time.sleep(delay_s)
            body = f"{name}\n".encode()
            self.send_response(status)
            self.send_header("x-replica-id", name)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture
def backends() -> Iterator[dict[str, int]]:
    """``bad`` answers 503 at once (out of memory), ``good`` 200 after 100 ms of work."""
    servers = {"bad": _backend("bad", 503, 0.0), "good": _backend("good", 200, 0.1)}
    try:
        yield {name: s.server_address[1] for name, s in servers.items()}
    finally:
        for s in servers.values():
            s.shutdown()
            s.server_close()


def _drive(port: int, seconds: float, clients: int = 8) -> collections.Counter[str]:
    """Closed-loop keep-alive clients; which replica answered each request."""
    counts: collections.Counter[str] = collections.Counter()
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def client() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        while time.monotonic() < deadline:
            conn.request("GET", "/")
            response = conn.getresponse()
            response.read()
            with lock:
                counts[response.getheader("x-replica-id") or "?"] += 1
        conn.close()

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return counts


def _through_router(
    backends: dict[str, int],
    ejection: OutlierEjectionSpec | None,
    seconds: float,
    clients: int = 8,
) -> tuple[collections.Counter[str], Timeline]:
    """Drive a router in front of ``backends``; who answered, and the router's events."""
    timeline = Timeline(None)
    router = Router("127.0.0.1", ejection, timeline.emit)
    router.start()
    try:
        router.set_backends(backends)
        time.sleep(0.1)  # set_backends runs on the router's loop
        return _drive(router.port, seconds, clients), timeline
    finally:
        router.stop()


def test_without_ejection_a_fast_failing_replica_is_a_black_hole(
    backends: dict[str, int],
) -> None:
    counts, timeline = _through_router(backends, None, 1.5)
    # more than half of the traffic goes to the replica that serves none of it
    assert counts["bad"] > 1.5 * counts["good"] > 0, counts
    assert not [e for e in timeline.events if e["kind"] == "replica_ejected"]


def test_ejection_takes_the_failing_replica_out_and_back(backends: dict[str, int]) -> None:
    policy = OutlierEjectionSpec(consecutive_5xx=3, base_ejection_s=0.4)
    counts, timeline = _through_router(backends, policy, 2.0)
    assert counts["good"] > 5 * counts["bad"] > 0, counts
    ejected = [e for e in timeline.events if e["kind"] == "replica_ejected"]
    returned = [e for e in timeline.events if e["kind"] == "replica_returned"]
    assert {e["target"] for e in ejected} == {"bad"}
    # each ejection lasts longer than the one before: 0.4 s, 0.8 s, ...
    assert [e["details"]["for_s"] for e in ejected][:2] == [0.4, 0.8]
    assert returned and returned[0]["target"] == "bad"
    # out for its 0.4 s, never less; back before its second ejection (a bound the run itself
    # sets: a wall-clock one fails when a busy machine runs the router's timer late)
    assert returned[0]["time"] - ejected[0]["time"] >= 0.4 - 0.01
    assert returned[0]["time"] <= ejected[1]["time"]


def test_the_last_replica_and_the_limit_are_never_ejected(backends: dict[str, int]) -> None:
    policy = OutlierEjectionSpec(consecutive_5xx=2, base_ejection_s=5, max_ejection_percent=10)
    counts, timeline = _through_router({"bad": backends["bad"]}, policy, 0.3, clients=2)
    assert counts["bad"] > 10 and not timeline.events  # alone: never out of the rotation

    second = _backend("bad-2", 503, 0.0)
    try:
        both = {"bad": backends["bad"], "bad-2": second.server_address[1]}
        both["good"] = backends["good"]
        _counts, timeline = _through_router(both, policy, 0.5, clients=4)
    finally:
        second.shutdown()
        second.server_close()
    # 10% of three replicas rounds to none, but one replica may always be ejected: only one is
    ejected = {e["target"] for e in timeline.events if e["kind"] == "replica_ejected"}
    assert len(ejected) == 1 and ejected <= {"bad", "bad-2"}


def test_a_return_is_reported_before_the_next_ejection_even_when_the_timer_is_late() -> None:
    """The busy-machine race from CI: the ejection ends, traffic reaches the replica and ejects
    it again before the return timer has run. The timeline must still read ejected, returned,
    ejected (a return missing from it would make the outage look 1.2 s long instead of 0.4)."""
    import asyncio

    from harness.platforms.local.router import _RouterCore

    events: list[tuple[str, str]] = []
    core = _RouterCore(
        "127.0.0.1",
        OutlierEjectionSpec(consecutive_5xx=2, base_ejection_s=0.05),
        lambda kind, rid, _details: events.append((kind, rid)),
    )

    async def scenario() -> None:
        core.set_backends([("bad", 1), ("good", 2)])
        bad = core.backends["bad"]
        core.answered(bad, 503)
        core.answered(bad, 503)
        time.sleep(0.1)  # blocks the loop: the return timer cannot run yet
        assert core.pick(exclude=core.backends["good"]) is bad
        core.answered(bad, 503)
        core.answered(bad, 503)
        await asyncio.sleep(0.3)  # now both timers run; neither reports a second return early

    asyncio.run(scenario())
    assert events == [
        ("replica_ejected", "bad"),
        ("replica_returned", "bad"),
        ("replica_ejected", "bad"),
        ("replica_returned", "bad"),
    ]
