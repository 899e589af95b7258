"""Guaranteed cleanup: a harness SIGKILLed in the middle of its faults leaves nothing behind
once the detached reverters ran (no stopped process, no lowered limit, no hog or busy loop,
no state file); a fault whose time-to-live runs out is reverted while the harness lives on;
``gpuchaos cleanup`` reverts what a dead run left when no reverter did."""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.faults.procfs import address_space_limit, proc_state, start_time
from harness.faults.state import Target, new_record
from tests.support.procs import Processes, gone, wait_for

ROOT = Path(__file__).resolve().parents[2]

# A stand-in harness: injects a hang, a lowered limit and a busy loop on processes it did not
# start (so they outlive it), prints the pids, then sleeps until it is killed.
HARNESS = """
import json, sys, time
from harness.faults import injectors
hang_pid, limit_pid, ttl = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
injectors.stop_processes("hang_replica", "victim", [hang_pid], ttl)
injectors.limit_address_space("exhaust_gpu_memory", "victim", [limit_pid], 0, ttl)
worker = injectors.WorkerProcess("cpu", None, 600)
injectors.worker_fault("contend_compute", "node", [worker], ttl)
worker.request({"op": "burn"})
reverters = [f.reverter.pid for f in injectors.active_faults()]
print(json.dumps({"worker": worker.pid, "reverters": reverters}), flush=True)
time.sleep(300)
"""


@pytest.fixture
def state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("GPUCHAOS_STATE_DIR", str(tmp_path / "state"))
    return tmp_path / "state" / "faults"


Victims = tuple[subprocess.Popen[bytes], subprocess.Popen[bytes]]


@pytest.fixture
def victims(processes: Processes) -> Victims:
    """Two processes that are not children of the harness under test (in the test's process
    group, as before: not group leaders)."""
    sleeper = [sys.executable, "-c", "import time; time.sleep(120)"]
    procs = [processes.start(sleeper, own_group=False) for _ in "ab"]
    return procs[0], procs[1]


def start_harness(
    processes: Processes, hang: int, limit: int, ttl: float
) -> tuple[subprocess.Popen[str], dict]:
    proc = processes.start(
        [sys.executable, "-c", HARNESS, str(hang), str(limit), str(ttl)],
        cwd=ROOT, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line, "the stand-in harness died before injecting"
    return proc, json.loads(line)


def assert_injected(hang: int, limit: int, info: dict, state: Path) -> None:
    assert proc_state(hang) == "T"
    soft, _ = address_space_limit(limit) or (None, None)
    assert soft is not None  # lowered from unlimited
    assert not gone(info["worker"])
    assert len(list(state.glob("*.json"))) == 3


def assert_reverted(hang: int, limit: int, info: dict, state: Path, timeout: float) -> None:
    wait_for(lambda: not list(state.glob("*.json")), timeout, "every fault to be reverted")
    wait_for(lambda: proc_state(hang) in ("S", "R"), 2.0, "the stopped process to resume")
    assert address_space_limit(limit) == (None, None)  # unlimited again
    wait_for(lambda: gone(info["worker"]), 3.0, "the busy loop to exit")
    wait_for(lambda: all(gone(p) for p in info["reverters"]), 3.0, "the reverters to exit")


def test_sigkilled_harness_leaves_nothing(
    state: Path, victims: Victims, processes: Processes
) -> None:
    hang, limit = victims
    harness, info = start_harness(processes, hang.pid, limit.pid, ttl=300)
    try:
        assert_injected(hang.pid, limit.pid, info, state)
    finally:
        harness.kill()  # SIGKILL: no finally, no atexit, no rollback
        harness.wait()
    t0 = time.monotonic()
    assert_reverted(hang.pid, limit.pid, info, state, timeout=5.0)
    print(f"reverted {time.monotonic() - t0:.2f} s after the harness was SIGKILLed")


def test_time_to_live_reverts_while_the_harness_lives(
    state: Path, victims: Victims, processes: Processes
) -> None:
    hang, limit = victims
    harness, info = start_harness(processes, hang.pid, limit.pid, ttl=3.0)
    try:
        assert_injected(hang.pid, limit.pid, info, state)
        assert_reverted(hang.pid, limit.pid, info, state, timeout=10.0)
        assert harness.poll() is None  # the harness never noticed
    finally:
        harness.kill()
        harness.wait()


def test_gpuchaos_cleanup_reverts_a_dead_runs_faults(
    state: Path, victims: Victims, processes: Processes
) -> None:
    hang, limit = victims
    dead = processes.start([sys.executable, "-c", "pass"], own_group=False)
    dead.wait()
    # what a dead run left: a stopped process and a lowered limit, with no reverter
    os.kill(hang.pid, signal.SIGSTOP)
    wait_for(lambda: proc_state(hang.pid) == "T", 2.0, "SIGSTOP")
    resource.prlimit(limit.pid, resource.RLIMIT_AS, (1 << 40, resource.RLIM_INFINITY))
    for kind, pid, soft in (("stop", hang.pid, None), ("rlimit", limit.pid, None)):
        record = new_record(kind, "hang_replica", f"victim-{pid}", ttl_s=3600)  # type: ignore[arg-type]
        record.owner_pid, record.owner_start = dead.pid, 1.0
        record.targets = [Target(pid, start_time(pid), soft=soft)]
        record.save()
    live = new_record("stop", "hang_replica", "live-run", ttl_s=3600)  # owned by this test
    live.save()

    out = subprocess.run(
        [sys.executable, "-m", "harness", "cleanup"],
        cwd=ROOT, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip

    assert out.returncode == 0, out.stderr
    assert out.stdout.count("reverted hang_replica") == 2, out.stdout
    assert proc_state(hang.pid) in ("S", "R")
    assert address_space_limit(limit.pid) == (None, None)
    assert [p.name for p in state.glob("*.json")] == [live.path.name]  # a live run is left be
    again = subprocess.run(
        [sys.executable, "-m", "harness", "cleanup"],
        cwd=ROOT, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert "nothing to clean up" in again.stdout
