"""A load generator that really saturates is flagged, and a light one is not.

Open loop against a trivial fast server on 127.0.0.1 (``benchmarks/bench_load.py``'s fixed
answers): at a rate one Locust process cannot reach, the process runs out of CPU and falls
behind its schedule; at a few requests per second it does neither. Telemetry samples the
Locust processes through the load runner's ``load_pids`` exactly as ``gpuchaos run`` does,
and the scorecard is built offline from the run folder (``gpuchaos score``). The assertions
compare the scorecard with what the run recorded (telemetry.csv, requests.csv), not with
wall-clock expectations.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

from harness.config import LoadSpec, StepShape
from harness.experiment import load_experiment
from harness.load import LocustRunner
from harness.load.local_workers import DistributedLocustRunner
from harness.rundir import REQUESTS_FILE, TELEMETRY_FILE, TIMELINE_FILE
from harness.scoring.gpu import read_telemetry
from harness.scoring.instrument import CPU_SATURATED_PERCENT, LAG_P95_MS, read_lag
from harness.scoring.rundir import score_run_dir
from harness.telemetry import TelemetrySampler
from harness.telemetry.sampler import ReplicaView
from harness.timeline import Timeline
from tests.integration.conftest import ROOT
from tests.support.ports import free_port
from tests.support.procs import running, wait_http_ready


class _NoWorkload:
    """The sampler's view of a platform that runs nothing (the server is not a replica)."""

    def nodes(self) -> list[str]:
        return []

    def replicas(self) -> Sequence[ReplicaView]:
        return []


@pytest.fixture(scope="module")
def trivial_server() -> Iterator[str]:
    port = free_port()
    cmd = [sys.executable, "-c", f"from benchmarks.bench_load import serve; serve({port})"]
    with running(cmd, cwd=ROOT) as proc:
        url = f"http://127.0.0.1:{port}"
        wait_http_ready(proc, f"{url}/count", timeout_s=30, name="trivial server")
        yield url


def _run(spec: LoadSpec, url: str, run_dir: Path) -> None:
    """One load run with the telemetry of ``gpuchaos run`` (Locust CPU every 0.5 s)."""
    run_dir.mkdir(parents=True)
    exp = load_experiment(ROOT / "experiments" / "gpu-node-loss.yaml", {})
    (run_dir / "experiment.yaml").write_text(yaml.safe_dump(exp.document, sort_keys=False))
    timeline = Timeline(run_dir / TIMELINE_FILE)
    kind = DistributedLocustRunner if spec.workers else LocustRunner
    runner = kind(spec, url, run_dir, timeline)
    sampler = TelemetrySampler(_NoWorkload(), run_dir / TELEMETRY_FILE, interval_s=0.5)
    sampler.watch_load(runner.load_pids)
    sampler.start()
    try:
        runner.start()
        assert runner.wait(timeout=60), "Locust did not end with the shape"
    finally:
        runner.stop()
        sampler.stop()
        timeline.close()


def _recorded(run_dir: Path, t0: float) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """The Locust CPU samples after ``t0`` and the arrivals' lag, as written to the folder."""
    tel = read_telemetry(run_dir / TELEMETRY_FILE)
    cpu = tel[(tel["metric"] == "cpu_percent") & (tel["time"] > t0)]
    return cpu, read_lag(run_dir / REQUESTS_FILE)


def _late_seconds(lag: pd.DataFrame | None, t0: float, seconds: int) -> set[int]:
    """Seconds whose arrivals' p95 lag passes the threshold, recomputed from requests.csv."""
    if lag is None or lag.empty:
        return set()
    second = (lag["start"] - t0).apply(math.floor)
    p95 = lag["lag_ms"].groupby(second).quantile(0.95)
    return {int(s) for s, v in p95.items() if v > LAG_P95_MS and 0 <= s < seconds}


