"""Load at scale for real: a Locust master and two worker processes against the reference
server, their records merged into ``requests.csv``."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import psutil
import pytest

from harness.config import LoadSpec, SpikeShape, StepShape
from harness.load.factory import make_load_runner
from harness.load.local_workers import DistributedLocustRunner
from harness.load.merge import merge_records
from harness.load.sampling import schedule
from harness.load.workerenv import worker_record_files
from harness.records import COLUMNS, OPTIONAL_COLUMNS
from harness.rundir import REQUESTS_FILE
from harness.timeline import Timeline, read_timeline


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        assert tuple(reader.fieldnames or ()) == COLUMNS + OPTIONAL_COLUMNS
        return list(reader)


def _locust_count(run_dir: Path) -> int:
    with open(run_dir / "locust_stats.csv", newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            if row["Name"] == "Aggregated":
                return int(row["Request Count"])
    raise AssertionError("no Aggregated row in locust_stats.csv")


def _gone(pids: list[int]) -> bool:
    children = {p.pid for p in psutil.Process().children(recursive=True)}
    return not (set(pids) & children) and not any(psutil.pid_exists(p) for p in pids)


def test_two_workers_merged(llm_server: Any, tmp_path: Path) -> None:
    shape = SpikeShape(duration_s=5, baseline_users=4, spike_start_s=0, spike_duration_s=0)
    spec = LoadSpec(shape=shape, max_tokens=4, wait_s=0.1, request_timeout_s=10, workers=2)
    timeline = Timeline(tmp_path / "timeline.jsonl")
    runner = make_load_runner(spec, llm_server.url, tmp_path, timeline)
    assert isinstance(runner, DistributedLocustRunner)
    try:
        runner.start()
        pids = [runner.pid or 0] + [p.pid for p in runner.worker_procs]
        assert runner.wait(timeout=40), "Locust did not end with the shape"
    finally:
        runner.stop()
    assert runner.returncode == 0
    assert _gone(pids), "a Locust process was left behind"

    files = worker_record_files(tmp_path)
    assert [f.name for f in files] == ["requests.worker-0.csv", "requests.worker-1.csv"]
    per_worker = [_rows(f) for f in files]
    assert all(per_worker), "a worker sent no request"
    merged = _rows(tmp_path / REQUESTS_FILE)
    assert len(merged) == sum(len(r) for r in per_worker)
    starts = [float(r["start"]) for r in merged]
    assert starts == sorted(starts)
    assert {(r["start"], r["end"]) for rows in per_worker for r in rows} == {
        (r["start"], r["end"]) for r in merged
    }
    assert len(merged) == _locust_count(tmp_path), "Locust's own count differs from the records"
    assert all(not r["error"] for r in merged)
    ends = [e for e in read_timeline(tmp_path / "timeline.jsonl") if e["kind"] == "load_end"]
    assert ends and ends[0]["details"]["records"] == len(merged)


def test_open_loop_workers_share_the_schedule(llm_server: Any, tmp_path: Path) -> None:
    """Open loop with two workers: the master picks t0 once both are connected, and each
    worker records its own share of the schedule (every other arrival), all of it."""
    shape = StepShape(kind="step", duration_s=4, start=20, increment=0, step_s=4)
    spec = LoadSpec(
        shape=shape,
        mode="open",
        arrivals="uniform",
        user="openai",
        max_tokens=4,
        request_timeout_s=10,
        workers=2,
    )
    timeline = Timeline(tmp_path / "timeline.jsonl")
    runner = make_load_runner(spec, llm_server.url, tmp_path, timeline)
    try:
        runner.start()
        assert runner.wait(timeout=40), "Locust did not end with the shape"
    finally:
        runner.stop()
    assert runner.returncode == 0
    scheduled = [runner.t0 + offset for offset in schedule(spec)]
    merged = _rows(tmp_path / REQUESTS_FILE)
    (end,) = [e["details"] for e in timeline.events if e["kind"] == "load_end"]
    assert len(merged) == len(scheduled) == end["scheduled"] == end["records"] == 80
    for index, path in enumerate(worker_record_files(tmp_path)):
        starts = sorted(float(r["start"]) for r in _rows(path))
        assert starts == pytest.approx(scheduled[index::2], abs=2e-6), index
    assert all(r["lag_ms"] for r in merged)


def test_aborted_run_is_merged(llm_server: Any, tmp_path: Path) -> None:
    """Stopped long before the shape ends (an aborted run): the records still merge."""
    shape = SpikeShape(duration_s=60, baseline_users=2, spike_start_s=0, spike_duration_s=0)
    spec = LoadSpec(shape=shape, max_tokens=4, wait_s=0.1, request_timeout_s=10, workers=2)
    runner = DistributedLocustRunner(spec, llm_server.url, tmp_path, Timeline(tmp_path / "t.jsonl"))
    try:
        runner.start()
        pids = [runner.pid or 0] + [p.pid for p in runner.worker_procs]
    finally:
        runner.stop(grace_s=10.0)
    assert _gone(pids)
    merged = _rows(tmp_path / REQUESTS_FILE)
    assert merged
    assert len(merged) == sum(len(_rows(f)) for f in worker_record_files(tmp_path))


def test_merge_drops_torn_rows(tmp_path: Path) -> None:
    header = ",".join(COLUMNS + OPTIONAL_COLUMNS)
    width = len(COLUMNS + OPTIONAL_COLUMNS)
    row = ["2.0", "2.5", "500.0"] + [""] * (width - 3)
    early = ["1.0", "1.2", "200.0"] + [""] * (width - 3)
    (tmp_path / "requests.worker-0.csv").write_text(
        f"{header}\n{','.join(row)}\n2.9,3.0\n", encoding="utf-8"
    )
    (tmp_path / "requests.worker-1.csv").write_text(
        f"{header}\n{','.join(early)}\n", encoding="utf-8"
    )
    assert merge_records(tmp_path) == 2
    assert [r["start"] for r in _rows(tmp_path / REQUESTS_FILE)] == ["1.0", "2.0"]


def test_live_merger_appends_complete_rows(tmp_path: Path) -> None:
    from harness.load.merge import LiveMerger

    header = ",".join(COLUMNS + OPTIONAL_COLUMNS)
    width = len(COLUMNS + OPTIONAL_COLUMNS)
    row = ",".join(["1.0", "1.5", "500.0"] + [""] * (width - 3))
    worker = tmp_path / "requests.worker-0.csv"
    worker.write_text(f"{header}\n{row}\n1.2,1.3", encoding="utf-8")
    merger = LiveMerger(tmp_path)
    assert merger.poll() == 1
    assert len(_rows(tmp_path / REQUESTS_FILE)) == 1
    with open(worker, "a", encoding="utf-8") as fh:
        fh.write("," + ",".join(["100.0"] + [""] * (width - 3)) + "\n")
    assert merger.poll() == 1
    assert [r["start"] for r in _rows(tmp_path / REQUESTS_FILE)] == ["1.0", "1.2"]
