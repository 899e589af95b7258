"""``gpuchaos doctor``'s decisions on machines this one is not: NVML stood in for by a fake
module (GPUs with and without MIG, one whose memory is taken), torch builds that do and do
not fit the GPUs, an old Python, an unwritable state folder. The real run on this machine
is in tests/integration/test_doctor_run.py."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from harness.doctor import (
    NO_GPU,
    Check,
    check_nvml,
    check_python,
    check_state_dir,
    check_torch,
    read_nvml,
)

GIB = 2**30


class FakeNvml:
    """pynvml's calls the doctor makes, for a machine with ``gpus`` (name, free, total GiB,
    MIG: True, False or None for a GPU without MIG)."""

    def __init__(self, gpus: list[tuple[str, float, float, bool | None]]) -> None:
        self.gpus = gpus
        self.shut = False

    def nvmlInit(self) -> None:
        pass

    def nvmlShutdown(self) -> None:
        self.shut = True

    def nvmlSystemGetDriverVersion(self) -> bytes:
        return b"550.54.15"

    def nvmlSystemGetCudaDriverVersion(self) -> int:
        return 12040

    def nvmlDeviceGetCount(self) -> int:
        return len(self.gpus)

    def nvmlDeviceGetHandleByIndex(self, i: int) -> int:
        return i

    def nvmlDeviceGetName(self, h: int) -> str:
        return self.gpus[h][0]

    def nvmlDeviceGetMemoryInfo(self, h: int) -> Any:
        return SimpleNamespace(free=self.gpus[h][1] * GIB, total=self.gpus[h][2] * GIB)

    def nvmlDeviceGetMigMode(self, h: int) -> list[int]:
        mig = self.gpus[h][3]
        if mig is None:
            raise RuntimeError("NVML: Not Supported")
        return [int(mig), int(mig)]


def test_lines_and_statuses() -> None:
    assert Check("OK", "python", "3.11.7").line() == "OK   python: 3.11.7"
    assert Check("FAIL", "gpu", "no GPU", "fix it").line() == "FAIL gpu: no GPU — fix: fix it"
    assert Check("WARN", "chromium", "absent").line() == "WARN chromium: absent"
    assert check_python((3, 11, 2)).status == "OK"
    old = check_python((3, 10, 12))
    assert old.status == "FAIL" and old.fix == "use Python 3.11 or newer"


def test_a_gpu_machine_with_mig_and_a_busy_gpu() -> None:
    nvml = FakeNvml([("NVIDIA H200", 139.5, 140.0, False), ("NVIDIA A100", 10.0, 80.0, True)])
    info = read_nvml(nvml)
    assert nvml.shut and info.driver == "550.54.15" and info.cuda_driver == "12.4"
    lines = [c.line() for c in check_nvml(info, require_gpu=True)]
    assert lines[0] == "OK   nvml: driver 550.54.15, supports CUDA 12.4"
    assert lines[1] == "OK   gpu0: NVIDIA H200, 139.5 of 140.0 GiB free"
    assert lines[2].startswith("WARN gpu1: NVIDIA A100, 10.0 of 80.0 GiB free: other processes")
    assert lines[3].startswith("WARN mig: MIG enabled on gpu1: ")
    assert not any(NO_GPU in ln for ln in lines)
    # GPUs without MIG support: one OK line that says so
    plain = read_nvml(FakeNvml([("Tesla T4", 15.0, 15.0, None)]))
    assert check_nvml(plain, False)[-1].line() == "OK   mig: not supported by these GPUs"


def test_no_gpu_is_one_warn_unless_a_gpu_is_required() -> None:
    class NoDriver(FakeNvml):
        def nvmlInit(self) -> None:
            raise OSError("NVML Shared Library Not Found")

    info = read_nvml(NoDriver([]))
    assert info.error == "NVML Shared Library Not Found" and info.gpus == ()
    (warn,) = check_nvml(info, require_gpu=False)
    assert warn.line() == f"WARN gpu: {NO_GPU} (NVML: NVML Shared Library Not Found)"
    (fail,) = check_nvml(info, require_gpu=True)
    assert fail.status == "FAIL" and fail.detail.startswith("no GPU (NVML:") and fail.fix
    # a driver that sees no GPU (a container without --gpus)
    none = check_nvml(read_nvml(FakeNvml([])), require_gpu=False)
    assert [c.status for c in none] == ["OK", "WARN"] and NO_GPU in none[1].detail


CPU_TORCH = {"version": "2.13.0+cpu", "cuda_build": None, "cuda_available": False, "devices": 0}
CUDA_TORCH = {"version": "2.13.0", "cuda_build": "12.8", "cuda_available": True, "devices": 2}


@pytest.mark.parametrize(
    ("probe", "gpus", "require_gpu", "status", "says"),
    [
        (CPU_TORCH, 0, False, "OK", "2.13.0+cpu, CPU build"),
        (CPU_TORCH, 2, False, "FAIL", "CPU build on a machine with 2 GPU(s)"),
        (CPU_TORCH, 0, True, "FAIL", "CPU build on a runner that needs a GPU"),
        (CUDA_TORCH, 2, True, "OK", "2.13.0, CUDA 12.8 build, sees 2 GPU(s)"),
        ({**CUDA_TORCH, "cuda_available": False}, 2, False, "FAIL", "cannot use the GPUs"),
        (None, 0, False, "FAIL", "import torch failed: ModuleNotFoundError"),
    ],
)
def test_torch_build_against_the_gpus(
    probe: dict[str, Any] | None, gpus: int, require_gpu: bool, status: str, says: str
) -> None:
    check = check_torch(probe, "ModuleNotFoundError: No module named 'torch'", gpus, require_gpu)
    assert check.status == status and says in check.detail
    assert (check.fix is None) == (status == "OK")


def test_state_dir_writable_or_the_fix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GPUCHAOS_STATE_DIR", str(tmp_path / "state"))
    ok = check_state_dir()
    assert ok.line() == f"OK   state dir: {tmp_path / 'state' / 'faults'} is writable"
    assert list((tmp_path / "state" / "faults").iterdir()) == []  # the probe file is gone
    (tmp_path / "file").write_text("not a folder")
    monkeypatch.setenv("GPUCHAOS_STATE_DIR", str(tmp_path / "file"))
    bad = check_state_dir()
    assert bad.status == "FAIL" and bad.fix is not None and "GPUCHAOS_STATE_DIR" in bad.fix
