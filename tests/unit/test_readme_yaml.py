"""Every ```yaml block of the documentation parses: a newcomer who copies one gets valid YAML.

The blocks of README.md, tests/README.md and docs/*.md (when there is a docs/ folder) are read
as they stand; a block that is deliberately partial (a fragment of an experiment, indented as
in the full file) must still be one valid YAML document, with no ``...`` placeholder in it.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
#: An opening fence (possibly indented, inside a list item) of a yaml block.
FENCE = re.compile(r"^(?P<indent>[ \t]*)```(?:yaml|yml)\s*$")


def _documents() -> list[Path]:
    docs = [ROOT / "README.md", ROOT / "tests" / "README.md"]
    docs += sorted((ROOT / "docs").glob("*.md")) if (ROOT / "docs").is_dir() else []
    return [d for d in docs if d.is_file()]


def yaml_blocks(text: str) -> list[tuple[int, str]]:
    """(line number of the opening fence, the block's text with the fence's indent removed)."""
    lines = text.splitlines()
    blocks: list[tuple[int, str]] = []
    i = 0
    while i < len(lines):
        opening = FENCE.match(lines[i])
        i += 1
        if opening is None:
            continue
        indent, start, body = opening["indent"], i, []
        while i < len(lines) and lines[i].strip() != "```":
            line = lines[i]
            body.append(line[len(indent) :] if line.startswith(indent) else line.lstrip())
            i += 1
        assert i < len(lines), f"the yaml block opened at line {start} is never closed"
        i += 1
        blocks.append((start, "\n".join(body) + "\n"))
    return blocks


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


BLOCKS = [
    pytest.param(block, id=f"{doc.relative_to(ROOT)}:{line}")
    for doc in _documents()
    for line, block in yaml_blocks(doc.read_text(encoding="utf-8"))
]


def test_the_readme_has_yaml_examples() -> None:
    assert yaml_blocks((ROOT / "README.md").read_text(encoding="utf-8"))


@pytest.mark.parametrize("block", BLOCKS)
def test_yaml_block_parses(block: str) -> None:
    try:
        yaml.safe_load(block)
    except yaml.YAMLError as exc:
        pytest.fail(f"not valid YAML:\n{block}\n{exc}")
    assert not _placeholders(block), f"placeholder in a YAML example:\n{block}"


def test_the_extractor_keeps_indented_blocks_and_rejects_placeholders() -> None:
    text = "1. step\n   ```yaml\n   a: 1\n   b: [2]\n   ```\n```yaml\nc: {d: ${x}}\n```\n"
    (line1, first), (line2, second) = yaml_blocks(text)
    assert (line1, first) == (2, "a: 1\nb: [2]\n")
    assert (line2, second) == (6, "c: {d: ${x}}\n")
    assert yaml.safe_load(first) == {"a": 1, "b": [2]}
    with pytest.raises(yaml.YAMLError):
        yaml.safe_load(second)
    assert _placeholders("a:\n  ...\n") and _placeholders("a: 1\n...\n")
    assert _placeholders("- x\n- ...\n") and _placeholders("{a: 1, ...: 2}\n")
    assert not _placeholders('a: 1  # and so on ...\nb: "..."\n')
