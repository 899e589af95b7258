"""One line for a pydantic error: the field as the file writes it and what was expected.

Why not pydantic's own text: it is several lines per error, names the tags of tagged unions
(``platform.local.nodes.0``) that the file does not contain, and for a bad union member may
talk about a member the user did not mean. The line here names the first error's field in
the file's own terms (``platform.nodes[0].replicas``), what was expected, the value given
(shortened), and how many more errors there are.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import ValidationError

from harness.errors import ConfigError

#: Problem texts are cut here, so that an error line stays readable (about 200 characters
#: with the file and the field).
MAX_PROBLEM = 150


def field_path(loc: tuple[Any, ...], data: Any, missing: bool = False) -> str:
    """The error's location as the user wrote it: tagged unions (platform, load shape, ...)
    put their tag in pydantic's path (``platform.local.nodes``), which the file lacks;
    list indexes are written ``[i]``. A name not in the data is a tag, unless it is the
    last one of a ``missing`` error (the field the file lacks)."""
    out = ""
    for n, item in enumerate(loc):
        if isinstance(item, str) and item.startswith("function-"):
            continue
        keep = missing and n == len(loc) - 1
        if isinstance(item, str) and not keep and not (isinstance(data, dict) and item in data):
            continue  # the tag of a discriminated union (or of a model-level check)
        if isinstance(item, int):
            out += f"[{item}]"
        else:
            out += f".{item}" if out else str(item)
        if isinstance(data, dict):
            data = data.get(item)
        elif isinstance(data, list) and isinstance(item, int) and item < len(data):
            data = data[item]
        else:
            data = None
    return out


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _problem(err: Any) -> str:
    kind = err["type"]
    ctx = err.get("ctx") or {}
    if kind == "extra_forbidden":
        return "unknown field"
    if kind == "missing":
        return "required, missing"
    if kind == "union_tag_invalid":
        expected = str(ctx.get("expected_tags", "")).replace("'", "")
        return f"expected one of {expected} (got {_short(ctx.get('tag'))})"
    if kind == "union_tag_not_found":
        return f"expected a mapping with {ctx.get('discriminator', 'its kind')}"
    if kind == "value_error":
        return str(ctx.get("error", err["msg"]))
    msg = str(err["msg"])
    if "input" in err:
        msg = f"{msg} (got {_short(err['input'])})"
    return msg


def format_validation_error(
    path: Path | str, prefix: str, exc: ValidationError, data: Any = None
) -> ConfigError:
    """The first error of ``exc`` as one ConfigError naming ``path`` and the field."""
    errors = exc.errors()
    err = errors[0]
    loc = field_path(tuple(err["loc"]), data, missing=err["type"] == "missing")
    if prefix and loc:
        field = f"{prefix}{'' if loc.startswith('[') else '.'}{loc}"
    else:
        field = prefix or loc
    msg = _problem(err)
    if len(msg) > MAX_PROBLEM:
        msg = msg[: MAX_PROBLEM - 3] + "..."
    more = len(errors) - 1
    if more:
        msg += f" (and {more} more error{'s' if more > 1 else ''})"
    return ConfigError(str(path), field, msg)


def choices(name: str, options: list[str] | set[str]) -> str:
    """What ``name`` may have meant: the closest option, else the options (shortened)."""
    import difflib

    close = difflib.get_close_matches(name, sorted(options), n=1)
    if close:
        return f"did you mean {close[0]}?"
    listed = ", ".join(sorted(options)) or "none"
    return f"known: {listed if len(listed) <= 60 else listed[:57] + '...'}"
