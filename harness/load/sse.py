"""Parsing of OpenAI-style server-sent events and error texts, without Locust.

Kept apart from the locustfile so it can be unit-tested in a process that must never
import locust.
"""

from __future__ import annotations

import json
from typing import Any, Literal

LineKind = Literal["token", "done", "error", "other"]

#: Longest body excerpt kept in an error text.
EXCERPT_CHARS = 200


def one_line(text: str, limit: int = EXCERPT_CHARS) -> str:
    """Whitespace collapsed to single spaces (one CSV row stays one line), cut at ``limit``."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def _choice_text(obj: dict[str, Any]) -> str:
    choices = obj.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        return ""
    choice = choices[0]
    text = choice.get("text")
    if text is None and isinstance(choice.get("delta"), dict):  # chat-completions chunks
        text = choice["delta"].get("content")
    return text if isinstance(text, str) else ""


def classify_line(line: bytes) -> tuple[LineKind, str]:
    """Classify one line of an SSE stream.

    ``("token", text)`` for a ``data:`` chunk carrying non-empty text, ``("done", "")`` for
    ``data: [DONE]``, ``("error", message)`` for an error chunk or one that is not JSON,
    ``("other", "")`` for everything else (blank separators, comments, ``event:`` lines,
    chunks without text such as the final one carrying only ``finish_reason``).
    """
    stripped = line.strip()
    if not stripped.startswith(b"data:"):
        return "other", ""
    payload = stripped[5:].strip()
    if payload == b"[DONE]":
        return "done", ""
    try:
        obj = json.loads(payload)
    except ValueError:
        return "error", "bad stream chunk: " + one_line(payload.decode("utf-8", "replace"))
    if not isinstance(obj, dict):
        return "other", ""
    if obj.get("error"):
        err = obj["error"]
        message = err.get("message", err) if isinstance(err, dict) else err
        return "error", "stream error: " + one_line(str(message))
    text = _choice_text(obj)
    return ("token", text) if text else ("other", "")


_TEXT_KEYS = (b'"text":', b'"content":')


def quick_kind(line: bytes) -> LineKind | None:
    """What :func:`classify_line` says of a well-formed chunk, without parsing its JSON.

    The streaming user asks this of every line first: ``"token"`` for a complete JSON object
    with ``choices`` whose first ``"text"`` (completions) or ``"content"`` (chat) key holds
    a non-empty string, ``"done"``, ``"other"`` for lines that are not ``data:``; ``None``
    (ask :func:`classify_line`) for anything else: an ``"error"`` key, an empty or null text,
    a line that is not one whole object. Parsing each chunk cost the client more than all
    the rest of a streamed request.
    """
    stripped = line.strip()
    if not stripped.startswith(b"data:"):
        return "other"
    payload = stripped[5:].lstrip()
    if payload == b"[DONE]":
        return "done"
    if not payload.startswith(b"{") or not payload.endswith(b"}") or b'"error"' in payload:
        return None
    if b'"choices"' not in payload:
        return None
    for key in _TEXT_KEYS:
        at = payload.find(key)
        if at >= 0:
            value = payload[at + len(key) : at + len(key) + 3].lstrip()
            return "token" if value[:1] == b'"' and value[1:2] != b'"' else None
    return None


def http_error(status: int, body: bytes) -> str:
    """Error text for an HTTP error response: the status and a short body excerpt."""
    excerpt = one_line(body.decode("utf-8", "replace"))
    return f"HTTP {status}: {excerpt}" if excerpt else f"HTTP {status}"
