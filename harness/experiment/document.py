"""Read an experiment file into a mapping, refusing anything that is not a small YAML text.

Why so careful: experiment files are shared (a catalog, a colleague's game-day plan, a pull
request), and ``validate`` is the gate in front of a run. A file of any shape must end in one
line naming the file and what was expected, quickly: a FIFO would block a plain ``open``,
UTF-16 or binary data would raise deep in a decoder, 5,000 levels of nesting overflow the
Python stack, and nine aliases of nine aliases (a "billion laughs") expand to a billion
values as soon as anything walks the document (substitution, validation, the journal). So
the file's kind and size are checked before it is read, its bytes before they are decoded,
and the YAML's depth, aliases and expanded size while it is composed, before any of it is
built into Python objects. A key written twice is an error too: YAML keeps the last one
silently, so ``node_down_s: 20`` followed by ``node_down_s: -20`` would run the second.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from harness.errors import ConfigError

#: An experiment is a page or two of YAML; a bigger file is a mistake (a trace or a log).
MAX_BYTES = 1024 * 1024
#: Deeper than any experiment needs (the catalog's deepest value is 6 levels down), far
#: below what overflows the composer's recursion.
MAX_DEPTH = 64
#: YAML aliases (``*name``) in one file: enough to share a block, not to build a bomb.
MAX_ALIASES = 100
#: Values in the document once every alias is expanded (the catalog's largest has ~300).
MAX_VALUES = 100_000

_BOMS = {
    b"\xff\xfe\x00\x00": "UTF-32",
    b"\x00\x00\xfe\xff": "UTF-32",
    b"\xff\xfe": "UTF-16",
    b"\xfe\xff": "UTF-16",
}


class _Refused(Exception):
    """A limit the loader enforces; converted to a ConfigError naming the file."""

    def __init__(self, node: Node | None, problem: str) -> None:
        line = node.start_mark.line + 1 if node is not None and node.start_mark else None
        super().__init__(f"line {line}" if line else "document", problem)


class _Loader(yaml.SafeLoader):
    """SafeLoader with limits on depth, aliases and expanded size, and no duplicate keys."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0
        self._aliases = 0

    def compose_node(self, parent: Node | None, index: Any) -> Node | None:
        if self.check_event(yaml.AliasEvent):
            self._aliases += 1
            if self._aliases > MAX_ALIASES:
                event = self.peek_event()
                raise _Refused(
                    _at(event.start_mark), f"more than {MAX_ALIASES} aliases (*name) in one file"
                )
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                event = self.peek_event()
                raise _Refused(_at(event.start_mark), f"nested deeper than {MAX_DEPTH} levels")
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def get_single_node(self) -> Node | None:
        node: Node | None = super().get_single_node()
        if node is not None:
            _count_values(node, {}, [0])
        return node

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[str, int] = {}
        for key, _value in node.value:
            if not isinstance(key, ScalarNode) or key.tag == "tag:yaml.org,2002:merge":
                continue
            line = key.start_mark.line + 1
            if key.value in seen:
                raise _Refused(
                    key, f"key {key.value!r} is written twice (first on line {seen[key.value]})"
                )
            seen[key.value] = line
        return super().construct_mapping(node, deep=deep)


def _at(mark: Any) -> Node:
    """A stand-in node for a position (limits are found on events, not nodes)."""
    return ScalarNode("tag:yaml.org,2002:null", "", mark, mark)


def _count_values(node: Node, memo: dict[int, int], total: list[int]) -> int:
    """Values under ``node`` with every alias expanded; raises past :data:`MAX_VALUES`.
    Shared nodes are counted once per use but walked once (``memo``), so a bomb is found
    in time proportional to the file, not to its expansion."""
    known = memo.get(id(node))
    if known is not None:
        total[0] += known
    else:
        before = total[0]
        total[0] += 1
        if isinstance(node, SequenceNode):
            for child in node.value:
                _count_values(child, memo, total)
        elif isinstance(node, MappingNode):
            for key, value in node.value:
                _count_values(key, memo, total)
                _count_values(value, memo, total)
        memo[id(node)] = total[0] - before
    if total[0] > MAX_VALUES:
        raise _Refused(node, f"expands to more than {MAX_VALUES} values (aliases of aliases)")
    return total[0]


def _read_bytes(path: Path) -> bytes:
    try:
        info = path.stat()
    except FileNotFoundError:
        raise ConfigError(str(path), "", "no such file") from None
    except OSError as exc:
        raise ConfigError(str(path), "", f"cannot read it: {exc.strerror}") from None
    if stat.S_ISDIR(info.st_mode):
        raise ConfigError(str(path), "", "is a folder, expected an experiment file (YAML)")
    if not stat.S_ISREG(info.st_mode):
        raise ConfigError(str(path), "", "is not a regular file (a FIFO, socket or device)")
    if info.st_size > MAX_BYTES:
        raise ConfigError(
            str(path), "", f"is {info.st_size} bytes; an experiment file is at most {MAX_BYTES}"
        )
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
        with os.fdopen(fd, "rb") as f:
            return f.read(MAX_BYTES + 1)
    except OSError as exc:
        raise ConfigError(str(path), "", f"cannot read it: {exc.strerror}") from None


def _decode(path: Path, data: bytes) -> str:
    for bom, name in _BOMS.items():
        if data.startswith(bom):
            raise ConfigError(str(path), "", f"is {name} text; save it as UTF-8")
    if b"\x00" in data:
        offset = data.index(b"\x00")
        raise ConfigError(
            str(path), "", f"holds a NUL byte at offset {offset}: binary data, not YAML text"
        )
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise ConfigError(
            str(path),
            f"line {line}",
            f"not UTF-8 text (byte 0x{data[exc.start]:02x}); save the file as UTF-8",
        ) from None


def read_document(path: Path, what: str = "a Chaos Toolkit experiment") -> dict[str, Any]:
    """The file's YAML (or JSON) as a mapping; every problem is a one-line ConfigError."""
    text = _decode(path, _read_bytes(path))
    loader = _Loader(text)
    try:
        doc = loader.get_single_data()
    except _Refused as exc:
        where, problem = exc.args
        raise ConfigError(str(path), where, problem) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark is not None else "document"
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(str(path), where, f"not valid YAML: {problem}"[:160]) from None
    finally:
        loader.dispose()
    if not isinstance(doc, dict):
        got = "nothing (an empty file)" if doc is None else f"a {type(doc).__name__}"
        raise ConfigError(str(path), "", f"expected a mapping ({what}), got {got}")
    return doc