def _affected(inst: dict[str, Any]) -> set[int]:
    return {s for w in inst["windows"] for s in range(w["start_s"], w["end_s"])}


def test_a_saturated_generator_is_flagged(trivial_server: str, tmp_path: Path) -> None:
    # far beyond what one Locust worker sends: it runs flat out and falls behind (a master
    # and one worker, so both kinds of process are sampled)
    shape = StepShape(kind="step", duration_s=3, start=4000, increment=0, step_s=3)
    spec = LoadSpec(
        shape=shape, mode="open", workers=1, max_in_flight=64, user="openai", max_tokens=4
    )
    run_dir = tmp_path / "saturated"
    _run(spec, trivial_server, run_dir)
    card = score_run_dir(run_dir)
    inst, t0 = card["instrument"], card["run"]["t0"]
    cpu, lag = _recorded(run_dir, t0)
    assert set(cpu["source"]) == {"locust", "locust-worker-0"} and inst["sampled"] is True
    assert inst["saturated"] is True, inst
    assert inst["affected_s"] >= 1 and inst["warning"].startswith(
        f"the load generator was saturated for {inst['affected_s']} s"
    )
    # every figure is the run's own record
    seconds = math.ceil(min(card["run"]["load_end"], t0 + 3.0) - t0)  # the shape's 3 s
    assert _late_seconds(lag, t0, seconds) <= _affected(inst)
    in_load = cpu[cpu["time"] <= t0 + seconds + 0.5]
    assert inst["peak_cpu_percent"] <= float(in_load["value"].max())
    if inst["cpu_affected_s"]:
        assert inst["peak_cpu_percent"] > CPU_SATURATED_PERCENT
    if lag is not None and inst["lag_recorded"]:
        assert inst["peak_lag_ms"] == pytest.approx(
            float(lag[(lag["start"] >= t0) & (lag["start"] < t0 + seconds)]["lag_ms"].max())
        )
    md = (run_dir / "scorecard.json").read_text()
    assert '"saturated": true' in md


def test_a_light_run_is_not_flagged(trivial_server: str, tmp_path: Path) -> None:
    # one Locust process, far from busy (20 arrivals a second: one late arrival alone
    # cannot move a second's p95)
    shape = StepShape(kind="step", duration_s=3, start=20, increment=0, step_s=3)
    spec = LoadSpec(shape=shape, mode="open", max_in_flight=8, user="openai", max_tokens=4)
    run_dir = tmp_path / "light"
    _run(spec, trivial_server, run_dir)
    card = score_run_dir(run_dir)
    inst, t0 = card["instrument"], card["run"]["t0"]
    cpu, lag = _recorded(run_dir, t0)
    assert set(cpu["source"]) == {"locust"} and inst["sampled"] is True
    assert inst["saturated"] is False, inst
    assert inst["affected_s"] == 0 and inst["warning"] is None
    assert inst["peak_cpu_percent"] is not None
    if inst["lag_recorded"]:
        assert lag is not None and inst["peak_lag_ms"] is not None


def test_gpuchaos_run_samples_its_locust(node_loss_run: tuple[Path, int, str]) -> None:
    """The real loop: telemetry.csv holds the Locust process's CPU and the scorecard, written
    by the run and reproduced offline, has the instrument section built from it."""
    run_dir, code, output = node_loss_run
    assert code in (0, 1), output
    tel = read_telemetry(run_dir / TELEMETRY_FILE)
    cpu = tel[tel["metric"] == "cpu_percent"]
    assert set(cpu["source"]) == {"locust"} and len(cpu) >= 5
    written = json.loads((run_dir / "scorecard.json").read_text())["instrument"]
    assert written["sampled"] is True
    assert score_run_dir(run_dir, write=False)["instrument"] == written
    if written["saturated"]:  # a busy machine: the run says so where a reader looks
        assert written["warning"] in output
        assert "instrument was saturated" in (run_dir / "summary.md").read_text()
