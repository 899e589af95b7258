"""Live progress: the incremental tail of requests.csv, the figures, both views."""

from __future__ import annotations

import io
import logging
from pathlib import Path
from typing import Any

import pytest

from harness.platforms.base import ReplicaInfo
from harness.progress import LiveProgress, RequestTail
from harness.records import RecordWriter
from harness.timeline import Timeline


class FakePlatform:
    def __init__(self) -> None:
        self.state = "ready"

    def nodes(self) -> list[str]:
        return ["node-a", "node-b"]

    def replicas(self) -> list[ReplicaInfo]:
        return [
            ReplicaInfo("node-a-0", "node-a", 1, 1, self.state, 0, "cpu"),  # type: ignore[arg-type]
            ReplicaInfo("node-b-0", "node-b", 2, 2, "ready", 0, "cpu"),
        ]


class FakeTelemetry:
    def __init__(self, latest: dict[tuple[str, str], float]) -> None:
        self.latest = latest


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _record(end: float, latency: float, status: int = 200, error: str = "") -> dict[str, Any]:
    return {
        "start": end - latency / 1000,
        "end": end,
        "latency_ms": latency,
        "ttft_ms": 5,
        "output_tokens": 16,
        "status": status,
        "error": error,
        "replica": "node-a-0",
        "phase": "baseline",
    }


def test_tail_reads_only_new_complete_lines(tmp_path: Path) -> None:
    path = tmp_path / "requests.csv"
    tail = RequestTail(path, window_s=10)
    assert tail.poll() == 0  # no file yet
    w = RecordWriter(path)
    for i in range(100):
        w.write(_record(100.0 + i * 0.05, 10.0 + i))
    assert tail.poll() == 100
    with open(path, "a") as fh:  # a record half written
        fh.write("105.0,105.1,100.0,5,16,")
        fh.flush()
        assert tail.poll() == 0
        fh.write("500,,node-b-0,spike\n")
    assert tail.poll() == 1
    assert tail.total == 101 and tail.failed == 1
    w.close()


def test_window_figures(tmp_path: Path) -> None:
    path = tmp_path / "requests.csv"
    w = RecordWriter(path)
    for i in range(90):
        w.write(_record(100.0 + i * 0.1, 20.0))
    for i in range(10):
        w.write(_record(109.0 + i * 0.1, 30000.0, status=0, error="timeout"))
    w.close()
    tail = RequestTail(path, window_s=10)
    tail.poll()
    stats = tail.stats(now=110.0)
    assert stats.requests == 100 and stats.rps == 10.0
    assert stats.error_rate == pytest.approx(0.1)
    assert stats.p99_ms == pytest.approx(30000.0)
    later = tail.stats(now=125.0)  # everything left the window
    assert later.requests == 0 and later.p99_ms is None and later.total == 100


def _progress(tmp_path: Path, clock: Clock, **kw: Any) -> LiveProgress:
    return LiveProgress(
        name="exp",
        requests_path=tmp_path / "requests.csv",
        platform=FakePlatform(),
        telemetry=kw.pop("telemetry", FakeTelemetry({})),
        duration_s=90.0,
        clock=clock,
        **kw,
    )


def test_events_phase_times_and_faults(tmp_path: Path) -> None:
    clock = Clock(1000.0)
    p = _progress(tmp_path, clock, interactive=False)
    timeline = Timeline(None)
    timeline.subscribe(p.on_event)
    p.update()
    assert p.phase == "deploying" and p.times()[1] is None
    timeline.emit("load_start", "locust", {"duration_s": 60}, at=1000.0)
    timeline.emit("phase", "load", {"phase": "spike"}, at=1020.0)
    timeline.emit("fault_start", "node-a", {"fault": "lose_node"}, at=1025.0)
    clock.now = 1030.0
    p.update()
    assert p.phase == "spike" and p.times() == (30.0, 30.0)
    assert p.active_faults == {"node-a": 1025.0}
    assert "+  25.0 s  fault_start node-a (lose_node)" in p.events
    timeline.emit("fault_end", "node-a", at=1045.0)
    p.update()
    assert p.active_faults == {}


def test_plain_lines_for_ci(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock(1000.0)
    tel = FakeTelemetry({("system", "cpu_pct"): 55.0, ("node-a-0", "rss_mib"): 310.0})
    p = _progress(tmp_path, clock, interactive=False, telemetry=tel)
    w = RecordWriter(tmp_path / "requests.csv")
    for i in range(50):
        w.write(_record(995.0 + i * 0.1, 40.0))
    w.close()
    with caplog.at_level(logging.INFO, logger="harness.progress"):
        p.on_event({"time": 990.0, "kind": "load_start", "target": "locust", "details": {}})
        p.on_event({"time": 999.0, "kind": "fault_start", "target": "node-a", "details": {}})
        line = p.summary_line(p.update())
    assert "fault_start node-a" in caplog.text  # a fault is logged as it happens
    assert "5.0 req/s" in line and "p99 40 ms" in line and "errors 0.00%" in line
    assert "node-a=1/1 node-b=1/1" in line and "faults node-a" in line
    assert "CPU 55%" in line and "node-a-0 RSS 310 MiB" in line


def test_gpu_memory_per_gpu(tmp_path: Path) -> None:
    tel = FakeTelemetry(
        {
            ("gpu0", "memory_used_mib"): 40960.0,
            ("gpu0", "memory_total_mib"): 81920.0,
            ("gpu0", "utilization_pct"): 73.0,
        }
    )
    p = _progress(tmp_path, Clock(0.0), interactive=False, telemetry=tel)
    assert p.devices() == ["gpu0 40.0/80.0 GiB 73%"]


def test_rich_panel_renders(tmp_path: Path) -> None:
    from rich.console import Console

    clock = Clock(1000.0)
    p = _progress(tmp_path, clock, interactive=True)
    p.on_event({"time": 990.0, "kind": "load_start", "target": "locust", "details": {}})
    p.on_event({"time": 995.0, "kind": "fault_start", "target": "node-a", "details": {}})
    p._platform.state = "exited"  # type: ignore[attr-defined]
    buf = io.StringIO()
    Console(file=buf, width=120, color_system=None).print(p.render(p.update()))
    text = buf.getvalue()
    for part in (
        "gpuchaos exp",
        "phase load",
        "elapsed 0:10",
        "remaining 1:20",
        "FAULT node-a",
        "node-a 0/1",
        "node-b 1/1",
        "fault_start node-a",
    ):
        assert part in text, part


def test_never_crashes_the_run(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    class Broken(FakePlatform):
        def replicas(self) -> list[ReplicaInfo]:
            raise RuntimeError("platform gone")

    p = LiveProgress(
        name="x",
        requests_path=tmp_path / "nope" / "requests.csv",
        platform=Broken(),
        telemetry=None,
        duration_s=None,
        interactive=False,
        refresh_s=0.01,
        summary_every_s=0.01,
    )
    p.on_event({"kind": "phase", "details": "not a dict"})  # malformed: ignored
    p.on_event({"time": "bad", "kind": "fault_start"})
    with caplog.at_level(logging.DEBUG, logger="harness.progress"):
        p.start()
        import time

        deadline = time.monotonic() + 5
        while p.updates < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        p.stop()
    assert p.updates >= 3
    assert "progress:" in caplog.text
