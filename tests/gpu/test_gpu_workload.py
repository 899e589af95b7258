"""The reference workload on CUDA: the GPT-2-small-sized model serves and holds GPU memory."""

from __future__ import annotations

import sys
from pathlib import Path

import httpx
import pytest

from tests.support.ports import free_port
from tests.support.procs import running, wait_http_ready

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def cuda_server(tmp_path: Path):  # type: ignore[no-untyped-def]
    port = free_port()
    log = tmp_path / "server.log"
    with running(
        [sys.executable, "-m", "workloads.llm", "--host", "127.0.0.1", "--port", str(port),
         "--device", "cuda", "--model", "gpt2-small", "--replica-id", "gpu-0"],
        cwd=ROOT, log_path=log,
    ) as proc:  # fmt: skip
        url = f"http://127.0.0.1:{port}"
        wait_http_ready(
            proc, f"{url}/health/ready", timeout_s=180, name="CUDA server", log=log, interval_s=0.5
        )
        yield url, proc


def test_cuda_server_streams_and_holds_gpu_memory(cuda_server) -> None:  # type: ignore[no-untyped-def]
    import pynvml

    url, proc = cuda_server
    resp = httpx.post(
        f"{url}/v1/completions", json={"prompt": "hello gpu", "max_tokens": 32}, timeout=60
    )
    assert resp.status_code == 200
    assert resp.json()["usage"]["completion_tokens"] == 32
    assert resp.headers["x-replica-id"] == "gpu-0"
    metrics = httpx.get(f"{url}/metrics", timeout=10).text
    assert 'device="cuda' in metrics
    assert "gpuchaos_gpu_memory_allocated_bytes" in metrics
    pynvml.nvmlInit()
    try:
        handle = pynvml.nvmlDeviceGetHandleByIndex(0)
        pids = {p.pid for p in pynvml.nvmlDeviceGetComputeRunningProcesses(handle)}
    finally:
        pynvml.nvmlShutdown()
    assert proc.pid in pids or not pids  # containers may hide pids from NVML
