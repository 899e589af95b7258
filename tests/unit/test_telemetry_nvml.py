"""The NVML sampler against a fake pynvml (no GPU needed), and the /metrics parser."""

from __future__ import annotations

import logging
from types import SimpleNamespace
from typing import Any

import pytest

from harness.telemetry.nvml import EVENT_TYPES, Nvml, throttle_names
from harness.telemetry.sampler import parse_metrics

MIB = 2**20


class NoEvent(Exception):
    """Stands in for NVMLError_Timeout."""


class FakeNvml:
    """Two GPUs; gpu1 has no power reading; gpu0 has one XID pending."""

    def __init__(self) -> None:
        self.pending: dict[int, list[Any]] = {0: [SimpleNamespace(eventType=0x8, eventData=79)]}
        self.registered: dict[int, int] = {}
        self.waits: list[int] = []
        self.shut = False

    def nvmlInit(self) -> None:
        pass

    def nvmlDeviceGetCount(self) -> int:
        return 2

    def nvmlDeviceGetHandleByIndex(self, i: int) -> int:
        return i

    def nvmlDeviceGetUtilizationRates(self, h: int) -> Any:
        return SimpleNamespace(gpu=40 + h)

    def nvmlDeviceGetMemoryInfo(self, h: int) -> Any:
        return SimpleNamespace(used=(1000 + h) * MIB, total=80 * 1024 * MIB)

    def nvmlDeviceGetPowerUsage(self, h: int) -> int:
        if h == 1:
            raise RuntimeError("Not Supported")
        return 250_000

    def nvmlDeviceGetTemperature(self, h: int, sensor: int) -> int:
        return 55

    def nvmlDeviceGetClockInfo(self, h: int, clock: int) -> int:
        assert clock == 1  # SM
        return 1980

    def nvmlDeviceGetCurrentClocksThrottleReasons(self, h: int) -> int:
        return 0x4 | 0x40

    def nvmlDeviceGetComputeRunningProcesses(self, h: int) -> list[Any]:
        if h == 0:
            return [
                SimpleNamespace(pid=111, usedGpuMemory=600 * MIB),
                SimpleNamespace(pid=999, usedGpuMemory=300 * MIB),
                SimpleNamespace(pid=222, usedGpuMemory=None),
            ]
        return []

    def nvmlEventSetCreate(self) -> dict[str, int]:
        return {"set": len(self.registered)}

    def nvmlDeviceGetSupportedEventTypes(self, h: int) -> int:
        return 0xFFFF

    def nvmlDeviceRegisterEvents(self, h: int, mask: int, es: Any) -> None:
        self.registered[h] = mask
        es["gpu"] = h

    def nvmlEventSetWait_v2(self, es: Any, timeout_ms: int) -> Any:
        self.waits.append(timeout_ms)
        queue = self.pending.get(es["gpu"]) or []
        if not queue:
            raise NoEvent("Timeout")
        return queue.pop(0)

    def nvmlEventSetFree(self, es: Any) -> None:
        pass

    def nvmlShutdown(self) -> None:
        self.shut = True


def _rows(rows: list[tuple[str, str, float]]) -> dict[tuple[str, str], float]:
    return {(s, m): v for s, m, v in rows}


def test_sample_reads_every_gpu_figure_and_maps_processes_to_replicas() -> None:
    fake = FakeNvml()
    nv = Nvml(fake)
    assert nv.available and nv.gpu_count == 2
    rows = _rows(nv.sample({111: "node-a-0"}))
    assert rows[("gpu0", "utilization_pct")] == 40
    assert rows[("gpu1", "utilization_pct")] == 41
    assert rows[("gpu0", "memory_used_mib")] == 1000
    assert rows[("gpu0", "memory_total_mib")] == 80 * 1024
    assert rows[("gpu0", "power_w")] == 250.0
    assert ("gpu1", "power_w") not in rows  # unsupported: skipped, not an error
    assert rows[("gpu0", "temperature_c")] == 55
    assert rows[("gpu0", "sm_clock_mhz")] == 1980
    assert throttle_names(int(rows[("gpu0", "throttle_reasons")])) == [
        "sw_power_cap",
        "hw_thermal_slowdown",
    ]
    assert rows[("node-a-0", "gpu0_memory_mib")] == 600
    assert rows[("pid-999", "gpu0_memory_mib")] == 300  # a process that is no replica
    assert not any(s == "pid-222" for s, _ in rows)  # memory unknown: no row


