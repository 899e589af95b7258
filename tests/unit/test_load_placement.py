"""``load.workers_on``: Locust as Kubernetes Jobs only with the kubernetes platform."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from harness.cli import main

ROOT = Path(__file__).resolve().parents[2]


def _copy(tmp_path: Path, name: str, **load: Any) -> Path:
    doc = yaml.safe_load((ROOT / "experiments" / name).read_text(encoding="utf-8"))
    ext = next(e for e in doc["extensions"] if e.get("name") == "gpuchaos")
    ext["load"].update(load)
    out = tmp_path / name
    out.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return out


def test_k8s_experiment_with_jobs_is_valid(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _copy(tmp_path, "k8s-gpu-node-drain.yaml", workers_on="kubernetes")
    assert main(["validate", str(path)]) == 0
    assert "valid:" in capsys.readouterr().out


def test_jobs_on_the_local_platform_one_line_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    doc = yaml.safe_load((ROOT / "experiments/k8s-gpu-node-drain.yaml").read_text())
    ext = next(e for e in doc["extensions"] if e.get("name") == "gpuchaos")
    ext["load"]["workers_on"] = "kubernetes"
    ext["platform"] = {"kind": "local", "nodes": [{"name": "node-a"}]}
    path = tmp_path / "local-jobs.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert err.startswith(f"gpuchaos: error: {path}: extensions[0].load.workers_on: ")
    assert "needs platform.kind: kubernetes (got local platform)" in err


def test_jobs_need_workers(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _copy(tmp_path, "k8s-gpu-node-drain.yaml", workers_on="kubernetes", workers=0)
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "extensions[0].load: " in err and "workers >= 1" in err


def test_workers_on_is_strict(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _copy(tmp_path, "k8s-gpu-node-drain.yaml", workers_on="cloud")
    assert main(["validate", str(path)]) == 2
    assert "extensions[0].load.workers_on: " in capsys.readouterr().err
