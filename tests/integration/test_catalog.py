"""Every experiment in the catalog is a valid Chaos Toolkit experiment and a valid gpuchaos one."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CATALOG = sorted((ROOT / "experiments").glob("*.yaml"))
CHAOS = Path(sys.executable).with_name("chaos")


@pytest.mark.parametrize("path", CATALOG, ids=[p.stem for p in CATALOG])
def test_chaos_validate_accepts(path: Path, tmp_path: Path) -> None:
    proc = subprocess.run(
        [str(CHAOS), "--log-file", str(tmp_path / "chaostoolkit.log"), "validate", str(path)],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "experiment syntax and semantic look valid" in proc.stdout + proc.stderr


@pytest.mark.parametrize("path", CATALOG, ids=[p.stem for p in CATALOG])
def test_gpuchaos_validate_accepts(path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "harness", "validate", str(path)],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "valid:" in proc.stdout
