"""GPU faults on a real GPU: the warm hog takes the memory (mem_get_info and NVML agree) in
milliseconds and the workload on the same GPU sees out-of-memory; a matmul loop on the same
GPU slows the workload down; both are gone after the revert."""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

import httpx
import pytest

from harness.faults import injectors
from harness.platforms.local.autoscaler import scrape
from harness.telemetry.nvml import gpu_free_mib
from tests.support.ports import free_port
from tests.support.procs import running, wait_http_ready

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def on_demand_server(tmp_path: Path):  # type: ignore[no-untyped-def]
    """gpt2-small on cuda:0 with a KV cache that grows with the batch."""
    port = free_port()
    log = tmp_path / "server.log"
    with running(
        [sys.executable, "-m", "workloads.llm", "--host", "127.0.0.1", "--port", str(port),
         "--device", "cuda:0", "--model", "gpt2-small", "--replica-id", "gpu-0",
         "--kv-cache", "on-demand", "--max-batch-size", "64"],
        cwd=ROOT, log_path=log,
    ) as proc:  # fmt: skip
        url = f"http://127.0.0.1:{port}"
        wait_http_ready(
            proc, f"{url}/health/ready", timeout_s=180, name="CUDA server", log=log, interval_s=0.5
        )
        yield url, port


def test_warm_hog_takes_the_memory_and_the_workload_sees_oom(on_demand_server, tmp_path) -> None:  # type: ignore[no-untyped-def]
    url, port = on_demand_server
    hog = injectors.WorkerProcess("cuda:0", None, 300, tmp_path / "hog.log")
    print(f"hog warm-up (cold start) {hog.warm_s:.2f} s")
    fault = injectors.worker_fault("exhaust_gpu_memory", "cuda:0", [hog], ttl_s=120)
    try:
        reply = hog.request({"op": "fill", "leave_free_mib": 256})
        assert reply["ok"], reply
        print(
            f"hog took {reply['taken_mib'] / 1024:.1f} GiB in {reply['latency_s'] * 1e3:.1f} ms; "
            f"free after {reply['free_mib_after']:.0f} MiB"
        )
        assert reply["free_mib_after"] <= 256 + max(512, 0.02 * reply["total_mib"])
        nvml = gpu_free_mib("cuda:0")
        assert nvml is None or nvml <= 256 + max(512, 0.02 * reply["total_mib"])
        before = scrape(port).get("gpuchaos_oom_total", 0.0)
        body = {"prompt": " ".join(["memory"] * 900), "max_tokens": 100}
        statuses = [
            httpx.post(f"{url}/v1/completions", json=body, timeout=60).status_code for _ in range(4)
        ]
        after = scrape(port).get("gpuchaos_oom_total", 0.0)
        assert 503 in statuses or after > before, (statuses, before, after)
    finally:
        fault.revert()
    assert not hog.alive()
    resp = httpx.post(f"{url}/v1/completions", json={"prompt": "hi", "max_tokens": 8}, timeout=60)
    assert resp.status_code == 200  # the workload serves again once the memory is back


def _latencies(url: str, n: int = 20) -> list[float]:
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        r = httpx.post(f"{url}/v1/completions", json={"prompt": "hi", "max_tokens": 64}, timeout=60)
        assert r.status_code == 200
        out.append(time.perf_counter() - t0)
    return out


def test_matmul_loop_slows_the_workload(on_demand_server, tmp_path) -> None:  # type: ignore[no-untyped-def]
    url, _ = on_demand_server
    _latencies(url, 5)  # warm
    alone = statistics.median(_latencies(url))
    burner = injectors.WorkerProcess("cuda:0", None, 300, tmp_path / "burner.log")
    fault = injectors.worker_fault("contend_compute", "cuda:0", [burner], ttl_s=120)
    try:
        reply = burner.request({"op": "burn"})
        print(f"matmul loop running {reply['latency_s'] * 1e3:.1f} ms after the command")
        shared = statistics.median(_latencies(url))
    finally:
        fault.revert()
    print(f"median 64-token completion: alone {alone * 1e3:.1f} ms, shared {shared * 1e3:.1f} ms")
    assert shared > alone * 1.1
    assert not burner.alive()
