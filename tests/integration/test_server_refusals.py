"""The reference servers refuse malformed and abusive requests the way vLLM does, over real
HTTP on 127.0.0.1: deeply nested JSON is a 400 (not a 500 RecursionError), a prompt longer
than the context is a 400 stating the limit (not cut), slow headers and bodies get their
connection closed (408), and a client that disconnects is one log line (not a traceback)."""

from __future__ import annotations

import json
import select
import socket
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.integration.conftest import LLMServer, run_llm_server
from tests.support.procs import wait_for

#: Read time-outs the servers here run with (small, so a test waits seconds, not the defaults).
HEADER_TIMEOUT_S = 2.0
BODY_TIMEOUT_S = 2.0
TIMEOUT_ARGS = (
    "--header-timeout-s",
    str(HEADER_TIMEOUT_S),
    "--body-timeout-s",
    str(BODY_TIMEOUT_S),
)
N_CTX = 256  # the tiny model's context
INFER = "/v2/models/classifier/infer"


@pytest.fixture(scope="module")
def llm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LLMServer]:
    with run_llm_server(tmp_path_factory.mktemp("refusals-llm"), *TIMEOUT_ARGS) as server:
        yield server


@pytest.fixture(scope="module")
def classifier(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LLMServer]:
    args = (*TIMEOUT_ARGS, "--max-batch-size", "4", "--max-batch-delay-ms", "0")
    folder = tmp_path_factory.mktemp("refusals-cls")
    with run_llm_server(folder, *args, module="workloads.classifier") as server:
        yield server


def _post(server: LLMServer, path: str, content: bytes) -> httpx.Response:
    headers = {"content-type": "application/json"}
    return httpx.post(f"{server.url}{path}", content=content, headers=headers, timeout=30)


def _complete(server: LLMServer, **body: Any) -> httpx.Response:
    return httpx.post(f"{server.url}/v1/completions", json=body, timeout=30)


def _head(path: str, length: int, port: int) -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\n"
        f"content-type: application/json\r\ncontent-length: {length}\r\n\r\n"
    ).encode()


def _connect(server: LLMServer) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=30)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def _read_all(sock: socket.socket) -> bytes:
    """What the server sends until it closes the connection (a reset ends it too)."""
    out = b""
    try:
        while chunk := sock.recv(65536):
            out += chunk
    except ConnectionResetError:
        pass
    return out


def _drip(sock: socket.socket, data: bytes, every_s: float) -> tuple[int, bytes]:
    """Send ``data`` a byte every ``every_s`` until the server answers or closes; returns how
    many bytes went out and what came back (b"" for a bare close)."""
    for sent in range(len(data)):
        readable, _, _ = select.select([sock], [], [], every_s)
        if readable:
            return sent, _read_all(sock)
        try:
            sock.send(data[sent : sent + 1])
        except (BrokenPipeError, ConnectionResetError):
            return sent, _read_all(sock)
    pytest.fail("the server let a slow client send its whole request")


def _new_log(server: LLMServer, since: int) -> list[str]:
    return server.log()[since:].splitlines()


def _nested(levels: int, kind: str) -> bytes:
    if kind == "array":
        return b"[" * levels + b"]" * levels
    return b'{"a":' * levels + b"1" + b"}" * levels


# -- deeply nested JSON --------------------------------------------------------------------


@pytest.mark.parametrize(
    "content",
    [
        _nested(5000, "array"),
        _nested(5000, "object"),
        b'{"prompt": "x", "max_tokens": 1, "user": ' + _nested(5000, "object") + b"}",
        # deep enough to pass json's recursion limit, deeper than any request needs
        b'{"prompt": "x", "max_tokens": 1, "user": ' + _nested(500, "array") + b"}",
    ],
    ids=["array-5000", "object-5000", "field-5000", "field-500"],
)
def test_deeply_nested_json_is_400_on_completions(llm: LLMServer, content: bytes) -> None:
    since = len(llm.log())
    resp = _post(llm, "/v1/completions", content)
    assert resp.status_code == 400
    error = resp.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert "nested deeper than" in error["message"] and len(error["message"]) < 200
    assert "Traceback" not in llm.log()[since:]


def test_brackets_inside_strings_do_not_count_as_nesting(llm: LLMServer) -> None:
    resp = _complete(llm, prompt="[{" * 100, max_tokens=2, user="]" * 300)
    assert resp.status_code == 200
    assert resp.json()["usage"]["prompt_tokens"] == 200


