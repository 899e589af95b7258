"""The images the deploy manifests name: what each Dockerfile copies and checks at build time
(no Docker engine here, so the build itself cannot run: these hold what can be read)."""

from __future__ import annotations

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def _lines(path: Path) -> list[str]:
    return [line.strip() for line in path.read_text().splitlines()]


def test_the_gameday_cronjob_runs_the_harness_image() -> None:
    docs = list(yaml.safe_load_all((ROOT / "deploy/kubernetes/gameday-cronjob.yaml").read_text()))
    job = next(d for d in docs if d and d.get("kind") == "CronJob")
    pod = job["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    images = {c["image"] for c in pod["containers"]}
    assert images == {"ghcr.io/gpuchaos/harness:0.1.0"}
    assert pod["containers"][0]["command"] == ["gpuchaos"]


def test_the_harness_image_has_the_cli_and_the_catalog() -> None:
    lines = _lines(ROOT / "deploy/harness.Dockerfile")
    copied = {line.split()[1] for line in lines if line.startswith("COPY ")}
    # everything gpuchaos gameday needs inside the cluster: the package, the reference
    # workloads it validates against, the catalog a plan names experiments from
    assert {"harness/", "workloads/", "experiments/", "pyproject.toml"} <= copied
    text = "\n".join(lines)
    assert "pip install -e ." in text and "gpuchaos --version" in text
    assert "USER 10001" in text  # the CronJob's runAsUser
