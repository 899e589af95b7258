"""The CI gate's files: the workflow, the composite action and the GitLab template validate
against their published schemas (check-jsonschema's vendored SchemaStore copies, in
process), and they are wired to ci/gate.sh consistently."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

click_testing = pytest.importorskip("click.testing", reason="pip install check-jsonschema")
check_jsonschema = pytest.importorskip(
    "check_jsonschema.cli.main_command", reason="pip install check-jsonschema (dev extra)"
)

ROOT = Path(__file__).resolve().parents[2]
ACTION = ROOT / "action.yml"
WORKFLOW = ROOT / ".github" / "workflows" / "gpu-gate.yml"
GITLAB = ROOT / "ci" / "gitlab" / "gpuchaos.gitlab-ci.yml"
GATE = ROOT / "ci" / "gate.sh"


def _validate(schema: str, path: Path) -> tuple[int, str]:
    result = click_testing.CliRunner().invoke(
        check_jsonschema.main, ["--builtin-schema", schema, str(path)]
    )
    return result.exit_code, result.output


@pytest.mark.parametrize(
    ("schema", "path"),
    [
        ("vendor.github-workflows", WORKFLOW),
        ("vendor.github-actions", ACTION),
        ("vendor.gitlab-ci", GITLAB),
    ],
    ids=["workflow", "action", "gitlab"],
)
def test_file_validates_against_its_published_schema(schema: str, path: Path) -> None:
    code, output = _validate(schema, path)
    assert code == 0, output
    assert "ok -- validation done" in output


@pytest.mark.parametrize(
    ("schema", "path", "break_it"),
    [
        ("vendor.github-workflows", WORKFLOW, lambda d: d.update({"jobs": {"gate": {"steps": 3}}})),
        ("vendor.github-actions", ACTION, lambda d: d["runs"].update({"using": "compost"})),
        ("vendor.gitlab-ci", GITLAB, lambda d: d["gpu-gate"].update({"artifacts": {"when": 3}})),
    ],
    ids=["workflow", "action", "gitlab"],
)
def test_the_schema_check_catches_a_broken_copy(
    schema: str, path: Path, break_it: Any, tmp_path: Path
) -> None:
    doc = yaml.safe_load(path.read_text())
    break_it(doc)
    broken = tmp_path / path.name
    broken.write_text(yaml.safe_dump(doc, sort_keys=False))
    code, output = _validate(schema, broken)
    assert code == 1, output


def _action() -> dict[str, Any]:
    return yaml.safe_load(ACTION.read_text())


def test_action_inputs_are_the_documented_ones() -> None:
    inputs = _action()["inputs"]
    for name in ("experiment", "vars", "baseline", "max-regression", "serve"):
        assert name in inputs
    for name in ("python-version", "torch"):
        assert name in inputs
    assert inputs["experiment"]["required"] is True
    assert inputs["serve"]["default"] == ""  # off unless asked for
    assert inputs["plan"]["default"] == "auto"


def test_action_uses_every_input_and_gate_sh_reads_every_variable_it_sets() -> None:
    text = ACTION.read_text()
    used = set(re.findall(r"inputs\.([a-z-]+)", text))
    assert used == set(_action()["inputs"]), "an input nobody reads, or a typo"
    gate = GATE.read_text()
    for var in set(re.findall(r"\b(GPUCHAOS_[A-Z_]+):", text)):
        assert var in gate, f"action sets {var}, gate.sh never reads it"
    steps = _action()["runs"]["steps"]
    runs = [s["run"] for s in steps if "run" in s]
    assert all(r.startswith('bash "$GPUCHAOS_HOME/ci/gate.sh" ') for r in runs)
    subcommands = {r.split()[-1] for r in runs}
    assert subcommands == {"setup-key", "setup", "run", "baseline", "compare", "verdict"}
    uses = {s["uses"].split("@")[0] for s in steps if "uses" in s}
    assert uses == {"actions/setup-python", "actions/cache", "actions/upload-artifact"}
    upload = next(s for s in steps if s.get("uses", "").startswith("actions/upload-artifact"))
    assert upload["if"].startswith("always()")  # the run folder also when the gate fails
    assert steps[-1]["run"].endswith(" verdict")  # the step that fails comes last


def test_workflow_is_the_projects_gate_on_a_gpu_runner() -> None:
    doc = yaml.safe_load(WORKFLOW.read_text())
    on = doc[True]  # YAML 1.1 reads the key `on` as True
    assert set(on) == {"schedule", "workflow_dispatch", "pull_request"}
    assert on["pull_request"]["paths"] == ["workloads/**", "harness/**"]
    job = doc["jobs"]["gate"]
    assert job["runs-on"] == ["self-hosted", "gpu"]
    assert any(s.get("uses") == "./" for s in job["steps"])
    assert doc["permissions"]["actions"] == "read"  # gh run download of the baseline


def test_gitlab_template_reports_junit_from_the_run_folder() -> None:
    doc = yaml.safe_load(GITLAB.read_text())
    hidden = doc[".gpuchaos-gate"]
    out = hidden["variables"]["GPUCHAOS_OUT"]
    assert hidden["artifacts"]["reports"]["junit"] == f"{out}/junit.xml"
    assert hidden["artifacts"]["paths"] == [f"{out}/"]
    assert hidden["artifacts"]["when"] == "always"
    assert doc["gpu-gate"]["extends"] == ".gpuchaos-gate"
    assert any('gate.sh" all' in line for line in hidden["script"])
    assert "jobs/artifacts/$CI_DEFAULT_BRANCH/download?job=" in GITLAB.read_text()
