"""Device resolution for virtual nodes and the MIG devices of a GPU, via NVML (never torch, to
keep the harness light)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

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


@dataclass(frozen=True)
class MigDevice:
    """One MIG device (a GPU instance's compute instance) of a GPU in MIG mode."""

    #: The GPU it is a slice of (NVML index) and its index among that GPU's MIG devices.
    gpu_index: int
    index: int
    #: NVML's UUID of the slice, ``MIG-<uuid>`` on current drivers.
    uuid: str
    memory_mib: float

    @property
    def cuda_visible_devices(self) -> str:
        """What ``CUDA_VISIBLE_DEVICES`` takes to give a process this slice alone."""
        return self.uuid if self.uuid.startswith("MIG-") else f"MIG-{self.uuid}"


def mig_devices(gpu_index: int = 0) -> list[MigDevice]:
    """The MIG devices of GPU ``gpu_index`` through NVML, so the platform can pin each slice's
    replicas with ``CUDA_VISIBLE_DEVICES=MIG-<uuid>``. Empty when NVML is missing (no driver,
    no GPU: ``nvmlInit`` fails at once), when the GPU has no MIG (NotSupported) or MIG mode is
    off, or when no instances were created; never raises.

    Why NVML and not torch: the harness stays light (no torch import), and torch sees only
    the devices ``CUDA_VISIBLE_DEVICES`` already selected.
    """
    try:
        import pynvml
    except ImportError:
        return []
    try:
        pynvml.nvmlInit()
    except Exception as exc:  # NVMLError_LibraryNotFound, DriverNotLoaded: no GPU here
        log.debug("NVML unavailable: %s", exc)
        return []
    try:
        return _mig_devices(pynvml, gpu_index)
    except Exception as exc:  # NotSupported (no MIG on this GPU), InvalidArgument, ...
        log.debug("NVML: no MIG devices on GPU %d: %s", gpu_index, exc)
        return []
    finally:
        try:
            pynvml.nvmlShutdown()
        except Exception as exc:
            log.debug("NVML shutdown failed: %s", exc)


def _mig_devices(nvml: Any, gpu_index: int) -> list[MigDevice]:
    handle = nvml.nvmlDeviceGetHandleByIndex(gpu_index)
    current, _pending = nvml.nvmlDeviceGetMigMode(handle)
    if current != nvml.NVML_DEVICE_MIG_ENABLE:
        return []
    out: list[MigDevice] = []
    for i in range(int(nvml.nvmlDeviceGetMaxMigDeviceCount(handle))):
        try:
            mig = nvml.nvmlDeviceGetMigDeviceHandleByIndex(handle, i)
        except nvml.NVMLError_NotFound:  # an empty slot: no instance there
            continue
        uuid = nvml.nvmlDeviceGetUUID(mig)
        if isinstance(uuid, bytes):  # older nvidia-ml-py answers bytes
            uuid = uuid.decode()
        memory = nvml.nvmlDeviceGetMemoryInfo(mig)
        out.append(MigDevice(gpu_index, len(out), str(uuid), float(memory.total) / 2**20))
    return out
