"""The NVML sampler on a real GPU while a torch process holds memory (skipped without CUDA)."""

from __future__ import annotations

import subprocess
import sys
import time

from harness.telemetry.nvml import Nvml
from tests.support.procs import Processes

HOLD_MIB = 2048

HOLDER = f"""
import sys, time, torch
x = torch.empty({HOLD_MIB} * 2**20, dtype=torch.uint8, device="cuda:0")
x.fill_(1)
torch.cuda.synchronize()
print("held", flush=True)
sys.stdin.readline()
"""


def test_nvml_sees_a_process_holding_gpu_memory(processes: Processes) -> None:
    nv = Nvml()
    assert nv.available and nv.gpu_count >= 1
    before = {(s, m): v for s, m, v in nv.sample()}
    proc = processes.start(
        [sys.executable, "-c", HOLDER],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
        rows: dict[tuple[str, str], float] = {}
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            rows = {(s, m): v for s, m, v in nv.sample({proc.pid: "holder-0"})}
            if ("holder-0", "gpu0_memory_mib") in rows:
                break
            time.sleep(0.2)
        for metric in (
            "utilization_pct",
            "memory_used_mib",
            "memory_total_mib",
            "temperature_c",
            "sm_clock_mhz",
            "throttle_reasons",
        ):
            assert ("gpu0", metric) in rows, metric
        # the holder's memory is mapped to its replica id, and the GPU's used memory grew
        assert rows[("holder-0", "gpu0_memory_mib")] >= HOLD_MIB
        grown = rows[("gpu0", "memory_used_mib")] - before[("gpu0", "memory_used_mib")]
        assert grown >= HOLD_MIB * 0.9
        assert nv.poll_events(time.time()) == []  # polls without blocking; no XID expected
    finally:
        if proc.stdin is not None:
            proc.stdin.close()
        proc.wait(timeout=30)
        nv.close()
