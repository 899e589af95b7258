"""Every snippet of the documentation works: a newcomer who copies one gets what it says.

The fenced blocks of README.md, tests/README.md and docs/**/*.md are read as they stand:

- every ``yaml`` block is one valid YAML document with no ``...`` placeholder (a block that
  is deliberately partial, a fragment indented as in the full file, must still parse);
- a ``yaml`` block that is not marked illustrative is validated by the harness itself: a
  whole experiment (it has ``extensions``) by the loader ``gpuchaos validate`` uses, a
  game-day plan by the plan model, a drill pack by the pack model, and a fragment of the
  ``gpuchaos`` block (``platform:``, ``load:``, ``slos:`` ...) merged into the catalog's
  node-loss block, by the block's model;
- a shell block (``sh``, ``bash``, ``shell``, ``console``, or an untagged block of ``$ ``
  lines) that is not marked illustrative may only hold cheap ``gpuchaos`` commands (list,
  validate, --help, run --dry-run), and each is run and must exit 0.

A block is marked illustrative by an HTML comment starting ``<!-- illustrative`` on the
line right before its fence (see docs/contributing.md, "The docs").
"""

from __future__ import annotations

import contextlib
import copy
import io
import re
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel, ValidationError

ROOT = Path(__file__).resolve().parents[2]
#: An opening fence (possibly indented, inside a list item) and its language.
FENCE = re.compile(r"^(?P<indent>[ \t]*)```(?P<lang>[\w-]*)\s*$")
YAML_LANGS = {"yaml", "yml"}
SHELL_LANGS = {"sh", "bash", "shell", "console"}
ILLUSTRATIVE = "<!-- illustrative"
#: gpuchaos commands cheap enough to run for every snippet that shows them.
CHEAP = {"list", "validate"}


@dataclass(frozen=True)
class Block:
    doc: Path
    line: int  # of the opening fence, 1-based
    lang: str
    text: str  # the fence's indent removed
    illustrative: bool

    @property
    def id(self) -> str:
        return f"{self.doc.relative_to(ROOT)}:{self.line}"


def documents() -> list[Path]:
    docs = [ROOT / "README.md", ROOT / "tests" / "README.md"]
    docs += sorted(p for p in (ROOT / "docs").rglob("*.md") if "hooks" not in p.parts)
    return [d for d in docs if d.is_file()]


def blocks(text: str, doc: Path = ROOT / "README.md") -> list[Block]:
    """Every fenced block of a Markdown text."""
    lines = text.splitlines()
    found: list[Block] = []
    i = 0
    while i < len(lines):
        opening = FENCE.match(lines[i])
        i += 1
        if opening is None:
            continue
        indent, start, body = opening["indent"], i, []
        previous = next((ln.strip() for ln in reversed(lines[: i - 1]) if ln.strip()), "")
        while i < len(lines) and lines[i].strip() != "```":
            line = lines[i]
            body.append(line[len(indent) :] if line.startswith(indent) else line.lstrip())
            i += 1
        assert i < len(lines), f"{doc}: the block opened at line {start} is never closed"
        i += 1
        found.append(
            Block(
                doc,
                start,
                opening["lang"].lower(),
                "\n".join(body) + "\n",
                previous.startswith(ILLUSTRATIVE),
            )
        )
    return found


def yaml_blocks(text: str) -> list[tuple[int, str]]:
    """(line number of the opening fence, text) of each yaml block."""
    return [(b.line, b.text) for b in blocks(text) if b.lang in YAML_LANGS]


def _placeholders(block: str) -> list[str]:
    """``...`` where YAML sees it: a document-end marker, or a plain ``...`` scalar (a
    placeholder key, value or list item). In a comment or a quoted string it is fine."""
    found = []
    for token in yaml.scan(block):
        if isinstance(token, yaml.DocumentEndToken):
            found.append(f"line {token.start_mark.line + 1}: a '...' line (document end)")
        elif isinstance(token, yaml.ScalarToken) and token.plain and token.value == "...":
            found.append(f"line {token.start_mark.line + 1}: a '...' placeholder")
    return found


ALL_BLOCKS = [b for doc in documents() for b in blocks(doc.read_text(encoding="utf-8"), doc)]
YAML_BLOCKS = [pytest.param(b, id=b.id) for b in ALL_BLOCKS if b.lang in YAML_LANGS]


def _is_shell(b: Block) -> bool:
    if b.lang in SHELL_LANGS:
        return True
    return b.lang == "" and any(ln.startswith("$ ") for ln in b.text.splitlines())


SHELL_BLOCKS = [pytest.param(b, id=b.id) for b in ALL_BLOCKS if _is_shell(b)]


