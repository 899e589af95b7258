"""NVML readings per GPU, when a GPU and its driver are present."""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger(__name__)


class Nvml:
    """Reads utilization, memory, power and temperature of every GPU. ``available`` is
    False on a machine without an NVIDIA driver (one notice, not an error)."""

    def __init__(self) -> None:
        self.available = False
        self._handles: list[Any] = []
        try:
            import pynvml

            pynvml.nvmlInit()
            count = pynvml.nvmlDeviceGetCount()
            self._handles = [pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(count)]
            self.available = count > 0
            self._nvml = pynvml
        except Exception as exc:  # NVMLError_LibraryNotFound and friends, at once
            log.info("NVML absent (%s): sampling CPU and memory with psutil only", exc)

    def sample(self) -> list[tuple[str, str, float]]:
        """(source, metric, value) rows for every GPU."""
        rows: list[tuple[str, str, float]] = []
        if not self.available:
            return rows
        nv = self._nvml
        for i, h in enumerate(self._handles):
            src = f"gpu{i}"
            try:
                util = nv.nvmlDeviceGetUtilizationRates(h)
                mem = nv.nvmlDeviceGetMemoryInfo(h)
                rows += [
                    (src, "utilization_pct", float(util.gpu)),
                    (src, "memory_used_mib", mem.used / 2**20),
                    (src, "memory_total_mib", mem.total / 2**20),
                    (src, "power_w", nv.nvmlDeviceGetPowerUsage(h) / 1000.0),
                    (src, "temperature_c", float(nv.nvmlDeviceGetTemperature(h, 0))),
                ]
            except Exception as exc:
                log.debug("NVML read of gpu%d failed: %s", i, exc)
        return rows

    def close(self) -> None:
        if self.available:
            try:
                self._nvml.nvmlShutdown()
            except Exception:
                log.debug("nvmlShutdown failed", exc_info=True)
