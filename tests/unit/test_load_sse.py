"""SSE line classification, error texts and the runner-to-Locust config file."""

from __future__ import annotations

import json
from pathlib import Path

from harness.config import LoadSpec, SpikeShape
from harness.load.loadconfig import read_load_config, write_load_config
from harness.load.sse import classify_line, http_error, one_line


def _chunk(text: str, finish: str | None = None) -> bytes:
    choice = {"text": text, "index": 0, "finish_reason": finish}
    return b"data: " + json.dumps({"id": "c", "choices": [choice]}).encode() + b"\n"


def test_token_chunks() -> None:
    assert classify_line(_chunk(" lo")) == ("token", " lo")
    assert classify_line(_chunk("x", "length")) == ("token", "x")
    assert classify_line(b'data:{"choices":[{"delta":{"content":"hi"}}]}\r\n') == ("token", "hi")


def test_chunks_without_text_are_not_tokens() -> None:
    assert classify_line(_chunk("", "length")) == ("other", "")
    assert classify_line(b'data: {"choices": [], "usage": {"completion_tokens": 3}}\n') == (
        "other",
        "",
    )
    for line in (b"\n", b"\r\n", b": keep-alive\n", b"event: message\n"):
        assert classify_line(line) == ("other", "")


def test_done() -> None:
    assert classify_line(b"data: [DONE]\n") == ("done", "")
    assert classify_line(b"data:[DONE]") == ("done", "")


def test_errors_in_the_stream() -> None:
    kind, text = classify_line(b'data: {"error": {"message": "out of\\nmemory", "code": 503}}\n')
    assert (kind, text) == ("error", "stream error: out of memory")
    kind, text = classify_line(b"data: {not json\n")
    assert kind == "error" and text.startswith("bad stream chunk: ")


def test_http_error_text_is_one_short_line() -> None:
    assert http_error(503, b'{"error":\n  "busy"}') == 'HTTP 503: {"error": "busy"}'
    assert http_error(500, b"") == "HTTP 500"
    long = http_error(400, b"x" * 5000)
    assert len(long) < 220 and "\n" not in long and long.endswith("...")
    assert one_line("a\tb\r\nc") == "a b c"


def test_load_config_round_trip(tmp_path: Path) -> None:
    spec = LoadSpec(
        shape=SpikeShape(duration_s=8, baseline_users=2, spike_start_s=3, spike_duration_s=3),
        max_tokens=4,
    )
    path = tmp_path / "load.json"
    write_load_config(path, spec, tmp_path / "requests.csv", 123.5)
    config = read_load_config(path)
    assert config.load == spec
    assert config.records_path == tmp_path / "requests.csv"
    assert config.t0 == 123.5
