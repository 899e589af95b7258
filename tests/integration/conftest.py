"""Shared integration fixtures.

`llm_server`: the reference LLM server (`python -m workloads.llm`, tiny model on the CPU) as a
real subprocess on a free port of 127.0.0.1, Ready before the test starts, stopped afterwards.
`run_llm_server` starts one with other arguments. `node_loss_run`: one short real
`gpuchaos run` of the node-loss experiment, shared by the end-to-end and report tests.
Ports and processes come from tests/support (`free_port`, `running`, `wait_http_ready`).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.ports import free_port
from tests.support.procs import running, wait_http_ready

ROOT = REPO_ROOT = Path(__file__).resolve().parents[2]
LLM_READY_TIMEOUT_S = 60.0


@dataclass
class LLMServer:
    """A running `workloads.llm` process."""

    url: str
    port: int
    proc: subprocess.Popen[bytes]
    replica_id: str
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@contextmanager
def run_llm_server(
    log_dir: Path,
    *extra_args: str,
    replica_id: str | None = None,
    ready_timeout: float = LLM_READY_TIMEOUT_S,
    module: str = "workloads.llm",
) -> Iterator[LLMServer]:
    """Start the server, wait until /health/ready says 200 (failing early, with its log, if it
    exits first), yield it, and always stop it with its process group (SIGTERM, then SIGKILL).
    `module` picks the workload (`workloads.classifier` serves /health/ready too)."""
    port = free_port()
    rid = replica_id or f"test-replica-{port}"
    log_path = log_dir / f"llm-{port}.log"
    cmd = [
        sys.executable,
        "-m",
        module,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--device",
        "cpu",
        "--replica-id",
        rid,
        *extra_args,
    ]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with running(cmd, cwd=REPO_ROOT, log_path=log_path, env=env) as proc:
        server = LLMServer(f"http://127.0.0.1:{port}", port, proc, rid, log_path)
        wait_http_ready(
            proc,
            f"{server.url}/health/ready",
            timeout_s=ready_timeout,
            name=f"{module} server",
            log=log_path,
        )
        yield server


@pytest.fixture(scope="module")
def llm_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LLMServer]:
    """One tiny-model server per test module (max batch 8)."""
    with run_llm_server(tmp_path_factory.mktemp("llm"), "--max-batch-size", "8") as server:
        yield server


# -- the whole loop: one short node-loss run shared by the end-to-end and report tests ------

NODE_LOSS_EXPERIMENT = ROOT / "experiments" / "gpu-node-loss.yaml"

#: A short version of the catalog experiment (35 s of load). The node is lost about 7 s in
#: (warm-up, steady-state check, fault delay) and back 5 s later; the rest of the load is
#: the time the replica needs to come back and serve again, which the end-to-end tests check
#: (the requests after its return), so shortening the fault and not the time after it.
SHORT_NODE_LOSS = {
    "duration_s": 35,
    "warmup_s": 4,
    "baseline_users": 3,
    "spike_start_s": 6,
    "spike_duration_s": 20,
    "fault_delay_s": 3,
    "node_down_s": 5,
    "recovery_wait_s": 8,
}


def gpuchaos_run_cmd(
    out: Path, experiment: Path = NODE_LOSS_EXPERIMENT, **overrides: object
) -> list[str]:
    """``gpuchaos run`` of the short node-loss experiment into ``out``, with overrides
    (``experiment``: another file with the same configuration keys, e.g. a tolerant copy)."""
    args = [sys.executable, "-m", "harness", "run", str(experiment), "--out", str(out)]
    for k, v in {**SHORT_NODE_LOSS, **overrides}.items():
        args += ["--var", f"{k}={v}"]
    return args


#: What the shared run's GitHub step summary held before the run (as an earlier step's).
EARLIER_STEP = "# earlier step\n"


@pytest.fixture(scope="session")
def node_loss_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int, str]:
    """One real short run: (run folder, exit code, everything it printed). It runs as on
    GitHub Actions (``GITHUB_ACTIONS=true``, a step summary file next to the run folder:
    :func:`step_summary_of`), so the CI-output tests read the same run instead of making
    their own; the annotations are extra lines of its output."""
    out = tmp_path_factory.mktemp("node-loss") / "run"
    summary = step_summary_of(out)
    summary.write_text(EARLIER_STEP)
    env = {**os.environ, "GITHUB_ACTIONS": "true", "GITHUB_STEP_SUMMARY": str(summary)}
    env.pop("GITHUB_WORKSPACE", None)
    proc = subprocess.run(
        gpuchaos_run_cmd(out),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
        env=env,
    )
    return out, proc.returncode, proc.stdout + proc.stderr


def step_summary_of(run_dir: Path) -> Path:
    """The ``$GITHUB_STEP_SUMMARY`` file of the shared run."""
    return run_dir.parent / "step_summary.md"
