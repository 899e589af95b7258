"""Load modes as real Locust runs: open loop holds its rate against a server slower than the
rate (queueing recorded on the client), and the KServe v2 user against the classifier."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.config import LoadSpec, StepShape
from harness.load import LocustRunner
from harness.rundir import REQUESTS_FILE
from harness.timeline import Timeline
from tests.integration.conftest import LLMServer, run_llm_server


def _run(spec: LoadSpec, url: str, run_dir: Path) -> list[dict[str, str]]:
    run_dir.mkdir(parents=True, exist_ok=True)
    runner = LocustRunner(spec, url, run_dir, Timeline(run_dir / "timeline.jsonl"))
    try:
        runner.start()
        assert runner.wait(timeout=60), "Locust did not end with the shape"
    finally:
        runner.stop()
    assert runner.returncode == 0
    with open(run_dir / REQUESTS_FILE, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


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
    rows = _run(spec, slow_server.url, tmp_path)
    starts = sorted(float(r["start"]) for r in rows)
    # every scheduled arrival is a record, sent or not: 40/s for 6 s
    assert 200 <= len(rows) <= 241, len(rows)  # a busy CI machine may lose a few at the edges
    assert starts[-1] - starts[0] == pytest.approx(6.0, abs=0.5)
    queued = [float(r["queue_ms"]) for r in rows if r["queue_ms"]]
    assert len(queued) == len(rows)
    # four in flight cannot keep up: later arrivals waited in the client queue
    assert max(queued) > 100.0
    for r in rows:
        assert float(r["latency_ms"]) >= float(r["queue_ms"]) - 1.0
        if r["status"] == "200":
            assert int(r["output_tokens"]) == 40


def test_kserve_v2_user_against_the_classifier(tmp_path: Path) -> None:
    with run_llm_server(tmp_path, "--max-batch-size", "8", module="workloads.classifier") as cls:
        shape = StepShape(kind="step", duration_s=3, start=2, increment=0, step_s=3)
        spec = LoadSpec(shape=shape, user="kserve-v2", wait_s=0.05, request_timeout_s=10)
        rows = _run(spec, cls.url, tmp_path / "run")
    assert rows
    for r in rows:
        assert r["status"] == "200" and r["error"] == "", r
        assert r["replica"] == cls.replica_id
        assert r["phase"] == "step-0"
