"""``gpuchaos doctor``: is this machine ready to run gpuchaos (a new CI runner, a laptop)?

One line per check, ``OK``, ``WARN`` (optional or degraded: runs still work) or ``FAIL``
(a run would fail or measure the wrong thing; the line says the fix). Exit 0 when nothing
failed, 1 when something did: unlike ``gpuchaos run``, 1 here means "a problem on this
runner", not a missed SLO. On a machine without a GPU, the missing GPU is one WARN (runs
use the CPU stand-ins) unless ``--gpu`` says this runner must have one.

Why subprocesses: torch is never imported into the harness process (its import takes
seconds and the workloads import it in their own), and Locust must not be imported next to
the harness (gevent's monkey-patching). CPU pinning is tried on a child, the way the local
platform pins replicas.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

log = logging.getLogger(__name__)

Status = Literal["OK", "WARN", "FAIL"]

#: The Python the package requires (pyproject's requires-python).
MIN_PYTHON = (3, 11)
#: How long a probe subprocess (import torch, import locust) may take on a busy machine.
PROBE_TIMEOUT_S = 180.0
#: Below this share of a GPU's memory free, something else holds it: memory faults and
#: the workload would see less than the card has.
LOW_FREE_SHARE = 0.5
#: CPUs the catalog's local experiments pin replicas to (node-a on 0, node-b on 1).
CATALOG_CPUS = 2
NO_GPU = "no GPU: runs use the CPU stand-ins"

_TORCH_PROBE = """
import json, torch
cuda = torch.cuda.is_available()
print(json.dumps({
    "version": torch.__version__,
    "cuda_build": torch.version.cuda,
    "cuda_available": cuda,
    "devices": torch.cuda.device_count() if cuda else 0,
}))
"""
_LOCUST_PROBE = "import locust; print(locust.__version__)"


@dataclass(frozen=True)
class Check:
    """One line of the doctor's report."""

    status: Status
    name: str
    detail: str
    fix: str | None = None

    def line(self) -> str:
        fix = f" — fix: {self.fix}" if self.fix else ""
        return f"{self.status:<4} {self.name}: {self.detail}{fix}"


@dataclass(frozen=True)
class Gpu:
    index: int
    name: str
    free_mib: float
    total_mib: float
    mig: bool | None  # None: MIG not supported by this GPU


@dataclass(frozen=True)
class NvmlInfo:
    """What NVML says about the machine; ``error`` when NVML could not be used."""

    driver: str | None = None
    cuda_driver: str | None = None  # the newest CUDA the driver supports, e.g. "12.4"
    gpus: tuple[Gpu, ...] = ()
    error: str | None = None


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def read_nvml(nvml: Any | None = None) -> NvmlInfo:
    """The driver, its CUDA version and every GPU with its free memory and MIG mode.
    ``nvml`` replaces the ``pynvml`` module (tests)."""
    try:
        if nvml is None:
            import pynvml

            nvml = pynvml
        nvml.nvmlInit()
    except Exception as exc:
        return NvmlInfo(error=str(exc) or type(exc).__name__)
    try:
        driver = _text(nvml.nvmlSystemGetDriverVersion())
        cuda: str | None = None
        with contextlib.suppress(Exception):
            v = int(nvml.nvmlSystemGetCudaDriverVersion())
            cuda = f"{v // 1000}.{v % 1000 // 10}"
        gpus = []
        for i in range(int(nvml.nvmlDeviceGetCount())):
            h = nvml.nvmlDeviceGetHandleByIndex(i)
            mem = nvml.nvmlDeviceGetMemoryInfo(h)
            mig: bool | None = None
            with contextlib.suppress(Exception):  # NotSupported on GPUs without MIG
                mig = bool(nvml.nvmlDeviceGetMigMode(h)[0])
            name = _text(nvml.nvmlDeviceGetName(h))
            gpus.append(Gpu(i, name, mem.free / 2**20, mem.total / 2**20, mig))
        return NvmlInfo(driver=driver, cuda_driver=cuda, gpus=tuple(gpus))
    except Exception as exc:
        return NvmlInfo(error=str(exc) or type(exc).__name__)
    finally:
        with contextlib.suppress(Exception):
            nvml.nvmlShutdown()


def check_python(version: tuple[int, ...] = tuple(sys.version_info[:3])) -> Check:
    text = ".".join(map(str, version))
    if version[:2] < MIN_PYTHON:
        need = ".".join(map(str, MIN_PYTHON))
        return Check("FAIL", "python", f"{text} ({sys.executable})", f"use Python {need} or newer")
    return Check("OK", "python", f"{text} ({sys.executable})")


