"""The experiment, plan and pack fields, from the pydantic models (walked from the roots)."""

from __future__ import annotations

import inspect
import types
import typing
from collections.abc import Callable, Iterator
from typing import Any

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from refgen import GENERATED_NOTE, NONE, cell


def anchor(model: type[BaseModel]) -> str:
    return model.__name__.lower()


def _models_in(annotation: Any) -> Iterator[type[BaseModel]]:
    """Every pydantic model an annotation names, through unions, lists, dicts, Annotated."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        yield annotation
        return
    for arg in typing.get_args(annotation):
        yield from _models_in(arg)


def walk_models(root: type[BaseModel]) -> list[type[BaseModel]]:
    """``root`` and every model nested in its fields, depth first, each once."""
    seen: list[type[BaseModel]] = []
    stack = [root]
    while stack:
        model = stack.pop(0)
        if model in seen:
            continue
        seen.append(model)
        for field in model.model_fields.values():
            stack.extend(m for m in _models_in(field.annotation) if m not in seen)
    return seen


def type_name(annotation: Any, link: Callable[[type[BaseModel]], str] | None = None) -> str:
    """A short, readable name of a field's type (models linked to their section)."""
    if annotation is None or annotation is type(None):
        return "null"
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Annotated:
        return type_name(args[0], link)
    if origin is typing.Literal:
        return " \\| ".join(f"`{a!r}`".replace("'", '"') for a in args)
    if origin in (typing.Union, types.UnionType):
        return " \\| ".join(type_name(a, link) for a in args)
    if origin in (list, tuple, set, frozenset):
        inner = ", ".join(type_name(a, link) for a in args if a is not Ellipsis)
        return f"list of {inner}" if inner else "list"
    if origin is dict:
        key, value = args if len(args) == 2 else ("str", "any")
        return f"map {type_name(key, link)} → {type_name(value, link)}"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return link(annotation) if link else annotation.__name__
    if annotation is Any:
        return "any"
    names = {float: "number", int: "integer", str: "string", bool: "boolean"}
    if annotation in names:
        return names[annotation]
    return getattr(annotation, "__name__", str(annotation)).replace("typing.", "")


def default_text(field: FieldInfo) -> str:
    if field.default is PydanticUndefined and field.default_factory is None:
        return "**required**"
    value = field.default if field.default_factory is None else field.default_factory()  # type: ignore[call-arg]
    if isinstance(value, BaseModel):
        dumped = value.model_dump(exclude_defaults=True)
        return "`{}` (the block's defaults)" if not dumped else f"`{dumped}`"
    if value is None:
        return "`null`"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    text = repr(value)
    return f"`{text if len(text) <= 60 else text[:57] + '...'}`"


def bounds_text(field: FieldInfo) -> str:
    parts = []
    symbols = {"gt": ">", "ge": "≥", "lt": "<", "le": "≤"}
    for meta in field.metadata:
        for attr, symbol in symbols.items():
            value = getattr(meta, attr, None)
            if value is not None:
                parts.append(
                    f"{symbol} {value:,}" if isinstance(value, int) else f"{symbol} {value}"
                )
        for attr, word in (("min_length", "length ≥"), ("max_length", "length ≤")):
            value = getattr(meta, attr, None)
            if value is not None:
                parts.append(f"{word} {value:,}")
        pattern = getattr(meta, "pattern", None)
        if pattern:
            parts.append(f"pattern `{pattern}`")
    return ", ".join(parts) or NONE


def model_section(model: type[BaseModel], level: int = 3) -> str:
    """One model as a heading, its docstring and a table of its fields."""
    doc = inspect.cleandoc(model.__doc__ or "").split("\n\n")[0].replace("\n", " ")
    lines = [f"{'#' * level} {model.__name__} {{#{anchor(model)}}}", ""]
    if doc:
        lines += [doc, ""]
    lines += ["| field | type | default | bounds | description |", "|---|---|---|---|---|"]
    for name, field in model.model_fields.items():
        key = field.alias or name
        kind = type_name(field.annotation, lambda m: f"[{m.__name__}](#{anchor(m)})")
        lines.append(
            f"| `{key}` | {kind} | {cell(default_text(field))} | {cell(bounds_text(field))} "
            f"| {cell(field.description or '(no description)')} |"
        )
    return "\n".join(lines) + "\n"


def model_roots() -> list[tuple[str, str, type[BaseModel]]]:
    """(heading, intro, root model) of every file format a user writes."""
    from harness.config import HarnessSpec
    from harness.drill.pack import DrillPack
    from harness.experiment.chaos_model import ChaosDocument
    from harness.gameday.plan import GamedayPlan

    return [
        (
            "The `gpuchaos` block of an experiment",
            "The entry named `gpuchaos` in an experiment's `extensions` list "
            "(`harness/config/`). Every model rejects unknown keys; numbers are finite.",
            HarnessSpec,
        ),
        (
            "The Chaos Toolkit sections",
            "The rest of the experiment file, as `gpuchaos validate` checks it "
            "(`harness/experiment/chaos_model.py`), after `${name}` substitution.",
            ChaosDocument,
        ),
        (
            "A game-day plan",
            "The file `gpuchaos gameday PLAN` reads (`harness/gameday/plan.py`).",
            GamedayPlan,
        ),
        (
            "A drill pack",
            "The file `gpuchaos drill POOL` reads (`harness/drill/pack.py`).",
            DrillPack,
        ),
    ]


def experiment_page() -> str:
    out = [
        "# Experiment, plan and pack fields\n",
        GENERATED_NOTE,
        "Every field of every file gpuchaos reads, from the pydantic models: its type, its "
        "default, the bounds it is held to and what it means. A `--var NAME=VALUE` overrides "
        "a key of the experiment's `configuration`, which the blocks below use as `${NAME}`."
        " See [Writing an experiment](../writing-experiments.md) for a walk-through.\n",
    ]
    written: set[type[BaseModel]] = set()
    for title, intro, root in model_roots():
        out.append(f"## {title}\n\n{intro}\n")
        for model in walk_models(root):
            if model in written:
                out.append(f"### {model.__name__} (again)\n\nAs [above](#{anchor(model)}).\n")
                continue
            written.add(model)
            out.append(model_section(model))
    return "\n".join(out)
