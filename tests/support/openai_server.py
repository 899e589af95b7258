"""A small third-party-style OpenAI-compatible server for the load tests: chat completions,
streamed or not, ``GET /v1/models``, an optional base path (a gateway's), an optional bearer
token it insists on, and https with a self-signed certificate made for the test.

Not the reference workload: it answers the way vLLM and gateways do (a role-only first chunk,
content chunks, an empty last chunk with ``finish_reason``, optionally a ``usage`` chunk with
``choices: []``, then ``[DONE]``), and it remembers every request it saw, so a test can check
what the load generator sent (path, model, headers) against what it recorded.
"""

from __future__ import annotations

import json
import shutil
import ssl
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from tests.support.ports import LOOPBACK, in_thread

#: The content of every answer, one chunk per piece when streamed.
PIECES = ["The", " quick", " brown", " fox"]
#: What the usage block says when the server sends one (deliberately not len(PIECES)).
USAGE_TOKENS = 7
#: The models it lists; the first is the one a user discovers.
MODELS = ["served-model", "other-model"]
REPLICA = "openai-compat"


@dataclass
class Seen:
    """One request as the server saw it."""

    method: str
    path: str
    headers: dict[str, str]  # names in lower case
    body: dict[str, Any] | None = None


@dataclass
class OpenAIServer:
    """What the server is told and what it saw."""

    base_path: str = ""
    token: str | None = None  # None: no Authorization needed
    usage: bool = False  # send a usage block (streams: a last chunk with choices [])
    url: str = ""
    seen: list[Seen] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def requests(self, method: str) -> list[Seen]:
        with self.lock:
            return [s for s in self.seen if s.method == method]


def _chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
    choice = {"index": 0, "delta": delta, "finish_reason": finish}
    doc = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "choices": [choice]}
    return b"data: " + json.dumps(doc).encode() + b"\n\n"


def _handler(server: OpenAIServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _seen(self, body: dict[str, Any] | None = None) -> bool:
            """Remember the request; False (answered 401) when the token is wrong."""
            headers = {k.lower(): v for k, v in self.headers.items()}
            with server.lock:
                server.seen.append(Seen(self.command, self.path, headers, body))
            if server.token is None or headers.get("authorization") == f"Bearer {server.token}":
                return True
            self._json(401, {"error": {"message": "bad or missing bearer token"}})
            return False

        def _json(self, status: int, doc: dict[str, Any]) -> None:
            data = json.dumps(doc).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("x-replica-id", REPLICA)
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            if not self._seen():
                return
            if self.path != server.base_path + "/v1/models":
                self._json(404, {"error": {"message": f"no {self.path}"}})
                return
            data = [{"id": m, "object": "model", "owned_by": "test"} for m in MODELS]
            self._json(200, {"object": "list", "data": data})

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            if not self._seen(body):
                return
            if self.path != server.base_path + "/v1/chat/completions":
                self._json(404, {"error": {"message": f"no {self.path}"}})
                return
            usage = {"prompt_tokens": 8, "completion_tokens": USAGE_TOKENS, "total_tokens": 15}
            if not body.get("stream"):
                message = {"role": "assistant", "content": "".join(PIECES)}
                choice = {"index": 0, "message": message, "finish_reason": "stop"}
                doc = {"id": "chatcmpl-1", "object": "chat.completion", "choices": [choice]}
                self._json(200, {**doc, "usage": usage} if server.usage else doc)
                return
            events = [_chunk({"role": "assistant", "content": ""})]
            events += [_chunk({"content": piece}) for piece in PIECES]
            events.append(_chunk({}, finish="stop"))
            if server.usage:
                doc = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "choices": []}
                events.append(b"data: " + json.dumps({**doc, "usage": usage}).encode() + b"\n\n")
            events.append(b"data: [DONE]\n\n")
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Transfer-Encoding", "chunked")
            self.send_header("x-replica-id", REPLICA)
            self.end_headers()
            for event in events:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(event), event))
                self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")

        def log_message(self, *_args: object) -> None:
            pass

    return Handler


@contextmanager
def serving(server: OpenAIServer, tls: tuple[Path, Path] | None = None) -> Iterator[OpenAIServer]:
    """Serve on 127.0.0.1 (https with ``tls``: (certificate, key)); ``server.url`` is set to
    the base URL, base path included."""
    httpd = ThreadingHTTPServer((LOOPBACK, 0), _handler(server))
    httpd.daemon_threads = True
    scheme = "http"
    if tls is not None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(str(tls[0]), str(tls[1]))
        httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
        scheme = "https"
    with in_thread(httpd, "openai-server") as port:
        server.url = f"{scheme}://{LOOPBACK}:{port}{server.base_path}"
        yield server


def self_signed_certificate(folder: Path) -> tuple[Path, Path] | None:
    """A certificate for 127.0.0.1 (its own CA) and its key, made with the ``openssl`` CLI
    (the ``cryptography`` package is not among the project's dependencies); ``None`` without
    ``openssl``."""
    openssl = shutil.which("openssl")
    if openssl is None:
        return None
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            "-keyout", str(key), "-out", str(cert), "-subj", f"/CN={LOOPBACK}",
            "-addext", f"subjectAltName=IP:{LOOPBACK}",
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )  # fmt: skip
    return cert, key