def test_the_docs_have_snippets_of_each_kind() -> None:
    assert len(YAML_BLOCKS) >= 10 and len(SHELL_BLOCKS) >= 5
    checked = [b for b in ALL_BLOCKS if not b.illustrative and b.lang in YAML_LANGS]
    assert len(checked) >= 8, "most YAML examples must be validated, not marked illustrative"


@pytest.mark.parametrize("block", YAML_BLOCKS)
def test_yaml_block_parses(block: Block) -> None:
    try:
        yaml.safe_load(block.text)
    except yaml.YAMLError as exc:
        pytest.fail(f"{block.id}: not valid YAML:\n{block.text}\n{exc}")
    assert not _placeholders(block.text), f"{block.id}: placeholder in a YAML example"


# --- validation by the harness -----------------------------------------------------------


def _base_block() -> dict[str, Any]:
    """The catalog's node-loss gpuchaos block with its configuration substituted."""
    from harness.experiment import load_experiment

    exp = load_experiment(ROOT / "experiments" / "gpu-node-loss.yaml")
    return exp.spec.model_dump(mode="json", exclude_unset=True, by_alias=True)


def _merge(base: dict[str, Any], fragment: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in fragment.items():
        old = out.get(key)
        same_kind = not (isinstance(value, dict) and "kind" in value) or (
            isinstance(old, dict) and old.get("kind") == value.get("kind")
        )
        if isinstance(value, dict) and isinstance(old, dict) and same_kind:
            out[key] = _merge(old, value)
        else:
            out[key] = value
    return out


def _inside_a_block(data: dict[str, Any]) -> dict[str, Any]:
    """``data`` as the block whose keys it uses (``autoscaler:`` is a key of the local
    platform block, so it becomes ``{platform: {autoscaler: ...}}``); unchanged when none."""
    from harness.config import LoadSpec, LocalPlatformSpec, SLOSpec, WorkloadSpec

    blocks: list[tuple[str, type[BaseModel]]] = [
        ("platform", LocalPlatformSpec),
        ("load", LoadSpec),
        ("slos", SLOSpec),
        ("workload", WorkloadSpec),
    ]
    for key, model in blocks:
        if set(data) <= {f.alias or n for n, f in model.model_fields.items()}:
            return {key: data}
    return data


def validate_yaml(data: Any, tmp_path: Path) -> str:
    """Validate a documented YAML block as what it is; returns the kind it was taken for."""
    from harness.config import HarnessSpec
    from harness.drill.pack import DrillPack
    from harness.experiment import load_experiment
    from harness.gameday.plan import GamedayPlan

    assert isinstance(data, dict), "expected a mapping"
    entry = next(
        (e for e in data.get("extensions") or [] if isinstance(e, dict) and e.get("name")),
        None,
    )
    if entry is not None and "load" not in entry:  # an excerpt of the gpuchaos block
        data = {k: v for k, v in entry.items() if k != "name"}
    elif "extensions" in data:  # an experiment, maybe without its title or method
        doc = {"version": "1.0.0", "title": "docs", "description": "docs", "method": []}
        doc.update(data)
        path = tmp_path / "snippet.yaml"
        path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
        load_experiment(path)
        return "experiment"
    elif "experiments" in data:
        GamedayPlan.model_validate(data)
        return "plan"
    elif "scenarios" in data:
        DrillPack.model_validate(data)
        return "pack"
    fields = {f.alias or n for n, f in HarnessSpec.model_fields.items()}
    if set(data) - fields:  # a fragment of one block (platform:, load: ...)
        data = _inside_a_block(data)
    unknown = set(data) - fields
    assert not unknown, (
        f"{sorted(unknown)}: not an experiment, plan, pack or gpuchaos block fragment; "
        f"mark it '{ILLUSTRATIVE} ... -->' if it is something else"
    )
    merged = _merge(_base_block(), data)
    if "endpoint" in data:
        merged.pop("platform", None)
    if "tenancy" in data:  # the tenants' own workload, load and SLOs; the pool as written
        for key in ("workload", "load", "slos"):
            merged.pop(key, None)
        if "platform" in data:
            merged["platform"] = data["platform"]
    HarnessSpec.model_validate(merged)
    return "fragment"


@pytest.mark.parametrize(
    "block",
    [p for p in YAML_BLOCKS if not p.values[0].illustrative],  # type: ignore[union-attr]
)
def test_yaml_block_is_valid_for_the_harness(block: Block, tmp_path: Path) -> None:
    data = yaml.safe_load(block.text)
    try:
        validate_yaml(data, tmp_path)
    except (ValidationError, AssertionError, Exception) as exc:
        pytest.fail(f"{block.id}: the harness refuses this example: {exc}\n{block.text}")


def test_validation_refuses_a_wrong_example(tmp_path: Path) -> None:
    with pytest.raises(ValidationError):
        validate_yaml({"slos": {"p42_latency_ms": 1}}, tmp_path)
    with pytest.raises(AssertionError):
        validate_yaml({"jobs": {"gate": {}}}, tmp_path)
    assert validate_yaml({"slos": {"p99_latency_ms": 500}}, tmp_path) == "fragment"
    with pytest.raises(ValidationError):  # a key of the platform block, checked there
        validate_yaml({"autoscaler": {"metric": "queue_depth", "threshold": -1}}, tmp_path)
    assert validate_yaml({"autoscaler": {"metric": "queue_depth", "threshold": 2}}, tmp_path)


# --- shell snippets ----------------------------------------------------------------------


def commands(b: Block) -> list[str]:
    """The command lines of a shell block (``$ `` lines of a console block)."""
    lines = [ln.rstrip() for ln in b.text.splitlines() if ln.strip()]
    if b.lang == "console" or any(ln.startswith("$ ") for ln in lines):
        lines = [ln[2:] for ln in lines if ln.startswith("$ ")]
    return [ln for ln in lines if not ln.lstrip().startswith("#")]


def cheap_argv(command: str) -> list[str] | None:
    """The gpuchaos arguments of a cheap command, None when it is not one."""
    words = shlex.split(command, comments=True)
    if not words:
        return None
    program = words[0].removeprefix(".venv/bin/")
    if program not in ("gpuchaos", "python") or "|" in words or ">" in words:
        return None
    if program == "python":
        if words[1:3] != ["-m", "harness"]:
            return None
        words = words[2:]
    args = words[1:]
    if not args:
        return None
    if "--help" in args or args == ["--version"]:
        return args
    if args[0] in CHEAP or (args[0] == "run" and "--dry-run" in args):
        return args
    return None


@pytest.mark.parametrize("block", SHELL_BLOCKS)
def test_shell_block_is_run_or_marked_illustrative(block: Block) -> None:
    if block.illustrative:
        return
    from harness.cli import main

    lines = commands(block)
    assert lines, f"{block.id}: a shell block without a command"
    for line in lines:
        argv = cheap_argv(line)
        assert argv is not None, (
            f"{block.id}: {line!r} is not a cheap gpuchaos command the tests can run; "
            f"mark the block '{ILLUSTRATIVE}: why -->' on the line before its fence"
        )
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(argv)
        assert code == 0, f"{block.id}: {line!r} exited {code}: {err.getvalue()[-500:]}"


def test_the_extractor_keeps_indented_blocks_marks_and_rejects_placeholders() -> None:
    text = (
        "1. step\n   ```yaml\n   a: 1\n   b: [2]\n   ```\n<!-- illustrative: x -->\n"
        "```yaml\nc: {d: ${x}}\n```\n"
    )
    first, second = blocks(text)
    assert (first.line, first.text, first.illustrative) == (2, "a: 1\nb: [2]\n", False)
    assert (second.line, second.text, second.illustrative) == (7, "c: {d: ${x}}\n", True)
    assert yaml.safe_load(first.text) == {"a": 1, "b": [2]}
    with pytest.raises(yaml.YAMLError):
        yaml.safe_load(second.text)
    assert _placeholders("a:\n  ...\n") and _placeholders("a: 1\n...\n")
    assert _placeholders("- x\n- ...\n") and _placeholders("{a: 1, ...: 2}\n")
    assert not _placeholders('a: 1  # and so on ...\nb: "..."\n')


def test_only_cheap_commands_are_run() -> None:
    assert cheap_argv("gpuchaos validate experiments/x.yaml") == ["validate", "experiments/x.yaml"]
    assert cheap_argv(".venv/bin/gpuchaos list") == ["list"]
    assert cheap_argv("gpuchaos run x.yaml --dry-run") == ["run", "x.yaml", "--dry-run"]
    assert cheap_argv("gpuchaos run x.yaml") is None
    assert cheap_argv("make run") is None
    assert cheap_argv("gpuchaos list | head") is None


def test_the_readme_is_short_and_its_links_resolve() -> None:
    """The README is read in five minutes (under 200 lines) and every page it links exists
    (MkDocs checks the links inside docs/, not the README's)."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(text.splitlines()) < 200
    links = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text)
    local = [link for link in links if "://" not in link]
    assert len(local) >= 10
    missing = [link for link in local if not (ROOT / link).exists()]
    assert not missing, f"README links to missing files: {missing}"
