"""NVML readings per GPU, when a GPU and its driver are present.

Per GPU and sample: utilization, memory used and total, power, temperature, SM clock, the
clock throttle reasons (a bit mask, see :data:`THROTTLE_REASONS`), and the GPU memory of each
compute process (mapped to a replica id when the pid is one of the platform's replicas).
Critical NVML events (XID errors, ECC errors, power source changes) are registered on an
event set per GPU and polled with a zero timeout on every sample, so sampling never blocks.

On a machine without an NVIDIA driver ``available`` is False: one notice, not an error.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from types import ModuleType
from typing import Any

log = logging.getLogger(__name__)

#: NVML clock throttle reason bits (``nvmlClocksThrottleReason*``) and their names.
THROTTLE_REASONS: dict[int, str] = {
    0x1: "gpu_idle",
    0x2: "applications_clocks_setting",
    0x4: "sw_power_cap",
    0x8: "hw_slowdown",
    0x10: "sync_boost",
    0x20: "sw_thermal_slowdown",
    0x40: "hw_thermal_slowdown",
    0x80: "hw_power_brake_slowdown",
    0x100: "display_clock_setting",
}

#: NVML event types registered (``nvmlEventType*``) and the metric name they get.
EVENT_TYPES: dict[int, str] = {
    0x1: "ecc_single_bit",
    0x2: "ecc_double_bit",
    0x8: "xid",
    0x80: "power_source_change",
}

#: NVML_CLOCK_SM
_CLOCK_SM = 1


def throttle_names(mask: int) -> list[str]:
    """The names of the throttle reasons set in ``mask`` (``gpu_idle`` included)."""
    return [name for bit, name in THROTTLE_REASONS.items() if mask & bit]


def gpu_memory_mib(device: str) -> tuple[float, float] | None:
    """Free and total memory of a CUDA device in MiB from NVML; None without NVML or for
    the CPU.

    One reading, NVML opened and shut around it (a 9 us query, so callers that decide
    rarely, like the autoscaler placing a replica, need no sampler running).
    """
    if not device.startswith("cuda"):
        return None
    try:
        import pynvml

        pynvml.nvmlInit()
    except Exception:
        return None
    try:
        index = int(device.partition(":")[2] or 0)
        info = pynvml.nvmlDeviceGetMemoryInfo(pynvml.nvmlDeviceGetHandleByIndex(index))
        return float(info.free) / 2**20, float(info.total) / 2**20
    except Exception:
        return None
    finally:
        with contextlib.suppress(Exception):
            pynvml.nvmlShutdown()


def gpu_free_mib(device: str) -> float | None:
    """Free memory of a CUDA device in MiB (:func:`gpu_memory_mib`)."""
    found = gpu_memory_mib(device)
    return None if found is None else found[0]


@dataclass(frozen=True)
class GpuEvent:
    """One critical NVML event: ``kind`` is a value of :data:`EVENT_TYPES`; for ``xid``,
    ``data`` is the XID number."""

    time: float
    gpu: int
    kind: str
    data: int


class Nvml:
    """Reads every GPU through NVML. ``module`` replaces ``pynvml`` (tests)."""

    def __init__(self, module: ModuleType | Any | None = None) -> None:
        self.available = False
        self._handles: list[Any] = []
        self._event_sets: list[Any] = []
        self._nvml: Any = None
        self._failed_reads: set[tuple[int, str]] = set()
        try:
            if module is None:
                import pynvml as module  # type: ignore[no-redef]
            nv: Any = module
            nv.nvmlInit()
            count = nv.nvmlDeviceGetCount()
            self._handles = [nv.nvmlDeviceGetHandleByIndex(i) for i in range(count)]
            self._nvml = nv
            self.available = count > 0
        except Exception as exc:  # NVMLError_LibraryNotFound and friends, at once
            log.info("NVML absent (%s): sampling CPU and memory with psutil only", exc)
            return
        if not self.available:
            log.info("NVML found no GPU: sampling CPU and memory with psutil only")
            return
        self._register_events()

    @property
    def gpu_count(self) -> int:
        return len(self._handles) if self.available else 0

    def _register_events(self) -> None:
        nv = self._nvml
        wanted = sum(EVENT_TYPES)
        for i, h in enumerate(self._handles):
            try:
                es = nv.nvmlEventSetCreate()
                mask = wanted & int(nv.nvmlDeviceGetSupportedEventTypes(h))
                if mask:
                    nv.nvmlDeviceRegisterEvents(h, mask, es)
                self._event_sets.append(es)
            except Exception as exc:
                log.info("NVML events of gpu%d not available (%s); XIDs are not watched", i, exc)
                self._event_sets.append(None)

    def _read(self, i: int, what: str, fn: Any, *args: Any) -> Any:
        """One NVML query; a query this GPU does not support is logged once and skipped."""
        try:
            return fn(*args)
        except Exception as exc:
            if (i, what) not in self._failed_reads:
                self._failed_reads.add((i, what))
                log.info("NVML %s of gpu%d unavailable: %s", what, i, exc)
            return None

    def _throttle(self, i: int, h: Any) -> Any:
        nv = self._nvml
        fn = getattr(nv, "nvmlDeviceGetCurrentClocksEventReasons", None) or getattr(
            nv, "nvmlDeviceGetCurrentClocksThrottleReasons", None
        )
        return None if fn is None else self._read(i, "throttle reasons", fn, h)

    def sample(
        self, replica_of_pid: Mapping[int, str] | None = None
    ) -> list[tuple[str, str, float]]:
        """(source, metric, value) rows for every GPU and for each process on a GPU.

        Process rows: source is the replica id of the pid (``replica_of_pid``) or
        ``pid-<pid>`` for any other process; metric ``gpu<N>_memory_mib``.
        """
        rows: list[tuple[str, str, float]] = []
        if not self.available:
            return rows
        nv = self._nvml
        pids = replica_of_pid or {}
        for i, h in enumerate(self._handles):
            src = f"gpu{i}"
            util = self._read(i, "utilization", nv.nvmlDeviceGetUtilizationRates, h)
            if util is not None:
                rows.append((src, "utilization_pct", float(util.gpu)))
            mem = self._read(i, "memory", nv.nvmlDeviceGetMemoryInfo, h)
            if mem is not None:
                rows.append((src, "memory_used_mib", mem.used / 2**20))
                rows.append((src, "memory_total_mib", mem.total / 2**20))
            power = self._read(i, "power", nv.nvmlDeviceGetPowerUsage, h)
            if power is not None:
                rows.append((src, "power_w", power / 1000.0))
            temp = self._read(i, "temperature", nv.nvmlDeviceGetTemperature, h, 0)
            if temp is not None:
                rows.append((src, "temperature_c", float(temp)))
            clock = self._read(i, "SM clock", nv.nvmlDeviceGetClockInfo, h, _CLOCK_SM)
            if clock is not None:
                rows.append((src, "sm_clock_mhz", float(clock)))
            throttle = self._throttle(i, h)
            if throttle is not None:
                rows.append((src, "throttle_reasons", float(int(throttle))))
            procs = self._read(i, "processes", nv.nvmlDeviceGetComputeRunningProcesses, h)
            for proc in procs or []:
                used = getattr(proc, "usedGpuMemory", None)
                if used is None:
                    continue
                owner = pids.get(int(proc.pid), f"pid-{proc.pid}")
                rows.append((owner, f"{src}_memory_mib", used / 2**20))
        return rows

    def poll_events(self, now: float) -> list[GpuEvent]:
        """Critical events since the last poll, without blocking (zero timeout)."""
        events: list[GpuEvent] = []
        if not self.available:
            return events
        nv = self._nvml
        wait = getattr(nv, "nvmlEventSetWait_v2", None) or getattr(nv, "nvmlEventSetWait", None)
        if wait is None:
            return events
        for i, es in enumerate(self._event_sets):
            if es is None:
                continue
            for _ in range(64):  # drain, bounded
                try:
                    data = wait(es, 0)
                except Exception:  # NVMLError_Timeout: nothing pending
                    break
                kind = EVENT_TYPES.get(int(data.eventType), f"event_{int(data.eventType)}")
                event = GpuEvent(now, i, kind, int(data.eventData))
                log.warning("GPU event on gpu%d: %s %d", i, kind, event.data)
                events.append(event)
        return events

    def close(self) -> None:
        if not self.available:
            return
        for es in self._event_sets:
            if es is not None:
                try:
                    self._nvml.nvmlEventSetFree(es)
                except Exception:
                    log.debug("nvmlEventSetFree failed", exc_info=True)
        try:
            self._nvml.nvmlShutdown()
        except Exception:
            log.debug("nvmlShutdown failed", exc_info=True)