def test_unsupported_read_is_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    nv = Nvml(FakeNvml())
    with caplog.at_level(logging.INFO, logger="harness.telemetry.nvml"):
        for _ in range(3):
            nv.sample()
    assert sum("power of gpu1" in r.getMessage() for r in caplog.records) == 1


def test_events_are_registered_and_polled_without_blocking() -> None:
    fake = FakeNvml()
    nv = Nvml(fake)
    assert fake.registered[0] == sum(EVENT_TYPES)
    events = nv.poll_events(123.0)
    assert [(e.gpu, e.kind, e.data, e.time) for e in events] == [(0, "xid", 79, 123.0)]
    assert set(fake.waits) == {0}  # zero timeout: never blocks
    assert nv.poll_events(124.0) == []
    nv.close()
    assert fake.shut


def test_event_registration_refused_is_a_notice(caplog: pytest.LogCaptureFixture) -> None:
    fake = FakeNvml()

    def refuse(h: int, mask: int, es: Any) -> None:
        raise RuntimeError("Insufficient Permissions")

    fake.nvmlDeviceRegisterEvents = refuse  # type: ignore[method-assign]
    with caplog.at_level(logging.INFO, logger="harness.telemetry.nvml"):
        nv = Nvml(fake)
    assert nv.available
    assert nv.poll_events(1.0) == []
    assert any("XIDs are not watched" in r.getMessage() for r in caplog.records)


def test_absent_nvml_is_one_notice_not_an_error(caplog: pytest.LogCaptureFixture) -> None:
    class Missing:
        def nvmlInit(self) -> None:
            raise OSError("NVML Shared Library Not Found")

    with caplog.at_level(logging.DEBUG, logger="harness.telemetry.nvml"):
        nv = Nvml(Missing())
        assert nv.sample({1: "x"}) == []
        assert nv.poll_events(1.0) == []
        nv.close()
    assert not nv.available
    notices = [r for r in caplog.records if "NVML absent" in r.getMessage()]
    assert len(notices) == 1 and notices[0].levelno == logging.INFO
    assert not any(r.levelno >= logging.WARNING for r in caplog.records)


def test_parse_metrics_reads_queue_running_kv_cache_and_ooms() -> None:
    body = """# HELP vllm:num_requests_waiting Requests queued.
# TYPE vllm:num_requests_waiting gauge
vllm:num_requests_waiting{model_name="tiny"} 3.0
vllm:num_requests_running{model_name="tiny"} 8.0
vllm:gpu_cache_usage_perc{model_name="tiny label, with space"} 0.25
gpuchaos_oom_total 2.0
gpuchaos_oom_created 1.7e+09
vllm:time_to_first_token_seconds_bucket{le="0.1",model_name="tiny"} 5.0
"""
    assert parse_metrics(body) == {
        "queue_waiting": 3.0,
        "running": 8.0,
        "kv_cache_usage": 0.25,
        "oom_total": 2.0,
    }


def test_parse_metrics_sums_labelled_series_and_skips_garbage() -> None:
    body = (
        'vllm:num_requests_waiting{a="1"} 1\n'
        'vllm:num_requests_waiting{a="2"} 2\n'
        "vllm:num_requests_running x\n"
    )
    assert parse_metrics(body) == {"queue_waiting": 3.0}