def test_a_prompt_that_is_not_unicode_is_400(llm: LLMServer) -> None:
    resp = _post(llm, "/v1/completions", b'{"prompt": "lone \\ud800 surrogate"}')
    assert resp.status_code == 400
    assert resp.json()["error"]["message"].startswith("prompt: not valid Unicode")


@pytest.mark.parametrize("kind", ["array", "object"])
def test_deeply_nested_json_is_400_on_infer(classifier: LLMServer, kind: str) -> None:
    since = len(classifier.log())
    resp = _post(classifier, INFER, _nested(5000, kind))
    assert resp.status_code == 400
    assert "nested deeper than" in resp.json()["error"]
    # the binary tensor extension: the JSON part before the tensor bytes is checked the same
    header = b'{"inputs": [{"name": "input", "id": ' + _nested(5000, kind) + b"}]}"
    binary = httpx.post(
        f"{classifier.url}{INFER}",
        content=header + b"\0" * 16,
        headers={"inference-header-content-length": str(len(header))},
        timeout=30,
    )
    assert binary.status_code == 400
    assert "nested deeper than" in binary.json()["error"]
    assert "Traceback" not in classifier.log()[since:]


# -- prompts longer than the context -------------------------------------------------------


def test_prompt_longer_than_the_context_is_400_with_the_limit(llm: LLMServer) -> None:
    for stream in (False, True):
        resp = _complete(llm, prompt="x" * (N_CTX + 1), max_tokens=1, stream=stream)
        assert resp.status_code == 400
        assert resp.headers["content-type"] == "application/json"
        message = resp.json()["error"]["message"]
        assert f"maximum context length is {N_CTX} tokens" in message
        assert f"{N_CTX + 2} tokens ({N_CTX + 1} in the prompt, 1 in the completion)" in message


def test_context_counts_tokens_not_characters(llm: LLMServer) -> None:
    resp = _complete(llm, prompt="é" * 130, max_tokens=1)  # 130 characters, 260 byte tokens
    assert resp.status_code == 400
    assert "(260 in the prompt, 1 in the completion)" in resp.json()["error"]["message"]


def test_prompt_plus_max_tokens_beyond_the_context_is_400(llm: LLMServer) -> None:
    over = _complete(llm, prompt="y" * 250, max_tokens=7)
    assert over.status_code == 400
    message = over.json()["error"]["message"]
    assert "you requested 257 tokens (250 in the prompt, 7 in the completion)" in message
    fits = _complete(llm, prompt="y" * 250, max_tokens=6)
    assert fits.status_code == 200
    usage = fits.json()["usage"]
    assert usage == {"prompt_tokens": 250, "completion_tokens": 6, "total_tokens": 256}


def test_without_max_tokens_a_completion_gets_the_room_left(llm: LLMServer) -> None:
    near = _complete(llm, prompt="z" * 250)
    assert near.status_code == 200
    assert near.json()["usage"]["completion_tokens"] == 6
    full = _complete(llm, prompt="z" * N_CTX)
    assert full.status_code == 400
    assert f"({N_CTX} in the prompt, 1 in the completion)" in full.json()["error"]["message"]


def test_more_images_than_the_batch_limit_is_400(classifier: LLMServer) -> None:
    doc = {"inputs": [{"name": "input", "shape": [5, 3, 32, 32], "datatype": "FP32"}]}
    doc["inputs"][0]["data"] = [0.5] * (5 * 3 * 32 * 32)
    resp = httpx.post(f"{classifier.url}{INFER}", json=doc, timeout=30)
    assert resp.status_code == 400
    assert resp.json()["error"] == "a request holds 1 to 4 images, got 5"


# -- slow clients --------------------------------------------------------------------------


@pytest.mark.parametrize("which", ["llm", "classifier"])
def test_slow_headers_get_408_and_a_closed_connection(
    which: str, request: pytest.FixtureRequest
) -> None:
    server: LLMServer = request.getfixturevalue(which)
    since = len(server.log())
    head = _head("/v1/completions", 10, server.port).replace(
        b"\r\n\r\n", b"\r\nx-padding: " + b"p" * 200 + b"\r\n\r\n"
    )
    with _connect(server) as sock:
        t0 = time.monotonic()
        sent, answer = _drip(sock, head, every_s=0.05)
        waited = time.monotonic() - t0
    # closed before the client was done (it would have needed ~13 s), not before the limit
    assert sent < len(head)
    assert waited >= HEADER_TIMEOUT_S * 0.95
    assert answer.startswith(b"HTTP/1.1 408 ") or answer == b""
    if answer:
        assert b"connection: close" in answer and b"x-replica-id: " in answer
    wait_for(lambda: "headers did not arrive" in server.log()[since:], 10, "the log line")
    assert len(_new_log(server, since)) == 1


