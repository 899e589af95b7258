"""The CLI turns bad input into one line and exit code 2."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.cli import main

ROOT = Path(__file__).resolve().parents[2]


def test_validate_ok(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(ROOT / "experiments/gpu-node-loss.yaml")]) == 0
    assert "valid: GPU node loss" in capsys.readouterr().out


def test_validate_bad_file_one_line_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        (ROOT / "experiments/gpu-node-loss.yaml")
        .read_text()
        .replace("replicas: 1", "replicas: -3", 1)
    )
    assert main(["validate", str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert err.startswith(f"gpuchaos: error: {bad}: extensions[0].platform.nodes[0].replicas:")


def test_run_rejects_bad_var_before_starting_anything(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    code = main(
        ["run", str(ROOT / "experiments/gpu-node-loss.yaml"), "--out", str(out), "--var", "nope=1"]
    )
    assert code == 2
    assert "--var: nope: not a configuration key" in capsys.readouterr().err
    assert not out.exists()


def test_score_missing_run_dir(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["score", str(tmp_path)]) == 2
    assert "not a run folder" in capsys.readouterr().err
