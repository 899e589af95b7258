"""Device resolution for virtual nodes, via NVML (never torch, to keep the harness light)."""

from __future__ import annotations

import logging
from functools import lru_cache

log = logging.getLogger(__name__)


@lru_cache(maxsize=1)
def gpu_count() -> int:
    """Number of GPUs NVML reports; 0 without a driver or GPU."""
    try:
        import pynvml
    except ImportError:
        return 0
    try:
        pynvml.nvmlInit()
    except Exception as exc:  # NVMLError_LibraryNotFound and friends: no GPU here
        log.debug("NVML unavailable: %s", exc)
        return 0
    try:
        count: int = pynvml.nvmlDeviceGetCount()
        return count
    except Exception as exc:
        log.debug("NVML device count failed: %s", exc)
        return 0
    finally:
        try:
            pynvml.nvmlShutdown()
        except Exception as exc:
            log.debug("NVML shutdown failed: %s", exc)


def resolve_device(device: str) -> str:
    """Turn a node's device setting into ``cpu`` or ``cuda:N``."""
    if device == "auto":
        return "cuda:0" if gpu_count() > 0 else "cpu"
    if device == "cuda":
        return "cuda:0"
    return device
