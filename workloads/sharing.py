"""How a replica shares its GPU with other tenants' processes (issue #20): the memory fraction
the caching allocator enforces, and whether a real MPS daemon serves this process.

Why here and not in the platform: a per-process memory cap on CUDA can only be set from
inside the process, before its first large allocation. ``--memory-fraction F`` calls
``torch.cuda.set_per_process_memory_fraction(F, device)`` before the model loads, so every
allocation of the process (weights, KV cache, activations, the fault hook's ``hog``) beyond
``F x total`` raises the real ``CUDA out of memory`` error. That is the stand-in for an MPS
client's memory limit, and for a virtual MIG slice's memory, where the GPU runs neither.
On CPU the flag is accepted and has no effect: the platform caps a CPU replica's address
space with RLIMIT_AS instead (a log line says so).

Real MPS: an MPS control daemon (``nvidia-cuda-mps-control -d``) listens on the pipe
``$CUDA_MPS_PIPE_DIRECTORY/control`` (default ``/tmp/nvidia-mps``); a client's memory limit
is ``CUDA_MPS_PINNED_DEVICE_MEM_LIMIT`` in its environment ("0=2G,1=512M": device ordinal =
limit), its compute share ``CUDA_MPS_ACTIVE_THREAD_PERCENTAGE``. The platform sets those in
the replica's environment; this module only reads them, to report what is in force on
``/metrics`` (``gpuchaos_mps_active``, ``gpuchaos_mps_memory_limit_bytes``).

Torch-free at import (the server binds its port before torch is imported).
"""

from __future__ import annotations

import logging
import os
import re
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)

MPS_PIPE_ENV = "CUDA_MPS_PIPE_DIRECTORY"
MPS_DEFAULT_PIPE_DIR = "/tmp/nvidia-mps"
MPS_MEM_LIMIT_ENV = "CUDA_MPS_PINNED_DEVICE_MEM_LIMIT"
MPS_THREADS_ENV = "CUDA_MPS_ACTIVE_THREAD_PERCENTAGE"

_UNITS = {"": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}
_LIMIT = re.compile(r"^\s*(\d+)\s*=\s*(\d+(?:\.\d+)?)\s*([KMGT]?)I?B?\s*$", re.IGNORECASE)


@dataclass(frozen=True)
class MpsStatus:
    """What this process can tell about MPS: a daemon's control pipe and its own limits."""

    active: bool
    pipe_dir: str
    #: This client's pinned device memory limit in bytes for its device (None: no limit set).
    memory_limit_bytes: int | None
    #: This client's share of the SMs in percent (None: not set).
    thread_percentage: float | None


def parse_memory_limit(value: str, ordinal: int) -> int | None:
    """The limit in bytes ``CUDA_MPS_PINNED_DEVICE_MEM_LIMIT`` (``"0=2G,1=512M"``) sets for
    device ``ordinal``; None when it sets none or the entry does not parse."""
    for entry in value.split(","):
        match = _LIMIT.match(entry)
        if match is None or int(match.group(1)) != ordinal:
            continue
        return int(float(match.group(2)) * _UNITS[match.group(3).upper()])
    return None


def device_ordinal(device: str) -> int:
    """``cuda:N`` -> N, ``cuda`` and ``cpu`` -> 0 (the ordinal MPS limits are keyed by)."""
    _, _, index = device.partition(":")
    return int(index) if index.isdigit() else 0


def mps_status(device: str, environ: Mapping[str, str] | None = None) -> MpsStatus:
    """Whether an MPS control daemon serves this process's GPU (its control pipe exists) and
    the limits the environment gives this client. Never raises."""
    env = os.environ if environ is None else environ
    pipe_dir = env.get(MPS_PIPE_ENV) or MPS_DEFAULT_PIPE_DIR
    try:
        active = device.startswith("cuda") and stat.S_ISFIFO(
            (Path(pipe_dir) / "control").stat().st_mode
        )
    except OSError:
        active = False
    limit = env.get(MPS_MEM_LIMIT_ENV)
    threads: float | None = None
    try:
        threads = float(env[MPS_THREADS_ENV]) if env.get(MPS_THREADS_ENV) else None
    except ValueError:
        threads = None
    return MpsStatus(
        active=active,
        pipe_dir=pipe_dir,
        memory_limit_bytes=parse_memory_limit(limit, device_ordinal(device)) if limit else None,
        thread_percentage=threads,
    )


def apply_memory_fraction(device: str, fraction: float | None) -> bool:
    """Cap this process's allocations on ``device`` at ``fraction`` of its memory (CUDA,
    before the model loads); True when a cap is now enforced. On CPU, or without a fraction,
    nothing happens (False)."""
    if fraction is None:
        return False
    if not 0 < fraction <= 1:
        raise ValueError(f"memory fraction must be in (0, 1], got {fraction}")
    if not device.startswith("cuda"):
        logger.info(
            "memory fraction %g has no effect on %s (the platform caps a CPU replica's "
            "address space with RLIMIT_AS instead)",
            fraction,
            device,
        )
        return False
    import torch

    dev = torch.device(device)
    torch.cuda.set_per_process_memory_fraction(fraction, dev)
    total = torch.cuda.get_device_properties(dev).total_memory
    logger.info(
        "memory fraction %g on %s: this process may allocate up to %.0f MiB of %.0f MiB",
        fraction,
        device,
        fraction * total / 2**20,
        total / 2**20,
    )
    return True


def log_mps(status: MpsStatus) -> None:
    """One line when an MPS daemon serves this process (and the limits it was given)."""
    if not status.active:
        return
    limit = status.memory_limit_bytes
    logger.info(
        "MPS control daemon found at %s: memory limit %s, active thread percentage %s",
        status.pipe_dir,
        "none" if limit is None else f"{limit / 2**20:.0f} MiB",
        "none" if status.thread_percentage is None else f"{status.thread_percentage:g}",
    )
