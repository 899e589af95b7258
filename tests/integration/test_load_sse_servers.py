"""The streaming user against SSE servers that are not ours: line endings, multi-line events,
comments, chat chunks, a body that ends without a separator or without ``[DONE]``, an
error event. A real Locust run against a small threaded server; every row checked."""

from __future__ import annotations

import csv
import itertools
import json
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from harness.config import LoadSpec, StepShape
from harness.load import LocustRunner
from harness.rundir import REQUESTS_FILE
from harness.timeline import Timeline
from tests.support.ports import LOOPBACK, in_thread


def _completion(text: str) -> str:
    return json.dumps({"id": "c", "object": "text_completion", "choices": [{"text": text}]})


def _chat(content: str | None, role: str | None = None) -> str:
    delta = {"content": content} if role is None else {"role": role}
    return json.dumps({"id": "c", "object": "chat.completion.chunk", "choices": [{"delta": delta}]})


TOKENS = [" red", " green", ' "blue"']
#: variant -> (events as written, output tokens the user must count, error it must record)
VARIANTS: dict[str, tuple[list[str], int, str]] = {
    "lf": ([f"data: {_completion(t)}\n\n" for t in TOKENS] + ["data: [DONE]\n\n"], 3, ""),
    "crlf": ([f"data: {_completion(t)}\r\n\r\n" for t in TOKENS] + ["data: [DONE]\r\n\r\n"], 3, ""),
    "multiline": (
        [": keep-alive\n\n"]
        + [f"event: message\nid: {i}\ndata: {_completion(t)}\n\n" for i, t in enumerate(TOKENS)]
        + ["data: [DONE]\n\n"],
        3,
        "",
    ),
    "chat": (
        [f"data: {_chat(None, role='assistant')}\n\n"]
        + [f"data: {_chat(t)}\n\n" for t in TOKENS]
        + [f"data: {_chat('')}\n\n", "data: [DONE]\n\n"],
        3,
        "",
    ),
    "no-final-separator": (
        [f"data: {_completion(t)}\n\n" for t in TOKENS] + ["data: [DONE]"],
        3,
        "",
    ),
    "cut": ([f"data: {_completion(t)}\n\n" for t in TOKENS[:2]], 2, "stream ended early"),
    "error": (
        [f"data: {_completion(TOKENS[0])}\n\n", 'data: {"error": {"message": "boom"}}\n\n'],
        1,
        "stream error: boom",
    ),
    # the connection breaks after two tokens, mid-body (a replica killed while streaming)
    "killed": ([f"data: {_completion(t)}\n\n" for t in TOKENS[:2]], 2, "stream ended early"),
    # the first token at once, the rest 0.3 s later: TTFT is the first token's time
    "slow-rest": ([f"data: {_completion(t)}\n\n" for t in TOKENS] + ["data: [DONE]\n\n"], 3, ""),
}
#: Seconds to wait after the first event, per variant.
PAUSE_AFTER_FIRST = {"slow-rest": 0.3}


class SSEHandler(BaseHTTPRequestHandler):
    """Answers each completion with the next variant's events, one chunk per event."""

    protocol_version = "HTTP/1.1"
    turns = itertools.cycle(VARIANTS)
    lock = threading.Lock()

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        assert self.path == "/prefix/v1/completions", self.path  # the base URL's path is kept
        with self.lock:
            variant = next(self.turns)
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("x-replica-id", variant)
        self.end_headers()
        for i, event in enumerate(VARIANTS[variant][0]):
            data = event.encode()
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            self.wfile.flush()
            if i == 0 and variant in PAUSE_AFTER_FIRST:
                time.sleep(PAUSE_AFTER_FIRST[variant])
        if variant == "killed":  # no last chunk: the connection just ends
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        self.wfile.write(b"0\r\n\r\n")

    def log_message(self, *_args: object) -> None:
        pass


@pytest.fixture
def sse_server() -> Iterator[str]:
    server = ThreadingHTTPServer((LOOPBACK, 0), SSEHandler)
    server.daemon_threads = True
    with in_thread(server, "sse-server") as port:
        yield f"http://{LOOPBACK}:{port}/prefix"


def test_streaming_user_reads_every_kind_of_stream(sse_server: str, tmp_path: Path) -> None:
    shape = StepShape(kind="step", duration_s=3, start=2, increment=0, step_s=3)
    spec = LoadSpec(user="openai-stream", shape=shape, wait_s=0.05)
    runner = LocustRunner(spec, sse_server, tmp_path, Timeline(None))
    try:
        runner.start()
        assert runner.wait(timeout=60), "Locust did not end with the shape"
    finally:
        runner.stop()
    with open(tmp_path / REQUESTS_FILE, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))

    seen = {row["replica"] for row in rows}
    assert seen == set(VARIANTS), f"variants never served: {set(VARIANTS) - seen}"
    for row in rows:
        _events, tokens, error = VARIANTS[row["replica"]]
        assert (row["status"], row["output_tokens"], row["error"]) == ("200", str(tokens), error)
        assert row["ttft_ms"] != "" and float(row["ttft_ms"]) <= float(row["latency_ms"])
        if row["replica"] == "slow-rest":
            assert float(row["latency_ms"]) - float(row["ttft_ms"]) >= 250
