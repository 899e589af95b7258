"""``gpuchaos doctor`` for real on this machine: torch and Locust imported in subprocesses,
a child pinned to each CPU, a loopback port, the state folder. CI machines have no GPU: the
doctor says so in one WARN line and exits 0; with ``--gpu`` that line fails and it exits 1."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from harness.cli import main
from harness.doctor import read_nvml

LINE = re.compile(r"^(OK  |WARN|FAIL) [a-z0-9 ]+: \S")


@pytest.fixture(autouse=True)
def _state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GPUCHAOS_STATE_DIR", str(tmp_path / "state"))


@pytest.fixture(scope="module", autouse=True)
def _no_gpu_here() -> None:
    if read_nvml().gpus:
        pytest.skip("this machine has a GPU: the no-GPU lines are for CPU machines")


def _doctor(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, list[str]]:
    code = main(["doctor", *args])
    return code, capsys.readouterr().out.splitlines()


def test_doctor_on_a_cpu_machine(capsys: pytest.CaptureFixture[str]) -> None:
    code, lines = _doctor(capsys)
    checks, summary = lines[:-1], lines[-1]
    assert all(LINE.match(ln) for ln in checks), lines
    assert code == 0, lines
    assert summary.startswith("gpuchaos doctor: ready: 0 problem(s)")
    assert [ln for ln in lines if "no GPU" in ln] == [
        next(ln for ln in checks if ln.startswith("WARN gpu: no GPU: runs use the CPU stand-ins"))
    ]
    names = [ln[5:].split(":", 1)[0] for ln in checks]
    for name in ("python", "torch", "cpu pinning", "state dir", "loopback", "locust"):
        assert name in names and f"OK   {name}: " in "\n".join(checks), lines


def test_doctor_gpu_fails_without_one(capsys: pytest.CaptureFixture[str]) -> None:
    code, lines = _doctor(capsys, "--gpu")
    assert code == 1, lines
    assert any(ln.startswith("FAIL gpu: no GPU (NVML: ") and " — fix: " in ln for ln in lines)
    assert lines[-1].startswith("gpuchaos doctor: not ready: ")