@pytest.mark.parametrize("which", ["llm", "classifier"])
def test_slow_body_gets_408_and_a_closed_connection(
    which: str, request: pytest.FixtureRequest
) -> None:
    server: LLMServer = request.getfixturevalue(which)
    path = "/v1/completions" if which == "llm" else INFER
    since = len(server.log())
    body = json.dumps({"prompt": "p" * 200, "max_tokens": 1}).encode()
    with _connect(server) as sock:
        sock.sendall(_head(path, len(body), server.port))
        t0 = time.monotonic()
        sent, answer = _drip(sock, body, every_s=0.05)
        waited = time.monotonic() - t0
    assert sent < len(body)
    assert waited >= BODY_TIMEOUT_S * 0.95
    assert answer.startswith(b"HTTP/1.1 408 ") or answer == b""
    wait_for(lambda: "body did not arrive" in server.log()[since:], 10, "the log line")
    new = _new_log(server, since)
    assert len(new) == 1 and path in new[0], new


def test_idle_keep_alive_is_not_a_slow_request(llm: LLMServer) -> None:
    """The header clock starts at a request's first byte: a keep-alive connection idle for
    longer than the header limit (but within uvicorn's keep-alive) still serves the next
    request, and a body sent in pieces within the limit is fine."""
    body = json.dumps({"prompt": "keep", "max_tokens": 2}).encode()
    with httpx.Client(timeout=30) as client:
        url = f"{llm.url}/v1/completions"
        assert client.post(url, content=body).status_code == 200
        time.sleep(HEADER_TIMEOUT_S * 1.25)

        def pieces() -> Iterator[bytes]:
            yield body[:5]
            time.sleep(BODY_TIMEOUT_S / 4)
            yield body[5:]

        second = client.post(url, content=pieces(), headers={"content-length": str(len(body))})
        assert second.status_code == 200


# -- clients that disconnect ---------------------------------------------------------------


def _disconnect_once(server: LLMServer, send: bytes, read_first: bool) -> list[str]:
    """Send ``send``, read the first bytes of the answer if asked (else give the server a
    moment to read the request), close; the log lines the server wrote for it (once the
    disconnect line is there)."""
    since = len(server.log())
    with _connect(server) as sock:
        sock.sendall(send)
        if read_first:
            assert sock.recv(200).startswith(b"HTTP/1.1 200 ")
        else:
            time.sleep(0.05)
    wait_for(lambda: "disconnected" in server.log()[since:], 20, "the disconnect line")
    return _new_log(server, since)


@pytest.mark.parametrize("stream", [True, False], ids=["mid-stream", "before-answer"])
def test_disconnect_is_one_log_line(llm: LLMServer, stream: bool) -> None:
    # 250 tokens take the tiny model a good part of a second: the client leaves long before
    body = json.dumps({"prompt": "bye", "max_tokens": 250, "stream": stream}).encode()
    new = _disconnect_once(llm, _head("/v1/completions", len(body), llm.port) + body, stream)
    assert len(new) == 1, new
    assert "INFO workloads.guards" in new[0]
    # a stream has started its answer; a plain completion has not (if the close came before
    # the server read the request, it was gone while sending it)
    whens = ["mid-answer"] if stream else ["before its answer", "while sending its request"]
    assert any(f"disconnected {when}: POST /v1/completions" in new[0] for when in whens), new
    assert _complete(llm, prompt="still here", max_tokens=2).status_code == 200


@pytest.mark.parametrize("which", ["llm", "classifier"])
def test_disconnect_mid_body_is_one_log_line(which: str, request: pytest.FixtureRequest) -> None:
    server: LLMServer = request.getfixturevalue(which)
    path = "/v1/completions" if which == "llm" else INFER
    new = _disconnect_once(server, _head(path, 100, server.port) + b'{"in', read_first=False)
    assert len(new) == 1, new
    assert f"disconnected while sending its request: POST {path}" in new[0]
