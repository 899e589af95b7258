"""Multi-tenancy on a real GPU (issue #20): ``--memory-fraction`` (torch's per-process memory
fraction, the MPS stand-in) caps everything a server allocates, the fault hook's ``hog``
included: a hog above the cap is the real ``CUDA out of memory`` and the server serves on,
one below is taken. Two servers on one GPU under a fraction each cannot starve each other,
while a neighbour without a cap (time-slicing) can take the memory the other needed.

The servers run the tiny models without CUDA graphs (a quick start: what is tested is the
allocator's cap, not the model)."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from harness.errors import ChaosError
from harness.faults import hookclient
from tests.support.ports import free_port
from tests.support.procs import running, wait_http_ready

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "gpu-tenancy-token"
MIB = 2**20


def _total_mib() -> float:
    """GPU 0's memory in MiB from NVML (no CUDA context in the test process)."""
    import pynvml

    pynvml.nvmlInit()
    try:
        info = pynvml.nvmlDeviceGetMemoryInfo(pynvml.nvmlDeviceGetHandleByIndex(0))
        return float(info.total) / MIB
    finally:
        pynvml.nvmlShutdown()


@dataclass(frozen=True)
class Tenant:
    module: str
    port: int
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def hog(self, mib: float) -> dict[str, object]:
        return hookclient.call(self.port, TOKEN, {"kind": "hog", "mib": round(mib, 1)})

    def clear(self) -> dict[str, object]:
        return hookclient.call(self.port, TOKEN, {"kind": "clear"})

    def gauge(self, name: str) -> float:
        value = hookclient.metric_total(self.port, name)
        assert value is not None, f"{name} missing from /metrics"
        return value

    def serves(self) -> bool:
        if self.module == "workloads.llm":
            body: dict[str, object] = {"prompt": "tenant", "max_tokens": 8}
            resp = httpx.post(f"{self.url}/v1/completions", json=body, timeout=60)
        else:
            tensor = {"name": "input", "datatype": "FP32", "shape": [1, 3, 32, 32],
                      "data": [0.0] * (3 * 32 * 32)}  # fmt: skip
            resp = httpx.post(
                f"{self.url}/v2/models/classifier/infer", json={"inputs": [tensor]}, timeout=60
            )
        return resp.status_code == 200


def _start(stack: ExitStack, logs: Path, module: str, fraction: float | None) -> Tenant:
    port = free_port()
    log = logs / f"{module}-{port}.log"
    cmd = [
        sys.executable, "-m", module, "--host", "127.0.0.1", "--port", str(port),
        "--device", "cuda:0", "--model", "tiny", "--replica-id", f"tenant-{port}",
    ]  # fmt: skip
    if module == "workloads.llm":
        cmd.append("--no-cuda-graphs")
    if fraction is not None:
        cmd += ["--memory-fraction", str(fraction)]
    env = {**os.environ, "PYTHONUNBUFFERED": "1", hookclient.TOKEN_ENV: TOKEN}
    proc = stack.enter_context(running(cmd, cwd=ROOT, log_path=log, env=env))
    tenant = Tenant(module, port, log)
    wait_http_ready(proc, f"{tenant.url}/health/ready", timeout_s=180, name=module, log=log)
    return tenant


@pytest.fixture
def stack() -> Iterator[ExitStack]:
    with ExitStack() as s:
        yield s


def _refused(tenant: Tenant, mib: float) -> str:
    """Hog ``mib`` and expect the real CUDA OOM; the error the hook answered."""
    with pytest.raises(ChaosError, match="HTTP 507") as refused:
        tenant.hog(mib)
    assert "CUDA out of memory" in str(refused.value), refused.value
    state = hookclient.call(tenant.port, TOKEN)
    error = str(state["hog_error"])
    assert error.startswith("OutOfMemoryError: CUDA out of memory"), error
    return error


def test_a_memory_fraction_refuses_a_hog_above_it_and_serves_on(
    stack: ExitStack, tmp_path: Path
) -> None:
    total = _total_mib()
    server = _start(stack, tmp_path, "workloads.llm", 0.2)
    assert server.gauge("gpuchaos_memory_fraction") == pytest.approx(0.2)
    assert server.gauge("gpuchaos_memory_fraction_enforced") == 1
    assert server.serves()

    error = _refused(server, 0.3 * total)
    print(f"hog of {0.3 * total:.0f} MiB under a 0.2 fraction: {error[:200]}")
    assert server.serves()  # the refusal broke nothing
    assert httpx.get(f"{server.url}/health/ready", timeout=10).status_code == 200

    assert server.hog(0.1 * total)["hog_mib"] == pytest.approx(0.1 * total, abs=0.1)
    assert server.gauge("gpuchaos_fault_hog_bytes") >= 0.1 * total * MIB - MIB
    _refused(server, 0.15 * total)  # hogs add up: 25% in all is above the cap
    assert server.serves()
    assert server.clear()["hog_mib"] == 0
    # given back to the device, out of the caching allocator too
    assert server.gauge("gpuchaos_gpu_memory_reserved_bytes") < 0.05 * total * MIB


def test_two_tenants_under_a_fraction_each_do_not_starve_each_other(
    stack: ExitStack, tmp_path: Path
) -> None:
    total = _total_mib()
    a = _start(stack, tmp_path, "workloads.llm", 0.45)
    b = _start(stack, tmp_path, "workloads.classifier", 0.45)

    _refused(a, 0.7 * total)  # the noisy neighbour's spike stops at its own cap
    assert a.hog(0.4 * total)["hog_mib"] == pytest.approx(0.4 * total, abs=0.1)
    # with a holding 40% of the device, b still has its own share
    assert b.hog(0.4 * total)["hog_mib"] == pytest.approx(0.4 * total, abs=0.1)
    assert a.serves() and b.serves()
    a.clear()
    b.clear()


def test_without_a_cap_a_neighbour_starves_the_other(stack: ExitStack, tmp_path: Path) -> None:
    """Time-slicing: no per-process cap, one pool of device memory. The neighbour's spike is
    taken, and the other tenant's allocation within its own fraction fails for want of
    memory on the device (the failure mps and mig prevent)."""
    total = _total_mib()
    noisy = _start(stack, tmp_path, "workloads.llm", None)
    victim = _start(stack, tmp_path, "workloads.classifier", 0.45)
    assert noisy.gauge("gpuchaos_memory_fraction_enforced") == 0
    assert noisy.hog(0.7 * total)["hog_mib"] == pytest.approx(0.7 * total, abs=0.1)
    error = _refused(victim, 0.4 * total)  # within its 45%, but the device is full
    print(f"victim's hog of {0.4 * total:.0f} MiB beside a 70% neighbour: {error[:200]}")
    assert victim.serves() and noisy.serves()
    noisy.clear()
    assert victim.hog(0.4 * total)["hog_mib"] == pytest.approx(0.4 * total, abs=0.1)
    victim.clear()
