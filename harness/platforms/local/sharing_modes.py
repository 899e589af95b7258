"""Which sharing modes are real on this machine and which are stand-ins, in one line each.

Why: a multi-tenancy result means something different when the isolation was NVIDIA's (MIG
slices, an MPS daemon's per-client limit) than when it was emulated (pinned cores and
address-space limits on CPU, torch's per-process memory fraction on a GPU without MPS or
MIG). ``gpuchaos list`` prints these lines below the catalog, and the docs say the same.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from harness.platforms.local.devices import gpu_count, mig_devices

#: Where the MPS control daemon's pipe is when CUDA_MPS_PIPE_DIRECTORY is unset.
DEFAULT_MPS_PIPE_DIR = "/tmp/nvidia-mps"


@dataclass(frozen=True)
class Machine:
    """What decides real or stand-in: GPUs, a GPU in MIG mode, a running MPS daemon."""

    gpus: int
    mig: bool
    mps: bool


def mps_daemon_running() -> bool:
    """Whether an MPS control daemon is up (its control pipe exists)."""
    pipe = Path(os.environ.get("CUDA_MPS_PIPE_DIRECTORY") or DEFAULT_MPS_PIPE_DIR) / "control"
    return pipe.exists()


def this_machine() -> Machine:
    """This machine's answer (NVML for GPUs and MIG; the MPS daemon's control pipe)."""
    gpus = gpu_count()
    return Machine(gpus, bool(gpus and mig_devices(0)), bool(gpus and mps_daemon_running()))


def mps_env(device: str, cap_mib: float | None, daemon: bool) -> dict[str, str]:
    """The environment of an mps replica: with an MPS daemon on a CUDA device, the real
    per-client limit (``CUDA_MPS_PINNED_DEVICE_MEM_LIMIT``, ``<ordinal>=<MiB>M``), which the
    driver enforces on the client's context; else nothing (the server's memory fraction)."""
    if not daemon or cap_mib is None or not device.startswith("cuda"):
        return {}
    ordinal = device.partition(":")[2] or "0"
    return {"CUDA_MPS_PINNED_DEVICE_MEM_LIMIT": f"{ordinal}={max(1, int(cap_mib))}M"}


def mode_lines(machine: Machine) -> list[tuple[str, str]]:
    """(mode, how it is realised here) for each sharing mode, real or stand-in."""
    if not machine.gpus:
        return [
            ("exclusive", "stand-in (no GPU): a pool node's cores and its own RLIMIT_AS per "
             "replica"),
            ("time-slicing", "stand-in (no GPU): shared cores; one memory pool per node, a "
             "spike lowers every co-resident replica's RLIMIT_AS"),
            ("mps", "stand-in (no GPU): shared cores; a per-replica memory cap as a soft "
             "RLIMIT_AS set when it is Ready"),
            ("mig", "stand-in (no GPU): fixed virtual slices, each with its own cores (a core "
             "per slice) and its own RLIMIT_AS"),
        ]  # fmt: skip
    mps = (
        "real: the MPS daemon's per-client limit (CUDA_MPS_PINNED_DEVICE_MEM_LIMIT)"
        if machine.mps
        else "stand-in (no MPS daemon): torch's per-process memory fraction on a shared GPU"
    )
    mig = (
        "real: MIG devices (CUDA_VISIBLE_DEVICES=MIG-<uuid>), one per slice"
        if machine.mig
        else "stand-in (GPU not in MIG mode): virtual slices, each a memory fraction of the GPU"
    )
    return [
        ("exclusive", "real: a GPU per replica"),
        ("time-slicing", "real: CUDA contexts time-sliced on one GPU, one memory pool"),
        ("mps", mps),
        ("mig", mig),
    ]


def modes_block(used: dict[str, str], machine: Machine | None = None) -> str:
    """The lines ``gpuchaos list`` prints: each mode, real or stand-in here, and which listed
    experiments run tenants under it (``used``: experiment -> its default mode)."""
    found = this_machine() if machine is None else machine
    where = "no GPU" if not found.gpus else f"{found.gpus} GPU(s)"
    lines = [f"sharing modes of tenancy experiments on this machine ({where}):"]
    for mode, how in mode_lines(found):
        users = sorted(name for name, m in used.items() if m == mode)
        suffix = f"  [default of {', '.join(users)}]" if users else ""
        lines.append(f"  {mode:<13} {how}{suffix}")
    return "\n".join(lines)
