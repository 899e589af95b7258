"""The load generator for real: Locust as a subprocess against the reference server."""

from __future__ import annotations

import csv
import time
from collections import Counter
from pathlib import Path
from typing import Any

import psutil
import pytest

from harness.config import LoadSpec, SpikeShape
from harness.errors import LoadError
from harness.load import LocustRunner
from harness.records import COLUMNS, OPTIONAL_COLUMNS
from harness.rundir import REQUESTS_FILE
from harness.timeline import Timeline, read_timeline
from tests.support.ports import free_port


def _spec(**shape: float) -> dict[str, Any]:
    return {"duration_s": 8, "baseline_users": 2, "spike_start_s": 0, "spike_duration_s": 0} | shape


def _rows(run_dir: Path) -> list[dict[str, str]]:
    with open(run_dir / REQUESTS_FILE, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        assert tuple(reader.fieldnames or ()) == COLUMNS + OPTIONAL_COLUMNS
        return list(reader)


def _locust_totals(run_dir: Path) -> tuple[int, int]:
    """Request and failure counts of Locust's own summary (``locust_stats.csv``)."""
    with open(run_dir / "locust_stats.csv", newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            if row["Name"] == "Aggregated":
                return int(row["Request Count"]), int(row["Failure Count"])
    raise AssertionError("no Aggregated row in locust_stats.csv")


def _no_child(pid: int) -> bool:
    children = {p.pid for p in psutil.Process().children(recursive=True)}
    return pid not in children and not psutil.pid_exists(pid)


def test_spike_run(llm_server: Any, tmp_path: Path) -> None:
    shape = SpikeShape(
        duration_s=8, baseline_users=2, spike_multiplier=3, spike_start_s=3, spike_duration_s=3
    )
    # think time keeps the load well under the server's capacity, so rates follow users
    spec = LoadSpec(shape=shape, max_tokens=6, wait_s=0.1, request_timeout_s=10)
    timeline = Timeline(tmp_path / "timeline.jsonl")
    runner = LocustRunner(spec, llm_server.url, tmp_path, timeline)
    try:
        runner.start()
        assert runner.running
        assert runner.wait(timeout=30), "Locust did not end with the shape"
    finally:
        runner.stop()
    assert not runner.running and runner.returncode == 0

    rows = _rows(tmp_path)
    assert rows
    for row in rows:
        assert row["status"] == "200" and row["error"] == "", row
        assert 0 < float(row["ttft_ms"]) < float(row["latency_ms"]), row
        assert int(row["output_tokens"]) == spec.max_tokens
        assert row["replica"] == llm_server.replica_id
        start = float(row["start"]) - runner.t0
        assert -0.01 <= start < shape.duration_s
        assert float(row["end"]) >= float(row["start"])
    by_phase = Counter(row["phase"] for row in rows)
    assert set(by_phase) == {"baseline", "spike", "recovery"}
    baseline_rps = by_phase["baseline"] / 3.0
    spike_rps = by_phase["spike"] / 3.0
    assert spike_rps > 1.5 * baseline_rps, by_phase

    events = read_timeline(tmp_path / "timeline.jsonl")
    kinds = [e["kind"] for e in events]
    assert kinds[0] == "load_start" and kinds[-1] == "load_end"
    assert events[0]["details"]["pid"] == runner.pid
    assert events[0]["details"]["endpoint"] == llm_server.url
    phases = [(e["details"]["phase"], round(e["time"] - runner.t0, 3)) for e in events[1:-1]]
    assert phases == [("baseline", 0.0), ("spike", 3.0), ("recovery", 6.0)]
    end = events[-1]["details"]
    assert end["exited_by_itself"] and end["returncode"] == 0 and end["records"] == len(rows)

    assert _locust_totals(tmp_path) == (len(rows), 0)
    assert (tmp_path / "load.json").is_file()


def test_stop_midway_is_prompt_and_keeps_the_summary(llm_server: Any, tmp_path: Path) -> None:
    shape = SpikeShape.model_validate(_spec(duration_s=120, spike_start_s=60, spike_duration_s=10))
    spec = LoadSpec(shape=shape, max_tokens=4, wait_s=0.05)
    timeline = Timeline(None)
    runner = LocustRunner(spec, llm_server.url, tmp_path, timeline)
    runner.start()
    pid = runner.pid
    assert pid is not None
    time.sleep(1.5)
    code = runner.stop()
    # SIGINT worked: Locust ended within the stop's grace, no SIGKILL (as load_end records)
    assert timeline.events[-1]["details"]["killed"] is False
    assert code == 0 and not runner.running
    assert _no_child(pid)

    rows = _rows(tmp_path)
    assert rows and all(r["status"] == "200" and r["error"] == "" for r in rows)
    assert _locust_totals(tmp_path) == (len(rows), 0)
    assert "Aggregated" in (tmp_path / "locust.log").read_text()

    # idempotent, and the spike's phase event was cancelled with the run
    assert runner.stop() == code
    kinds = [e["kind"] for e in timeline.events]
    assert kinds.count("load_end") == 1
    assert [e["details"]["phase"] for e in timeline.events if e["kind"] == "phase"] == ["baseline"]
    assert timeline.events[-1]["details"]["exited_by_itself"] is False


@pytest.mark.parametrize("target", ["refused", "silent"])
def test_failures_are_records(target: str, silent_port: int, tmp_path: Path) -> None:
    port = free_port() if target == "refused" else silent_port
    spec = LoadSpec(
        shape=SpikeShape.model_validate(_spec(duration_s=2)), wait_s=0.05, request_timeout_s=0.5
    )
    runner = LocustRunner(spec, f"http://127.0.0.1:{port}", tmp_path, Timeline(None))
    try:
        runner.start()
        assert runner.wait(timeout=20)
    finally:
        runner.stop()

    rows = _rows(tmp_path)
    assert rows
    expected = "connection refused" if target == "refused" else "timeout"
    for row in rows:
        assert (row["status"], row["error"], row["ttft_ms"]) == ("0", expected, ""), row
        assert row["output_tokens"] == "0" and row["phase"] == "baseline"
    if target == "silent":
        assert all(float(r["latency_ms"]) >= 500 for r in rows)
    # nothing dropped: Locust counted exactly the requests that were recorded
    assert _locust_totals(tmp_path) == (len(rows), len(rows))


def test_no_first_record_is_a_load_error(silent_port: int, tmp_path: Path) -> None:
    spec = LoadSpec(shape=SpikeShape.model_validate(_spec(duration_s=60)), request_timeout_s=30)
    timeline = Timeline(None)
    runner = LocustRunner(
        spec, f"http://127.0.0.1:{silent_port}", tmp_path, timeline, first_record_timeout_s=1.0
    )
    with pytest.raises(LoadError, match="no request record"):
        runner.start()
    assert not runner.running
    pid = runner.pid
    assert pid is not None and _no_child(pid)
    assert [e["kind"] for e in timeline.events][-1] == "load_end"
