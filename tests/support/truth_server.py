"""An OpenAI-compatible test server whose timing is known: the truth the harness is checked on.

Why: a load generator that reports a TTFT it cannot be checked against is an instrument that
may lie. This server is not the project's reference workload, and shares no code with it:
it answers ``POST /v1/completions`` the way vLLM or TGI do (SSE chunks
``data: {"choices": [{"text": ...}]}`` ending with ``data: [DONE]``, chunked transfer
encoding, keep-alive; or one JSON answer with ``usage`` when ``stream`` is false), on a
schedule set by the test: the first token ``ttft_s`` after the request line arrived, then one
token every ``gap_s``, for the request's ``max_tokens``. Each later token's deadline is
reckoned from the first token (not from the previous one), so a late wake-up never shifts
the tokens after it, and a late first token does not shorten the gaps.

It also measures what it did (:class:`Served`: when each request arrived, when its first
token and its end were written), counts the requests it saw, and can be told to fail every
request after the first ``fail_after``: with HTTP 500 (``fail="status"``) or by cutting the
connection mid-answer (``fail="cut"``: after a stream's first token, half-way through a JSON
body). Each answer carries the server's request
number in the ``x-replica-id`` header, which the harness records per request, so a test can
pair every record with the server's own measurement of that request.

It runs in a thread of the test's process (:class:`TruthServer` is a context manager) on an
ephemeral port of 127.0.0.1; time is ``time.perf_counter`` (CLOCK_MONOTONIC), the clock the
harness's load users measure with.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Literal

from harness.records import REPLICA_HEADER
from tests.support.ports import LOOPBACK

Failure = Literal["status", "cut"]

#: The model name the server answers as (and lists under ``/v1/models``).
MODEL = "truth"


@dataclass
class Served:
    """One ``POST /v1/completions`` as the server saw and answered it (perf_counter seconds)."""

    number: int  # 1, 2, ... in order of arrival; sent back in the x-replica-id header
    stream: bool
    max_tokens: int
    arrived: float  # the request line was read
    failed: str = ""  # "", "status" or "cut"
    tokens: int = 0  # tokens written
    first_token: float | None = None  # the first token's chunk was handed to the socket
    last_token: float | None = None  # the last token's chunk was handed to the socket
    ended: float | None = None  # the answer was complete (or cut)

    @property
    def ttft_ms(self) -> float | None:
        """Arrival to the first token written, as the server measured it."""
        return None if self.first_token is None else (self.first_token - self.arrived) * 1e3

    @property
    def tpot_ms(self) -> float | None:
        """First token to last token written, per later token."""
        if self.first_token is None or self.last_token is None or self.tokens < 2:
            return None
        return (self.last_token - self.first_token) * 1e3 / (self.tokens - 1)


def _chunk(data: bytes) -> bytes:
    """One chunk of a chunked body."""
    return b"%x\r\n%s\r\n" % (len(data), data)


def _event(number: int, index: int, finish: str | None) -> bytes:
    obj = {
        "id": f"cmpl-{number}",
        "object": "text_completion",
        "model": MODEL,
        "choices": [{"index": 0, "text": f" t{index}", "logprobs": None, "finish_reason": finish}],
    }
    return b"data: " + json.dumps(obj).encode() + b"\n\n"


def _sleep_until(deadline: float) -> None:
    left = deadline - time.perf_counter()
    if left > 0:
        time.sleep(left)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _HTTPServer

    def parse_request(self) -> bool:
        # called right after the request line was read: the clock of the truth starts here
        self.arrived = time.perf_counter()
        return super().parse_request()

    def log_message(self, *_args: object) -> None:
        pass

    def _send_json(self, status: int, doc: object, number: int | None = None) -> None:
        body = json.dumps(doc).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        if number is not None:
            self.send_header(REPLICA_HEADER, str(number))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        if self.path == "/health":
            self._send_json(200, {"status": "ok"})
        elif self.path == "/v1/models":
            self._send_json(200, {"object": "list", "data": [{"id": MODEL, "object": "model"}]})
        else:
            self._send_json(404, {"error": {"message": f"no route {self.path}"}})

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.path != "/v1/completions":
            self._send_json(404, {"error": {"message": f"no route {self.path}"}})
            return
        doc = json.loads(body)
        served = self.server.truth.admit(
            self.arrived, bool(doc.get("stream")), int(doc.get("max_tokens") or 16)
        )
        try:
            self._answer(served)
        finally:
            served.ended = time.perf_counter()

    def _answer(self, s: Served) -> None:
        truth = self.server.truth
        if s.failed == "status":
            error = {"message": "injected failure", "type": "server_error", "code": 500}
            self._send_json(500, {"error": error}, s.number)
            return
        cut = s.failed == "cut"
        first_at = s.arrived + truth.ttft_s
        if not s.stream:
            _sleep_until(first_at + (s.max_tokens - 1) * truth.gap_s)
            text = "".join(f" t{i}" for i in range(s.max_tokens))
            usage = {"prompt_tokens": 1, "completion_tokens": s.max_tokens}
            answer: dict[str, object] = {
                "id": f"cmpl-{s.number}",
                "object": "text_completion",
                "model": MODEL,
                "choices": [{"index": 0, "text": text, "finish_reason": "length"}],
                "usage": usage,
            }
            if cut:  # the whole length announced, half of it sent, then the connection ends
                data = json.dumps(answer).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.send_header(REPLICA_HEADER, str(s.number))
                self.end_headers()
                self.wfile.write(data[: len(data) // 2])
                self._cut()
                return
            s.tokens = s.max_tokens
            s.first_token = s.last_token = time.perf_counter()
            self._send_json(200, answer, s.number)
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header(REPLICA_HEADER, str(s.number))
        self.end_headers()
        for i in range(s.max_tokens):
            _sleep_until(first_at if s.first_token is None else s.first_token + i * truth.gap_s)
            last = i == s.max_tokens - 1
            data = _chunk(_event(s.number, i, "length" if last else None))
            if last:  # the end follows the last token at once, as vLLM writes it
                data += _chunk(b"data: [DONE]\n\n") + b"0\r\n\r\n"
            s.last_token = time.perf_counter()  # handed to the socket now
            self.wfile.write(data)
            s.tokens += 1
            if s.first_token is None:
                s.first_token = s.last_token
            if cut:  # one token, then the connection breaks (no [DONE], no last chunk)
                self._cut()
                return

    def _cut(self) -> None:
        self.close_connection = True
        self.connection.shutdown(socket.SHUT_RDWR)


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    truth: TruthServer


class TruthServer:
    """The server's settings, what it saw, and its thread; ``with TruthServer(...) as s:``
    serves on ``s.url`` until the block ends.

    ``ttft_s``: arrival to the first token; ``gap_s``: between tokens; ``fail_after``: the
    number of requests answered normally before every later one fails (None: never), as
    ``fail`` says (``"status"``: HTTP 500; ``"cut"``: the connection ends mid-answer).
    """

    def __init__(
        self,
        *,
        ttft_s: float = 0.050,
        gap_s: float = 0.010,
        fail_after: int | None = None,
        fail: Failure = "status",
    ) -> None:
        self.ttft_s = ttft_s
        self.gap_s = gap_s
        self.fail_after = fail_after
        self.fail: Failure = fail
        self._lock = threading.Lock()
        self._served: list[Served] = []
        self._http: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    def admit(self, arrived: float, stream: bool, max_tokens: int) -> Served:
        """Number a request that arrived and decide whether it fails."""
        with self._lock:
            number = len(self._served) + 1
            failing = self.fail_after is not None and number > self.fail_after
            served = Served(number, stream, max_tokens, arrived, self.fail if failing else "")
            self._served.append(served)
        return served

    @property
    def served(self) -> list[Served]:
        """Every completion request seen so far, in order of arrival."""
        with self._lock:
            return list(self._served)

    @property
    def seen(self) -> int:
        """How many completion requests arrived."""
        with self._lock:
            return len(self._served)

    @property
    def url(self) -> str:
        if self._http is None:
            raise RuntimeError("the truth server is not running")
        return f"http://{LOOPBACK}:{self._http.server_address[1]}"

    def start(self) -> None:
        http = _HTTPServer((LOOPBACK, 0), _Handler)
        http.truth = self
        self._http = http
        self._thread = threading.Thread(
            target=http.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop serving and close the socket; safe to call twice."""
        http, self._http = self._http, None
        if http is not None:
            http.shutdown()
            http.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> TruthServer:
        self.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()