def check_nvml(info: NvmlInfo, require_gpu: bool) -> list[Check]:
    """The driver line, then one line per GPU and the MIG line; one line when there is none."""
    fix_driver = "install the NVIDIA driver (nvidia-smi must work) on this runner"
    if info.error is not None:
        if require_gpu:
            return [Check("FAIL", "gpu", f"no GPU (NVML: {info.error})", fix_driver)]
        return [Check("WARN", "gpu", f"{NO_GPU} (NVML: {info.error})")]
    cuda = f", supports CUDA {info.cuda_driver}" if info.cuda_driver else ""
    out = [Check("OK", "nvml", f"driver {info.driver}{cuda}")]
    if not info.gpus:
        if require_gpu:
            fix = "check nvidia-smi and the container's GPU access (--gpus all)"
            return [*out, Check("FAIL", "gpu", "no GPU (the driver sees none)", fix)]
        return [*out, Check("WARN", "gpu", f"{NO_GPU} (the driver sees none)")]
    for gpu in info.gpus:
        free = f"{gpu.free_mib / 1024:.1f} of {gpu.total_mib / 1024:.1f} GiB free"
        name = f"gpu{gpu.index}"
        if gpu.total_mib > 0 and gpu.free_mib < LOW_FREE_SHARE * gpu.total_mib:
            out.append(
                Check(
                    "WARN",
                    name,
                    f"{gpu.name}, {free}: other processes hold its memory",
                    "stop them (nvidia-smi lists them): the workload and memory faults "
                    "would see less than the card has",
                )
            )
        else:
            out.append(Check("OK", name, f"{gpu.name}, {free}"))
    on = [f"gpu{g.index}" for g in info.gpus if g.mig]
    if on:
        out.append(
            Check(
                "WARN",
                "mig",
                f"MIG enabled on {', '.join(on)}: the local platform places replicas by GPU "
                "index, not on MIG instances",
                "nvidia-smi -i N -mig 0 for whole-GPU runs, or use the kubernetes platform",
            )
        )
    else:
        known = [g for g in info.gpus if g.mig is not None]
        out.append(Check("OK", "mig", "off" if known else "not supported by these GPUs"))
    return out


def check_torch(
    probe: dict[str, Any] | None, error: str | None, gpus: int, require_gpu: bool = False
) -> Check:
    """torch's build against the GPUs NVML sees: a CPU build, or a CUDA build the driver
    cannot run, on a GPU machine (or with ``--gpu``) fails; a CPU build on a CPU machine is
    right."""
    if probe is None:
        return Check(
            "FAIL",
            "torch",
            f"import torch failed: {error}",
            f"{sys.executable} -m pip install torch (make install does it)",
        )
    version, build = probe.get("version"), probe.get("cuda_build")
    if build is None:
        if gpus or require_gpu:
            where = f"a machine with {gpus} GPU(s)" if gpus else "a runner that needs a GPU"
            return Check(
                "FAIL",
                "torch",
                f"{version} is a CPU build on {where}",
                f"{sys.executable} -m pip install --force-reinstall torch (PyPI's Linux "
                "torch is a CUDA build)",
            )
        return Check("OK", "torch", f"{version}, CPU build")
    if (gpus or require_gpu) and not probe.get("cuda_available"):
        return Check(
            "FAIL",
            "torch",
            f"{version} (CUDA {build}) cannot use the GPUs: torch.cuda.is_available() is False",
            "a driver that supports this CUDA, or a torch build for the driver's CUDA "
            "(https://pytorch.org/get-started/locally/); check CUDA_VISIBLE_DEVICES",
        )
    seen = f", sees {probe.get('devices')} GPU(s)" if probe.get("cuda_available") else ""
    return Check("OK", "torch", f"{version}, CUDA {build} build{seen}")


def _start_probe(code: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", code],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        errors="replace",
    )


def _finish_probe(proc: subprocess.Popen[str], timeout_s: float) -> tuple[str | None, str]:
    """(stdout, "") on success, (None, the reason) on an error or a time-out."""
    try:
        out, err = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        return None, f"no answer within {timeout_s:g} s"
    if proc.returncode != 0:
        lines = [ln for ln in err.splitlines() if ln.strip()]
        return None, (lines[-1] if lines else f"exit {proc.returncode}")[:200]
    return out.strip(), ""


def check_locust(out: str | None, error: str) -> Check:
    if out is None:
        return Check(
            "FAIL",
            "locust",
            f"import locust failed: {error}",
            f"{sys.executable} -m pip install -e . (it installs locust)",
        )
    return Check("OK", "locust", f"{out} (imported in a subprocess)")


