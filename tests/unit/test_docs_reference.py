"""The generated reference (docs/hooks/reference.py) shows everything the code defines.

This walks the code on its own, not through the generator's walkers: every field of every
model an experiment, plan or pack can hold (from the root models, through every nested
model of every field), every command and flag of the CLI's parser, every fault of the
registry with each of its arguments, every metric of the reference servers, every column of
``requests.csv`` and every timeline event kind. A field, flag, fault or metric added
tomorrow must show up in the pages, or this fails."""

from __future__ import annotations

import argparse
import importlib.util
import re
import sys
import typing
from functools import cache
from pathlib import Path
from types import ModuleType

import pytest
from pydantic import BaseModel, Field, create_model

ROOT = Path(__file__).resolve().parents[2]


@cache
def hook() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "docs_reference", ROOT / "docs/hooks/reference.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["docs_reference"] = module
    spec.loader.exec_module(module)
    return module


@cache
def pages() -> dict[str, str]:
    return dict(hook().pages())


def _section(page: str, heading: str) -> str:
    """The text under a heading (any level) up to the next heading of that level or above."""
    lines = page.splitlines()
    for i, line in enumerate(lines):
        text = line.lstrip("#").strip()
        if line.startswith("#") and (text == heading or text.startswith(heading + " ")):
            level = len(line) - len(line.lstrip("#"))
            end = next(
                (
                    j
                    for j in range(i + 1, len(lines))
                    if lines[j].startswith("#")
                    and len(lines[j]) - len(lines[j].lstrip("#")) <= level
                ),
                len(lines),
            )
            return "\n".join(lines[i:end])
    raise AssertionError(f"no heading {heading!r}")


def _nested(annotation: object) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in typing.get_args(annotation) for m in _nested(arg)]


def _all_models() -> list[type[BaseModel]]:
    from harness.config import HarnessSpec
    from harness.drill.pack import DrillPack
    from harness.experiment.chaos_model import ChaosDocument
    from harness.gameday.plan import GamedayPlan

    seen: list[type[BaseModel]] = []
    todo: list[type[BaseModel]] = [HarnessSpec, ChaosDocument, GamedayPlan, DrillPack]
    while todo:
        model = todo.pop()
        if model in seen:
            continue
        seen.append(model)
        for field in model.model_fields.values():
            todo += _nested(field.annotation)
    return seen


MODELS = _all_models()


def test_the_walk_reaches_the_nested_blocks() -> None:
    names = {m.__name__ for m in MODELS}
    assert {"WorkloadSpec", "LocalPlatformSpec", "NodeSpec", "SpikeShape", "SLOSpec"} <= names
    assert {"KubernetesPlatformSpec", "StopCondition", "PlanEntry", "ScenarioSpec"} <= names


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__name__)
def test_every_field_of_every_model_is_in_the_reference(model: type[BaseModel]) -> None:
    section = _section(pages()["reference/experiment.md"], model.__name__)
    for name, field in model.model_fields.items():
        key = field.alias or name
        row = next((ln for ln in section.splitlines() if ln.startswith(f"| `{key}` |")), None)
        assert row is not None, f"{model.__name__}.{key} is missing from the reference"
        if field.description:
            first_words = " ".join(field.description.split()[:4]).replace("|", "\\|")
            assert first_words in row, f"{model.__name__}.{key}: description not shown"


def test_a_new_field_shows_up_with_its_type_default_bounds_and_description() -> None:
    toy = create_model(
        "ToyBlock",
        __base__=BaseModel,
        retries=(int, Field(3, ge=0, le=10, description="How many times to retry.")),
        url=(str, Field(description="Where to go.")),
    )
    section = hook().model_section(toy)
    assert "| `retries` | integer | `3` | ≥ 0, ≤ 10 | How many times to retry. |" in section
    assert "| `url` | string | **required** |" in section


def _commands(
    parser: argparse.ArgumentParser, prefix: str
) -> list[tuple[str, argparse.ArgumentParser]]:
    found = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found.append((f"{prefix} {name}", sub))
                found += _commands(sub, f"{prefix} {name}")
    return found


def test_every_command_and_flag_is_in_the_reference() -> None:
    from harness.cli import build_parser

    page = pages()["reference/cli.md"]
    commands = _commands(build_parser(), "gpuchaos")
    assert {"gpuchaos run", "gpuchaos validate", "gpuchaos gameday", "gpuchaos drill"} <= {
        c for c, _ in commands
    }
    for command, parser in commands:
        section = _section(page, command)
        heading = section.splitlines()[0]
        assert heading.strip("# ").strip() == command, heading
        for action in parser._actions:
            if isinstance(action, argparse._HelpAction | argparse._SubParsersAction):
                continue
            for flag in action.option_strings:
                assert f"`{flag}`" in section, f"{command} {flag} is missing"
            if not action.option_strings:
                assert f"`{action.metavar or action.dest}`" in section, f"{command} {action.dest}"


def test_every_fault_and_argument_is_in_the_reference() -> None:
    from harness.faults import registry

    page = pages()["reference/faults.md"]
    faults = registry.faults()
    assert {"lose_node", "drain_gpu_node", "hang_replica"} <= {f.name for f in faults}
    for fault in faults:
        section = _section(page, f"`{fault.name}` ({fault.platform})")
        for name, field in fault.args.model_fields.items():
            assert f"| `{field.alias or name}` |" in section, f"{fault.name}.{name} is missing"
        if fault.revert_action:
            assert f"`{fault.revert_action}`" in section


def test_every_server_metric_is_in_the_reference() -> None:
    from workloads.classifier.metrics import ClassifierMetrics
    from workloads.llm.metrics import Metrics

    page = pages()["reference/metrics.md"]
    for metrics in (Metrics("m", "r", "cpu"), ClassifierMetrics("m", "r", "cpu")):
        for family in metrics.registry.collect():
            name = family.name + ("_total" if family.type == "counter" else "")
            assert f"`{name}`" in page, f"metric {name} is missing"
    for literal in re.findall(r'Gauge\(\s*"([^"]+)"', (ROOT / "workloads/metrics.py").read_text()):
        assert f"`{literal}`" in page, f"metric {literal} is missing"


def test_every_column_event_kind_and_run_file_is_in_the_reference() -> None:
    from harness import records
    from harness.timeline import EventKind

    page = pages()["reference/metrics.md"]
    for column in records.COLUMNS + records.OPTIONAL_COLUMNS:
        assert f"| `{column}` |" in _section(page, "`requests.csv` columns"), column
    kinds = _section(page, "`timeline.jsonl` event kinds")
    for kind in typing.get_args(EventKind):
        assert f"| `{kind}` |" in kinds, f"event kind {kind} is missing"
    files = _section(page, "The run folder")
    for name in (
        "scorecard.json",
        "requests.csv",
        "timeline.jsonl",
        "telemetry.csv",
        "report.html",
    ):
        assert f"`{name}`" in files, name


def test_no_generated_page_is_committed() -> None:
    for path in hook().PAGES:
        assert not (ROOT / "docs" / path).exists(), f"docs/{path} is generated: delete it"


def test_every_experiment_plan_and_pack_is_in_the_catalog_page() -> None:
    page = pages()["reference/catalog.md"]
    for path in sorted((ROOT / "experiments").glob("*.yaml")):
        assert f"| `{path.stem}` |" in page, f"experiment {path.stem} is missing"
    for path in sorted((ROOT / "experiments").glob("*/*.yaml")):
        assert f"`{path.relative_to(ROOT)}`" in page, f"{path} is missing"
