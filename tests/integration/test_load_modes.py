"""Load modes as real Locust runs: open loop holds its rate against a server slower than the
rate (queueing recorded on the client), every scheduled arrival is one record even when the
generator is starved, and the KServe v2 user against the classifier.

Timing bounds come from what the run recorded (its t0, its schedule, its records), never
from how fast this machine happens to be."""

from __future__ import annotations

import csv
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from harness.config import LoadSpec, StepShape
from harness.load import LocustRunner
from harness.load.sampling import schedule
from harness.rundir import REQUESTS_FILE
from harness.timeline import Timeline
from tests.integration.conftest import LLMServer, run_llm_server

NOT_SENT = "not sent: generator behind"


@dataclass
class Run:
    rows: list[dict[str, str]]
    t0: float
    end: dict[str, Any]  # the load_end event's details


def _run(spec: LoadSpec, url: str, run_dir: Path, t0: float | None = None) -> Run:
    run_dir.mkdir(parents=True, exist_ok=True)
    timeline = Timeline(run_dir / "timeline.jsonl")
    runner = LocustRunner(spec, url, run_dir, timeline, t0=t0)
    try:
        runner.start()
        assert runner.wait(timeout=60), "Locust did not end with the shape"
    finally:
        runner.stop()
    assert runner.returncode == 0
    with open(run_dir / REQUESTS_FILE, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    (end,) = [e["details"] for e in timeline.events if e["kind"] == "load_end"]
    return Run(rows, runner.t0, end)


def _every_arrival_is_one_record(spec: LoadSpec, run: Run) -> None:
    """One row per arrival of the schedule, each starting at its scheduled time."""
    scheduled = [run.t0 + offset for offset in schedule(spec)]
    assert len(run.rows) == len(scheduled) == run.end["scheduled"] == run.end["records"]
    starts = sorted(float(r["start"]) for r in run.rows)
    assert starts == pytest.approx(scheduled, abs=2e-6)
    assert all(r["lag_ms"] for r in run.rows), "an open-loop record without its lag"
    for r in run.rows:
        waited = float(r["lag_ms"]) + float(r["queue_ms"] or 0.0)
        assert float(r["latency_ms"]) >= waited - 1.0, r  # latency counts lag and queue
        if r["error"] == NOT_SENT:
            assert r["status"] == "0" and r["queue_ms"] == "", r
            assert float(r["latency_ms"]) == pytest.approx(float(r["lag_ms"]), abs=0.01)


@pytest.fixture(scope="module")
def slow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LLMServer]:
    """Batch 1: every request waits for the one before it, so latency grows with the load."""
    args = ("--max-batch-size", "1", "--max-queue-size", "1000")
    with run_llm_server(tmp_path_factory.mktemp("slow"), *args) as server:
        yield server


def test_open_loop_holds_the_rate_against_a_slow_server(
    slow_server: LLMServer, tmp_path: Path
) -> None:
    shape = StepShape(kind="step", duration_s=6, start=40, increment=0, step_s=6)
    spec = LoadSpec(
        shape=shape,
        mode="open",
        arrivals="uniform",
        max_in_flight=4,
        user="openai",
        max_tokens=40,
        request_timeout_s=30,
    )
    run = _run(spec, slow_server.url, tmp_path)
    rows = run.rows
    # every scheduled arrival is a record, sent or not: 40/s for 6 s, the span of the schedule
    assert len(rows) == 240
    _every_arrival_is_one_record(spec, run)
    dispatched = [r for r in rows if r["error"] != NOT_SENT]
    queued = [float(r["queue_ms"]) for r in rows if r["queue_ms"]]
    assert len(queued) == len(dispatched)
    # four in flight cannot keep up: later arrivals waited in the client queue
    assert max(queued) > 100.0
    shape_end = run.t0 + shape.duration_s
    cut_off = []
    for r in rows:
        assert float(r["latency_ms"]) >= float(r["queue_ms"] or 0.0) - 1.0
        if r["status"] == "200" and not r["error"]:
            assert int(r["output_tokens"]) == 40, r  # an answer counts its tokens
        elif r["status"] == "200":
            cut_off.append(r)
    # a 200 that failed was one in flight when the load stopped: its answer was cut off
    # after the shape's end (a busy machine can leave some), never more than were in flight
    assert len(cut_off) <= spec.max_in_flight, cut_off
    for r in cut_off:
        assert float(r["end"]) >= shape_end - 0.5, r


def test_open_loop_at_40_per_second_for_10_s_records_400(
    llm_server: LLMServer, tmp_path: Path
) -> None:
    shape = StepShape(kind="step", duration_s=10, start=40, increment=0, step_s=10)
    spec = LoadSpec(shape=shape, mode="open", arrivals="uniform", user="openai", max_tokens=4)
    run = _run(spec, llm_server.url, tmp_path)
    assert len(run.rows) == 400
    _every_arrival_is_one_record(spec, run)
    assert any(r["status"] == "200" for r in run.rows)


@pytest.mark.parametrize("late_s", [2.5, 30.0], ids=["first-arrivals-overdue", "schedule-over"])
def test_a_starved_generator_still_records_every_arrival(
    llm_server: LLMServer, tmp_path: Path, late_s: float
) -> None:
    """Locust comes up with its first arrivals long overdue (t0 pinned before its launch,
    as a Kubernetes Job started late would): those it can no longer send within
    request_timeout_s are records too, ``not sent: generator behind`` with their lag."""
    shape = StepShape(kind="step", duration_s=8, start=20, increment=0, step_s=8)
    timeout_s = 1.0
    spec = LoadSpec(
        shape=shape,
        mode="open",
        arrivals="uniform",
        user="openai",
        max_tokens=4,
        request_timeout_s=timeout_s,
    )
    run = _run(spec, llm_server.url, tmp_path, t0=time.time() - late_s)
    rows = sorted(run.rows, key=lambda r: float(r["start"]))
    _every_arrival_is_one_record(spec, run)
    behind = [r for r in rows if r["error"] == NOT_SENT]
    sent = [r for r in rows if r["error"] != NOT_SENT]
    # the first arrival was due before Locust was even launched
    assert rows[0]["error"] == NOT_SENT
    shape_end = run.t0 + shape.duration_s
    for r in behind:  # too late to send, or the shape was over before Locust reached it
        assert float(r["lag_ms"]) > timeout_s * 1000.0 or float(r["end"]) >= shape_end, r
    assert all(float(r["lag_ms"]) <= timeout_s * 1000.0 + 1.0 for r in sent)
    if late_s > shape.duration_s:  # Locust came up after the schedule ended: nothing sent
        assert not sent
        return
    # arrivals due well after the dispatcher came up (when it gave up on the first ones)
    # were sent; those it reached within their time-out were sent late, with their lag
    came_up = float(behind[0]["end"])
    later = [r for r in rows if float(r["start"]) > came_up + 0.5]
    if later:
        assert any(r in sent for r in later)


def test_kserve_v2_user_against_the_classifier(tmp_path: Path) -> None:
    with run_llm_server(tmp_path, "--max-batch-size", "8", module="workloads.classifier") as cls:
        shape = StepShape(kind="step", duration_s=3, start=2, increment=0, step_s=3)
        spec = LoadSpec(shape=shape, user="kserve-v2", wait_s=0.05, request_timeout_s=10)
        rows = _run(spec, cls.url, tmp_path / "run").rows
    assert rows
    for r in rows:
        assert r["status"] == "200" and r["error"] == "", r
        assert r["replica"] == cls.replica_id
        assert r["phase"] == "step-0"
