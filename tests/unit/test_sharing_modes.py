"""`gpuchaos list` says, for each sharing mode, whether this machine runs it for real or as a
stand-in, and which tenancy experiments use which mode."""

from __future__ import annotations

import pytest

from harness.cli import main
from harness.platforms.local.sharing_modes import Machine, mode_lines, modes_block, mps_env


def test_without_a_gpu_every_mode_is_a_stand_in() -> None:
    lines = dict(mode_lines(Machine(gpus=0, mig=False, mps=False)))
    assert list(lines) == ["exclusive", "time-slicing", "mps", "mig"]
    assert all(how.startswith("stand-in (no GPU)") for how in lines.values())
    assert "one memory pool" in lines["time-slicing"] and "RLIMIT_AS" in lines["mps"]


@pytest.mark.parametrize(("mig", "mps"), [(False, False), (True, True)])
def test_on_a_gpu_mig_and_mps_are_real_only_when_the_gpu_offers_them(mig: bool, mps: bool) -> None:
    lines = dict(mode_lines(Machine(gpus=1, mig=mig, mps=mps)))
    assert lines["exclusive"].startswith("real") and lines["time-slicing"].startswith("real")
    assert lines["mig"].startswith("real" if mig else "stand-in (GPU not in MIG mode)")
    assert lines["mps"].startswith("real" if mps else "stand-in (no MPS daemon)")


def test_the_block_marks_each_experiments_default_mode() -> None:
    block = modes_block({"noisy": "mig", "other": "mig"}, Machine(0, False, False))
    [mig] = [line for line in block.splitlines() if line.strip().startswith("mig")]
    assert mig.endswith("[default of noisy, other]")
    assert "no GPU" in block.splitlines()[0]


def test_list_prints_the_modes_below_a_catalog_with_a_tenancy_experiment(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "sharing modes of tenancy experiments on this machine" in out
    [line] = [x for x in out.splitlines() if "[default of multi-tenant-noisy-neighbour]" in x]
    assert line.split()[0] == "time-slicing"


def test_a_real_mps_daemon_gets_the_cap_as_its_per_client_limit() -> None:
    assert mps_env("cuda:1", 1536.0, daemon=True) == {"CUDA_MPS_PINNED_DEVICE_MEM_LIMIT": "1=1536M"}
    assert mps_env("cuda", 512.0, daemon=True) == {"CUDA_MPS_PINNED_DEVICE_MEM_LIMIT": "0=512M"}
    assert mps_env("cuda:0", 512.0, daemon=False) == {}  # no daemon: the memory fraction
    assert mps_env("cpu", 512.0, daemon=True) == {}
    assert mps_env("cuda:0", None, daemon=True) == {}
