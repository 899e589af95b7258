"""The fault hook's ``hog`` and ``--memory-fraction`` on real CPU servers (issue #20): both
servers take the flag and say on /metrics that it has no effect on CPU; a hog takes real
resident memory inside the server until ``clear`` gives it back; under a lowered RLIMIT_AS
(the CPU stand-in of an MPS or MIG memory cap) a hog too big fails cleanly, answered with
the allocator's error, and the server serves on. One LLM and one classifier server, started
together, serve the whole module."""

from __future__ import annotations

import os
import re
import resource
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil
import pytest

from harness.errors import ChaosError
from harness.faults import hookclient
from tests.support.ports import free_port
from tests.support.procs import running, wait_http_ready

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "hog-test-token"
MIB = 2**20


@dataclass(frozen=True)
class Server:
    module: str
    port: int
    proc: subprocess.Popen[bytes]
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def hook(self, body: dict[str, object] | None = None) -> dict[str, object]:
        return hookclient.call(self.port, TOKEN, body)

    def gauge(self, name: str) -> float:
        value = hookclient.metric_total(self.port, name)
        assert value is not None, f"{name} missing from /metrics"
        return value


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Server]]:
    """`workloads.llm` and `workloads.classifier` on CPU with the hook and a memory fraction
    of 0.5, started at once and shared by the module's tests."""
    logs = tmp_path_factory.mktemp("hog")
    env = {**os.environ, "PYTHONUNBUFFERED": "1", hookclient.TOKEN_ENV: TOKEN}
    with ExitStack() as stack:
        out: dict[str, Server] = {}
        for module in ("workloads.llm", "workloads.classifier"):
            port = free_port()
            log = logs / f"{module}.log"
            cmd = [
                sys.executable, "-m", module, "--host", "127.0.0.1", "--port", str(port),
                "--device", "cpu", "--model", "tiny", "--replica-id", f"hog-{module}",
                "--memory-fraction", "0.5",
            ]  # fmt: skip
            proc = stack.enter_context(running(cmd, cwd=ROOT, log_path=log, env=env))
            out[module] = Server(module, port, proc, log)
        for s in out.values():
            wait_http_ready(
                s.proc, f"{s.url}/health/ready", timeout_s=120, name=s.module, log=s.log_path
            )
        yield out


def _status_kib(pid: int, field: str) -> int:
    text = Path(f"/proc/{pid}/status").read_text()
    match = re.search(rf"{field}:\s+(\d+) kB", text)
    assert match, text
    return int(match.group(1))


def _serves(server: Server) -> bool:
    if server.module == "workloads.llm":
        resp = httpx.post(
            f"{server.url}/v1/completions", json={"prompt": "hog", "max_tokens": 4}, timeout=30
        )
    else:
        tensor = {"name": "input", "datatype": "FP32", "shape": [1, 3, 32, 32],
                  "data": [0.0] * (3 * 32 * 32)}  # fmt: skip
        resp = httpx.post(
            f"{server.url}/v2/models/classifier/infer", json={"inputs": [tensor]}, timeout=30
        )
    return resp.status_code == 200


def test_both_servers_take_a_memory_fraction_that_has_no_effect_on_cpu(
    servers: dict[str, Server],
) -> None:
    for s in servers.values():
        assert s.gauge("gpuchaos_memory_fraction") == 0.5
        assert s.gauge("gpuchaos_memory_fraction_enforced") == 0  # CPU: RLIMIT_AS caps it
        assert s.gauge("gpuchaos_mps_active") == 0
        assert "memory fraction 0.5 has no effect on cpu" in s.log_path.read_text()
        assert _serves(s)


def test_a_hog_holds_resident_memory_until_clear(servers: dict[str, Server]) -> None:
    for s in servers.values():
        pid = s.proc.pid
        before = _status_kib(pid, "VmRSS")
        state = s.hook({"kind": "hog", "mib": 64})
        assert state["hog_mib"] == 64 and state["hog_error"] is None
        state = s.hook({"kind": "hog", "mib": 32})  # hogs add up
        assert state["hog_mib"] == 96 and s.hook()["hog_mib"] == 96
        held = _status_kib(pid, "VmRSS")
        assert held - before >= 90 * 1024, (before, held)  # written pages, not address space
        assert s.gauge("gpuchaos_fault_hog_bytes") == 96 * MIB
        assert _serves(s)
        assert s.hook({"kind": "clear"})["hog_mib"] == 0
        after = _status_kib(pid, "VmRSS")
        assert held - after >= 90 * 1024, (held, after)  # given back to the system
        assert s.gauge("gpuchaos_fault_hog_bytes") == 0


def test_a_lowered_rlimit_as_fails_a_too_big_hog_and_the_server_serves_on(
    servers: dict[str, Server],
) -> None:
    s = servers["workloads.llm"]
    pid = s.proc.pid
    limits = resource.prlimit(pid, resource.RLIMIT_AS)
    # the CPU stand-in of a per-client cap: the replica's size now plus 64 MiB
    squeezed = _status_kib(pid, "VmSize") * 1024 + 64 * MIB
    resource.prlimit(pid, resource.RLIMIT_AS, (squeezed, limits[1]))
    try:
        with pytest.raises(ChaosError) as refused:
            s.hook({"kind": "hog", "mib": 256})
        assert "HTTP 507" in str(refused.value)
        state = s.hook()
        assert state["hog_mib"] == 0
        error = str(state["hog_error"])
        assert "can't allocate memory" in error or "MemoryError" in error, error
        assert psutil.Process(pid).is_running() and _serves(s)
        assert httpx.get(f"{s.url}/health/ready", timeout=10).status_code == 200
        # a hog that fits under the cap is taken: it is the limit that refused, nothing broke
        assert s.hook({"kind": "hog", "mib": 8})["hog_mib"] == 8
        assert s.hook({"kind": "clear"})["hog_mib"] == 0
    finally:
        resource.prlimit(pid, resource.RLIMIT_AS, limits)
    assert "hog of 256 MiB on cpu failed" in s.log_path.read_text()
    assert s.hook({"kind": "hog", "mib": 256})["hog_mib"] == 256  # the cap lifted: it fits
    s.hook({"kind": "clear"})


def test_the_hog_keeps_the_hooks_door(servers: dict[str, Server]) -> None:
    s = servers["workloads.classifier"]
    with pytest.raises(ChaosError, match="HTTP 403"):
        hookclient.call(s.port, "wrong-token", {"kind": "hog", "mib": 8})
    with pytest.raises(ChaosError, match=r"HTTP 400.*mib must be above 0"):
        s.hook({"kind": "hog", "mib": -1})
    assert s.hook()["hog_mib"] == 0
