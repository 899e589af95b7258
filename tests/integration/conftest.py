"""Shared integration fixtures.

`llm_server`: the reference LLM server (`python -m workloads.llm`, tiny model on the CPU) as a
real subprocess on a free port of 127.0.0.1, Ready before the test starts, killed afterwards.
`run_llm_server` starts one with other arguments.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

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


def free_port() -> int:
    """An ephemeral port of 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


@contextmanager
def run_llm_server(
    log_dir: Path,
    *extra_args: str,
    replica_id: str | None = None,
    ready_timeout: float = LLM_READY_TIMEOUT_S,
    module: str = "workloads.llm",
) -> Iterator[LLMServer]:
    """Start the server, wait until /health/ready says 200 (failing early, with its log, if it
    exits first), yield it, and always stop it (SIGTERM, then SIGKILL). `module` picks the
    workload (`workloads.classifier` serves /health/ready too)."""
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
    with log_path.open("wb") as log:
        proc = subprocess.Popen(cmd, cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT, env=env)
    server = LLMServer(f"http://127.0.0.1:{port}", port, proc, rid, log_path)
    try:
        deadline = time.monotonic() + ready_timeout
        with httpx.Client(timeout=2.0) as client:
            while True:
                code = proc.poll()
                if code is not None:
                    pytest.fail(f"llm server exited with {code} before Ready:\n{server.log()}")
                try:
                    if client.get(f"{server.url}/health/ready").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    pytest.fail(f"llm server not Ready after {ready_timeout} s:\n{server.log()}")
                time.sleep(0.05)
        yield server
    finally:
        _stop(proc)


@pytest.fixture(scope="module")
def llm_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LLMServer]:
    """One tiny-model server per test module (max batch 8)."""
    with run_llm_server(tmp_path_factory.mktemp("llm"), "--max-batch-size", "8") as server:
        yield server


# -- the whole loop: one short node-loss run shared by the end-to-end and report tests ------

NODE_LOSS_EXPERIMENT = ROOT / "experiments" / "gpu-node-loss.yaml"

#: A short version of the catalog experiment (about 45 s of load).
SHORT_NODE_LOSS = {
    "duration_s": 40,
    "warmup_s": 5,
    "baseline_users": 3,
    "spike_start_s": 8,
    "spike_duration_s": 20,
    "fault_delay_s": 5,
    "node_down_s": 8,
    "recovery_wait_s": 8,
}


def gpuchaos_run_cmd(out: Path, **overrides: object) -> list[str]:
    """``gpuchaos run`` of the short node-loss experiment into ``out``, with overrides."""
    args = [sys.executable, "-m", "harness", "run", str(NODE_LOSS_EXPERIMENT), "--out", str(out)]
    for k, v in {**SHORT_NODE_LOSS, **overrides}.items():
        args += ["--var", f"{k}={v}"]
    return args


@pytest.fixture(scope="session")
def node_loss_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int, str]:
    """One real short run: (run folder, exit code, everything it printed)."""
    out = tmp_path_factory.mktemp("node-loss") / "run"
    proc = subprocess.run(
        gpuchaos_run_cmd(out), cwd=ROOT, capture_output=True, text=True, timeout=240, check=False
    )
    return out, proc.returncode, proc.stdout + proc.stderr
