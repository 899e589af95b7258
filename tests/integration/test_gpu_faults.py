"""GPU failure modes on the local platform, for real (tiny model on the CPU, the fault hook's
stand-ins), each through chaoslib with the timeline control: a poisoned context that deep
liveness restarts and shallow liveness leaves in place, a lost GPU that keeps its replica
off the node until ``unhealthy_s`` ends, a throttle that fails nothing, the reverter undoing
a poison and a throttle after the harness was SIGKILLed, and the hook's door (403, remote
bind refused).

Two platforms for the whole module (a deep one of two nodes, a shallow one of one node),
started once: the tests run in file order and leave their replicas serving.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import httpx
import pytest

from harness.chaos import actions
from harness.chaos.context import RunContext, activate
from harness.config import HarnessSpec, LivenessSpec, LocalPlatformSpec, NodeSpec, WorkloadSpec
from harness.faults import hookclient
from harness.platforms.local import LocalPlatform
from harness.scoring.gpu_slos import gpu_fault_figures
from harness.timeline import Timeline
from tests.support.procs import Processes, alive, wait_for
from tests.support.state import own_state_dir

ROOT = Path(__file__).resolve().parents[2]
READY_TIMEOUT_S = 90.0
COMPLETION = {"prompt": "hello there", "max_tokens": 4}
CONTROL = {
    "name": "gpuchaos-timeline",
    "provider": {"type": "python", "module": "harness.chaos.controls"},
}


@pytest.fixture(scope="module")
def state_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    with own_state_dir(tmp_path_factory) as path:
        yield path


def _context(
    tmp: Path, nodes: list[NodeSpec], liveness: Literal["shallow", "deep"]
) -> tuple[RunContext, LocalPlatform]:
    (tmp / "logs").mkdir()
    timeline = Timeline(tmp / "timeline.jsonl")
    platform_spec = LocalPlatformSpec(
        nodes=nodes,
        restart_backoff_s=0.2,
        probe_interval_s=0.1,
        liveness=LivenessSpec(period_s=0.5, timeout_s=2.0, failure_threshold=2),
    )
    workload = WorkloadSpec(
        model="tiny", max_batch_size=4, ready_timeout_s=READY_TIMEOUT_S, liveness=liveness
    )
    spec = HarnessSpec.model_validate(
        {
            "name": "gpuchaos",
            "platform": platform_spec.model_dump(),
            "workload": workload.model_dump(),
            "load": {
                "shape": {
                    "kind": "spike",
                    "duration_s": 10,
                    "baseline_users": 1,
                    "spike_start_s": 0,
                    "spike_duration_s": 0,
                }
            },
        }
    )
    platform = LocalPlatform(platform_spec, workload, timeline, tmp / "logs")
    return RunContext(platform, timeline, tmp, spec, time.time()), platform


@pytest.fixture(scope="module")
def platforms(
    tmp_path_factory: pytest.TempPathFactory, state_dir: Path
) -> Iterator[tuple[RunContext, RunContext]]:
    """(deep, shallow): node-a and node-b (no room for a third replica) with deep liveness;
    node-s with shallow liveness. Started together (their replicas load in parallel)."""
    deep, p_deep = _context(
        tmp_path_factory.mktemp("deep"),
        [
            NodeSpec(name="node-a", device="cpu", cpus=[0]),
            NodeSpec(name="node-b", device="cpu", cpus=[1]),
        ],
        "deep",
    )
    shallow, p_shallow = _context(
        tmp_path_factory.mktemp("shallow"), [NodeSpec(name="node-s", device="cpu")], "shallow"
    )
    shallow_start = threading.Thread(target=p_shallow.start)  # their replicas load together
    try:
        shallow_start.start()
        p_deep.start()
        shallow_start.join()
        assert p_shallow.wait_ready(READY_TIMEOUT_S)
        yield deep, shallow
    finally:
        actions.revert_everything()
        p_deep.stop()
        p_shallow.stop()


def run_chaoslib(
    ctx: RunContext, method: list[dict[str, Any]], rollbacks: list[dict[str, Any]]
) -> dict[str, Any]:
    """One chaoslib experiment with the timeline control against ``ctx``."""
    from chaoslib.experiment import run_experiment

    def act(name: str, func: str, **arguments: Any) -> dict[str, Any]:
        provider = {"type": "python", "module": "harness.chaos.actions", "func": func}
        return {"type": "action", "name": name, "provider": {**provider, "arguments": arguments}}

    doc = {
        "title": "gpu faults",
        "description": "contract test",
        "controls": [CONTROL],
        "method": [act(m.pop("name"), m.pop("func"), **m) for m in method],
        "rollbacks": [act(r.pop("name"), r.pop("func"), **r) for r in rollbacks],
    }
    with activate(ctx):
        journal: dict[str, Any] = run_experiment(
            doc, settings={"runtime": {"rollbacks": {"strategy": "always"}}}
        )
    assert journal["status"] == "completed", json.dumps(journal["run"], default=str)[:2000]
    return journal


def events(
    ctx: RunContext, mark: int, kind: str, target: str | None = None
) -> list[dict[str, Any]]:
    return [
        e for e in ctx.timeline.events[mark:] if e["kind"] == kind and target in (None, e["target"])
    ]


def infer(ctx: RunContext, replica: str) -> httpx.Response:
    port = ctx.platform.replica_port(replica)  # type: ignore[attr-defined]
    return httpx.post(f"http://127.0.0.1:{port}/v1/completions", json=COMPLETION, timeout=20)


def serves(ctx: RunContext, replica: str) -> bool:
    if ctx.platform.replica_port(replica) is None:  # type: ignore[attr-defined]
        return False
    try:
        return infer(ctx, replica).status_code == 200
    except httpx.HTTPError:
        return False


def pid_of(ctx: RunContext, replica: str) -> int | None:
    return ctx.platform.replica_pids().get(replica)  # type: ignore[attr-defined, no-any-return]


def no_leftovers(state_dir: Path) -> None:
    wait_for(lambda: not list(state_dir.glob("*.json")), 5.0, "no fault state file")


def test_hook_refuses_a_wrong_or_missing_token(platforms: tuple[RunContext, RunContext]) -> None:
    deep, _ = platforms
    port = deep.platform.replica_port("node-b-0")  # type: ignore[attr-defined]
    url = f"http://127.0.0.1:{port}/admin/fault"
    assert httpx.post(url, json={"kind": "poison"}, timeout=10).status_code == 403
    wrong = {hookclient.TOKEN_HEADER: "not-the-token"}
    assert httpx.post(url, json={"kind": "poison"}, headers=wrong, timeout=10).status_code == 403
    token = deep.platform.fault_token("node-b-0")  # type: ignore[attr-defined]
    assert token and token != deep.platform.fault_token("node-a-0")  # type: ignore[attr-defined]
    state = hookclient.call(port, token)
    assert state == {
        "poisoned": False,
        "xid": None,
        "throttle": 1.0,
        "hang": False,
        "contend": False,
        "hog_mib": 0.0,
        "hog_error": None,
    }
    assert serves(deep, "node-b-0")  # the refused calls changed nothing


def test_a_non_loopback_bind_with_a_token_is_refused() -> None:
    env = {**os.environ, hookclient.TOKEN_ENV: "secret"}
    cmd = [sys.executable, "-m", "workloads.llm", "--host", "0.0.0.0", "--port", "1"]
    out = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 2
    assert "refusing to serve the fault hook on non-loopback host 0.0.0.0" in out.stdout
    assert "--fault-hook-remote" in out.stdout


def started_again(ctx: RunContext, mark: int, replica: str, old_pid: int | None) -> bool:
    """A new process of ``replica`` was started after ``mark`` (not waiting for Ready: the
    tests overlap the restarts of one replica with the faults of the next)."""
    return any(e["details"]["pid"] != old_pid for e in events(ctx, mark, "replica_start", replica))


def test_poison_with_deep_liveness_is_restarted(
    platforms: tuple[RunContext, RunContext], state_dir: Path
) -> None:
    deep, _ = platforms
    pid = pid_of(deep, "node-a-0")
    mark = len(deep.timeline.events)

    journal = run_chaoslib(
        deep,
        [
            {
                "name": "poison",
                "func": "poison_replica",
                "replica": "node-a-0",
                "xid": 48,
                "duration_s": 0,
            }
        ],
        [],  # no rollback: it would restart the replica before liveness does
    )

    output = journal["run"][0]["output"]
    assert output["probe_status"] == 500 and "CUDA error" in output["probe_error"]
    assert output["failures_after"] > (output["failures_before"] or 0)
    (effect,) = events(deep, mark, "fault_effect", "node-a-0")
    assert effect["details"]["xid"] == 48

    def killed_by_liveness() -> bool:
        return any(
            e["details"].get("reason") == "liveness"
            for e in events(deep, mark, "replica_exit", "node-a-0")
        )

    wait_for(killed_by_liveness, 20.0, "deep liveness to kill the poisoned replica")
    assert not alive(pid)  # type: ignore[arg-type]
    wait_for(lambda: started_again(deep, mark, "node-a-0", pid), 10.0, "the supervisor's restart")
    new_pid = pid_of(deep, "node-a-0")
    with activate(deep):  # the revert action now finds the poisoned process gone: a no-op
        assert actions.restart_poisoned_replica("node-a-0")["reverted"] == 1
    assert pid_of(deep, "node-a-0") == new_pid and alive(new_pid)  # type: ignore[arg-type]
    no_leftovers(state_dir)
    assert [
        x["xid"] for x in gpu_fault_figures(deep.timeline.events[mark:], None, 0, 0)["xids"]
    ] == [48]


def test_lose_gpu_blocks_restarts_on_the_node_until_unhealthy_s_ends(
    platforms: tuple[RunContext, RunContext], state_dir: Path
) -> None:
    deep, _ = platforms
    pid = pid_of(deep, "node-b-0")
    mark = len(deep.timeline.events)

    run_chaoslib(  # node-a has no room for a second replica: node-b-0 must wait
        deep,
        [{"name": "lose", "func": "lose_gpu", "node": "node-b", "unhealthy_s": 5}],
        [{"name": "restore", "func": "restore_gpu", "node": "node-b"}],
    )

    (down,) = events(deep, mark, "gpu_unhealthy", "node-b")
    (back,) = events(deep, mark, "gpu_healthy", "node-b")
    # the hold counts from the injection call, the event comes a moment after it
    assert down["details"]["xid"] == 79 and back["time"] - down["time"] >= 4.5
    (exit_,) = events(deep, mark, "replica_exit", "node-b-0")
    assert exit_["details"]["pid"] == pid and exit_["details"].get("reason") == "liveness"
    assert exit_["time"] < back["time"]  # killed while the GPU was unhealthy ...
    pending = [
        e
        for e in events(deep, mark, "scale", "scheduler")
        if "node-b-0" in e["details"].get("pending", [])
    ]
    assert pending, "node-a had no room: node-b-0 waits"
    wait_for(lambda: started_again(deep, mark, "node-b-0", pid), 10.0, "a restart")
    (start,) = events(deep, mark, "replica_start", "node-b-0")
    assert start["time"] >= back["time"] and start["details"]["node"] == "node-b"  # ... not before
    lost = gpu_fault_figures(deep.timeline.events[mark:], None, down["time"], back["time"])
    (row,) = lost["gpu_unschedulable"]
    assert row["node"] == "node-b" and row["unschedulable_s"] >= 4.5 and row["ended"]
    assert row["ready_elsewhere_s"] == {"node-b-0": None}  # it came back home, not elsewhere
    no_leftovers(state_dir)


def test_throttle_fails_nothing_and_is_cleared(
    platforms: tuple[RunContext, RunContext], state_dir: Path
) -> None:
    deep, _ = platforms
    wait_for(lambda: serves(deep, "node-a-0"), READY_TIMEOUT_S, "node-a-0 to serve again")
    port = deep.platform.replica_port("node-a-0")  # type: ignore[attr-defined]
    token = deep.platform.fault_token("node-a-0")  # type: ignore[attr-defined]
    assert token is not None

    journal = run_chaoslib(
        deep,
        [
            {
                "name": "throttle",
                "func": "throttle_gpu",
                "node": "node-a",
                "factor": 6,
                "duration_s": 0,
            }
        ],
        [{"name": "unthrottle", "func": "unthrottle_gpu", "node": "node-a"}],
    )

    throttled = journal["run"][0]["output"]
    assert throttled["held"] and throttled["replicas"]["node-a-0"] == {
        "throttle": 6,
        "probe_status": 200,
    }
    assert journal["rollbacks"][0]["output"]["reverted"] == 1
    assert hookclient.call(port, token)["throttle"] == 1.0
    assert serves(deep, "node-a-0")  # nothing failed
    no_leftovers(state_dir)


def test_hang_and_contend_through_the_hook(platforms: tuple[RunContext, RunContext]) -> None:
    deep, _ = platforms
    port = deep.platform.replica_port("node-a-0")  # type: ignore[attr-defined]
    token = str(deep.platform.fault_token("node-a-0"))  # type: ignore[attr-defined]
    assert hookclient.call(port, token, {"kind": "hang"})["hang"]
    with pytest.raises(httpx.TimeoutException):  # every route but the hook's is held
        httpx.get(f"http://127.0.0.1:{port}/health/ready", timeout=1.0)
    assert hookclient.call(port, token, {"kind": "contend"})["contend"]
    state = hookclient.call(port, token, {"kind": "clear"})
    assert not state["hang"] and not state["contend"] and not state["poisoned"]
    assert serves(deep, "node-a-0")


# A stand-in harness: throttles one replica and poisons another that it did not start,
# prints its reverters' pids, then sleeps until it is killed.
HARNESS = """
import json, sys
from harness.faults import injectors
from harness.faults.builtin.gpu import poison_process, throttle_process
a = sys.argv[1:]
throttle_process("throttle_gpu", "victim-t", int(a[0]), a[1], int(a[2]), 5.0, 300)
poison_process("poison_replica", "victim-p", int(a[3]), a[4], int(a[5]), 95, 300)
print(json.dumps([f.reverter.pid for f in injectors.active_faults()]), flush=True)
import time; time.sleep(300)
"""


def test_shallow_black_hole_until_the_reverter_acts_after_sigkill(
    platforms: tuple[RunContext, RunContext], state_dir: Path, processes: Processes
) -> None:
    """Shallow liveness leaves a poisoned replica in place (the supervisor never restarts
    it); a SIGKILLed harness's reverters clear the throttle and kill the poisoned process,
    which the supervisor then restarts."""
    deep, shallow = platforms
    t_port = deep.platform.replica_port("node-a-0")  # type: ignore[attr-defined]
    t_token = str(deep.platform.fault_token("node-a-0"))  # type: ignore[attr-defined]
    p_port = shallow.platform.replica_port("node-s-0")  # type: ignore[attr-defined]
    p_token = str(shallow.platform.fault_token("node-s-0"))  # type: ignore[attr-defined]
    p_pid = pid_of(shallow, "node-s-0")
    mark = len(shallow.timeline.events)
    argv = [str(t_port), t_token, str(pid_of(deep, "node-a-0")), str(p_port), p_token, str(p_pid)]
    harness = processes.start(
        [sys.executable, "-c", HARNESS, *argv], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    assert harness.stdout is not None
    line = harness.stdout.readline()
    assert line, "the stand-in harness died before injecting"
    reverters = json.loads(line)
    assert hookclient.call(t_port, t_token)["throttle"] == 5.0
    assert len(list(state_dir.glob("*.json"))) == 2
    # 2 failed liveness probes 0.5 s apart would kill it: give shallow liveness 3 s
    time.sleep(3.0)
    assert pid_of(shallow, "node-s-0") == p_pid and not events(shallow, mark, "replica_exit")
    assert hookclient.probe_live(p_port) == 200  # the process answers: shallow passes
    bad = infer(shallow, "node-s-0")
    assert bad.status_code == 500 and "CUDA error" in bad.text  # every request fails

    harness.kill()  # SIGKILL: no finally, no atexit, no rollback
    harness.wait()

    no_leftovers(state_dir)
    assert hookclient.call(t_port, t_token)["throttle"] == 1.0  # the reverter's clear
    wait_for(lambda: not alive(p_pid), 5.0, "the reverter to kill the poisoned replica")  # type: ignore[arg-type]
    wait_for(lambda: all(not alive(p) for p in reverters), 5.0, "the reverters to exit")
    wait_for(lambda: started_again(shallow, mark, "node-s-0", p_pid), 10.0, "the restart")