def check_pinning() -> Check:
    """Pin a child to each of the first CPUs this process may use, as replicas are."""
    from harness.procs import die_with_parent

    allowed = sorted(os.sched_getaffinity(0))
    tried = allowed[:CATALOG_CPUS]
    for cpu in tried:
        try:
            proc = subprocess.run(
                [sys.executable, "-c", "import os; print(sorted(os.sched_getaffinity(0)))"],
                preexec_fn=die_with_parent(os.getpid(), {cpu}),
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
        except (OSError, subprocess.SubprocessError) as exc:
            return Check("FAIL", "cpu pinning", f"CPU {cpu}: {exc}", _PIN_FIX)
        if proc.returncode != 0 or proc.stdout.strip() != f"[{cpu}]":
            got = proc.stdout.strip() or proc.stderr.strip()[-150:]
            return Check("FAIL", "cpu pinning", f"a child pinned to CPU {cpu} got {got}", _PIN_FIX)
    detail = f"children pinned to CPU {', '.join(map(str, tried))}; {len(allowed)} CPU(s) usable"
    if len(allowed) < CATALOG_CPUS:
        return Check(
            "WARN",
            "cpu pinning",
            detail + ": the catalog's local experiments pin to CPUs 0 and 1",
            "give the runner 2 or more CPUs, or set the nodes' cpus in your experiments",
        )
    return Check("OK", "cpu pinning", detail)


_PIN_FIX = "allow sched_setaffinity (container seccomp/cgroup cpuset) or drop cpus: from nodes"


def check_state_dir() -> Check:
    """Fault reverters keep their state here; an unwritable folder means no fault at all."""
    from harness.faults.state import state_dir

    fix = "set GPUCHAOS_STATE_DIR to a folder this user can write"
    try:
        path = state_dir()
        probe = path / f".doctor-{os.getpid()}"
        probe.write_text("ok", encoding="utf-8")
        probe.unlink()
    except OSError as exc:
        return Check("FAIL", "state dir", f"{exc}", fix)
    return Check("OK", "state dir", f"{path} is writable")


def check_loopback() -> Check:
    """Replicas, the router and Locust talk over 127.0.0.1 on ephemeral ports."""
    try:
        with socket.socket() as server, socket.socket() as client:
            server.bind(("127.0.0.1", 0))
            server.listen(1)
            port = server.getsockname()[1]
            client.settimeout(5)
            client.connect(("127.0.0.1", port))
    except OSError as exc:
        return Check("FAIL", "loopback", f"127.0.0.1: {exc}", "enable the loopback interface (lo)")
    return Check("OK", "loopback", f"bound and connected to 127.0.0.1:{port}")


def check_chromium() -> Check:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        found = shutil.which(name)
        if found:
            return Check("OK", "chromium", f"{found} (optional: report.html in a browser)")
    return Check(
        "WARN",
        "chromium",
        "not found (optional: to check report.html in a browser; reports are written anyway)",
        "apt-get install -y chromium",
    )


def run_checks(require_gpu: bool, nvml: Any | None = None) -> list[Check]:
    """Every check, in the order printed. The probes (torch, Locust) run side by side."""
    torch_proc = _start_probe(_TORCH_PROBE)
    locust_proc = _start_probe(_LOCUST_PROBE)
    info = read_nvml(nvml)
    checks = [check_python(), *check_nvml(info, require_gpu)]
    out, err = _finish_probe(torch_proc, PROBE_TIMEOUT_S)
    probe: dict[str, Any] | None = None
    if out is not None:
        try:
            probe = json.loads(out.splitlines()[-1])
        except (ValueError, IndexError):
            err = f"unexpected answer {out[-100:]!r}"
    checks.insert(1, check_torch(probe, err, len(info.gpus), require_gpu))
    steps: list[Callable[[], Check]] = [check_pinning, check_state_dir, check_loopback]
    checks += [step() for step in steps]
    checks.append(check_locust(*_finish_probe(locust_proc, PROBE_TIMEOUT_S)))
    checks.append(check_chromium())
    return checks


def cmd_doctor(args: argparse.Namespace) -> int:
    checks = run_checks(require_gpu=args.gpu)
    for check in checks:
        print(check.line())
    fails = sum(c.status == "FAIL" for c in checks)
    warns = sum(c.status == "WARN" for c in checks)
    verdict = "ready" if not fails else "not ready"
    print(f"gpuchaos doctor: {verdict}: {fails} problem(s), {warns} warning(s)")
    return 1 if fails else 0


def add_command(sub: argparse._SubParsersAction) -> None:
    doctor = sub.add_parser(
        "doctor",
        help="check this machine (a new GPU runner): Python, torch, driver, GPUs, pinning, ports",
        description="One line per check: OK, WARN (optional or degraded) or FAIL with the "
        "fix. Exit 0: no FAIL; exit 1: a problem on this runner (not a missed SLO); 2: the "
        "doctor itself could not run.",
    )
    doctor.add_argument(
        "--gpu",
        action="store_true",
        help="this runner must have a usable GPU: no GPU (or a CPU-only torch) is a FAIL",
    )
    doctor.set_defaults(func=cmd_doctor)
