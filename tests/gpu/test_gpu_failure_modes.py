"""GPU failure modes on a real GPU, through the fault hook: poison triggers a real
device-side assert in the server's own CUDA context (sticky: every request fails with the
CUDA error, shallow liveness still answers, deep liveness fails); a throttle stretches every
step by its factor and fails nothing, and its clear brings the speed back."""

from __future__ import annotations

import os
import statistics
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from harness.faults import hookclient
from tests.support.ports import free_port
from tests.support.procs import running, wait_http_ready

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "gpu-test-token"


def _server(tmp_path: Path, liveness: str) -> Iterator[tuple[str, int]]:
    port = free_port()
    log = tmp_path / f"server-{liveness}.log"
    env = {**os.environ, hookclient.TOKEN_ENV: TOKEN}
    with running(
        [sys.executable, "-m", "workloads.llm", "--host", "127.0.0.1", "--port", str(port),
         "--device", "cuda:0", "--model", "gpt2-small", "--replica-id", f"gpu-{liveness}",
         "--max-batch-size", "8", "--liveness", liveness],
        cwd=ROOT, log_path=log, env=env,
    ) as proc:  # fmt: skip
        url = f"http://127.0.0.1:{port}"
        wait_http_ready(
            proc, f"{url}/health/ready", timeout_s=180, name="CUDA server", log=log, interval_s=0.5
        )
        yield url, port


@pytest.fixture
def deep_server(tmp_path: Path) -> Iterator[tuple[str, int]]:
    yield from _server(tmp_path, "deep")


def _complete(url: str, max_tokens: int = 32) -> httpx.Response:
    body = {"prompt": "the GPU", "max_tokens": max_tokens}
    return httpx.post(f"{url}/v1/completions", json=body, timeout=60)


def test_poison_is_a_real_sticky_cuda_error(deep_server: tuple[str, int]) -> None:
    url, port = deep_server
    assert _complete(url).status_code == 200
    assert httpx.get(f"{url}/health/live", timeout=10).status_code == 200  # deep, healthy

    state = hookclient.call(port, TOKEN, {"kind": "poison", "xid": 79})

    assert state["poisoned"] and state["xid"] == 79
    for _ in range(3):  # sticky: every request after it fails the same way
        resp = _complete(url)
        assert resp.status_code == 500, resp.text
        assert "CUDA error" in resp.text
    print(f"poisoned answer: {resp.text[:200]}")
    live = httpx.get(f"{url}/health/live", timeout=10)
    assert live.status_code == 503 and "CUDA error" in live.text  # deep liveness fails
    failures = hookclient.metric_total(port, "gpuchaos_request_failures_total")
    assert failures is not None and failures >= 3
    # the process is still there and still answers HTTP: only a restart clears it
    assert httpx.get(f"{url}/metrics", timeout=10).status_code == 200
    assert hookclient.call(port, TOKEN, {"kind": "clear"})["poisoned"]


def test_throttle_stretches_steps_and_fails_nothing(deep_server: tuple[str, int]) -> None:
    url, port = deep_server

    def median_latency(n: int = 8) -> float:
        out = []
        for _ in range(n):
            t0 = time.perf_counter()
            assert _complete(url, 64).status_code == 200
            out.append(time.perf_counter() - t0)
        return statistics.median(out)

    median_latency(2)  # warm
    base = median_latency()
    hookclient.call(port, TOKEN, {"kind": "throttle", "factor": 4})
    slow = median_latency()
    hookclient.call(port, TOKEN, {"kind": "clear"})
    after = median_latency()
    print(f"median latency: {base * 1e3:.1f} ms, throttled x4 {slow * 1e3:.1f} ms, "
          f"cleared {after * 1e3:.1f} ms")  # fmt: skip
    assert slow > 2.0 * base  # 4x each step; HTTP and sampling overhead are not stretched
    assert after < slow / 1.5
