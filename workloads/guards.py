"""How both reference servers refuse malformed and abusive requests, the way vLLM does.

- **Deeply nested JSON**: :func:`load_json` refuses a body nested deeper than
  :data:`MAX_JSON_DEPTH` levels before parsing it. Python's parser recurses, so 5,000 levels
  of ``[[[...`` would be a ``RecursionError`` (a 500 and a traceback); a few hundred would
  parse and then break whatever walks the document next (rendering an echoed id).
- **Slow clients** (slow-loris): uvicorn closes idle keep-alive connections, but nothing
  bounds how long a request's headers or body may take to arrive. The h11 protocol of
  :func:`read_timeout_h11_protocol` gives a request's headers ``header_timeout_s`` from their
  first byte (or from the connection's start) and its body ``body_timeout_s`` from the end of
  its headers; past either it answers 408 (``connection: close``) and closes the connection.
- **Clients that go away**: :class:`DisconnectGuard` turns a client that disconnects while its
  request is read, handled or streamed into one log line instead of a traceback; the protocol
  tells the handler (:func:`on_disconnect`), so the LLM stops generating, as vLLM aborts the
  request.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import h11
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Receive, Scope, Send
from uvicorn.protocols.http.h11_impl import H11Protocol

logger = logging.getLogger(__name__)

#: Deepest nesting a request body may have (serde_json's default; requests need a handful).
MAX_JSON_DEPTH = 128

#: The scope key a protocol sets when it answered (or closed) the request itself: the app
#: then sees a disconnect that is no client's doing, and DisconnectGuard stays quiet.
ANSWERED_BY_PROTOCOL = "gpuchaos.answered_by_protocol"
#: The scope key the protocol sets when the connection was lost before the answer was
#: complete: when it happened ("while sending its request", "before its answer", "mid-answer").
CLIENT_GONE = "gpuchaos.client_gone"
#: The scope key of the callbacks :func:`on_disconnect` registers.
ON_DISCONNECT = "gpuchaos.on_disconnect"

# A JSON string (brackets inside one do not nest) and every byte that is not a bracket.
_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_OPENERS = frozenset(b"[{")


class BadJson(ValueError):
    """A request body that is not JSON, or is nested too deeply (answer 400)."""


def nested_deeper_than(raw: bytes, limit: int) -> bool:
    """Whether the JSON text ``raw`` opens more than ``limit`` arrays or objects inside one
    another, found without parsing (brackets inside strings do not count)."""
    if raw.count(b"[") + raw.count(b"{") <= limit:
        return False  # too few brackets to nest that deep: the usual request stops here
    depth = 0
    for byte in _JSON_STRING.sub(b"", raw).translate(None, _NOT_BRACKETS):
        if byte in _OPENERS:
            depth += 1
            if depth > limit:
                return True
        else:
            depth -= 1
    return False


def load_json(raw: bytes, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """The parsed document; BadJson, with a short message, when it is not JSON or nests
    deeper than ``max_depth``."""
    if nested_deeper_than(raw, max_depth):
        raise BadJson(f"invalid JSON: nested deeper than {max_depth} levels")
    try:
        return json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BadJson(f"invalid JSON: {exc}") from None
    except RecursionError:  # not reached with the depth check; never a 500 all the same
        raise BadJson(f"invalid JSON: nested deeper than {max_depth} levels") from None


def _client(scope: Scope) -> str:
    client = scope.get("client")
    return f"{client[0]}:{client[1]}" if client else "a client"


def on_disconnect(scope: Scope, callback: Callable[[], None]) -> None:
    """Call ``callback`` (on the event loop) if the client goes away before the answer to
    this request is complete: a handler stops its work at once (the LLM drops the request
    from the batch, as vLLM aborts it). Only ReadTimeoutH11Protocol calls it."""
    scope.setdefault(ON_DISCONNECT, []).append(callback)
    if CLIENT_GONE in scope:
        callback()  # gone already


class DisconnectGuard:
    """ASGI middleware: a client that disconnects before its answer is complete is one INFO
    line, never a traceback.

    ``ClientDisconnect`` (the body was cut short, or a handler told of the disconnect by
    :func:`on_disconnect` gave up) ends here; other exceptions pass. ReadTimeoutH11Protocol
    records when the connection was lost (``CLIENT_GONE`` in the scope), so a handler that
    finished after its client left (its answer went nowhere) is logged too. Nothing runs
    beside the request (no task): under a memory squeeze (the CPU stand-in for a full GPU)
    every allocation of the HTTP layer is one the engine may miss.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        cut_short = False
        try:
            await self.app(scope, receive, send)
        except ClientDisconnect:
            cut_short = True
        when = scope.get(CLIENT_GONE)
        if when is None and cut_short:
            when = "before its answer was complete"
        if when is not None and not scope.get(ANSWERED_BY_PROTOCOL):
            logger.info(
                "%s disconnected %s: %s %s", _client(scope), when, scope["method"], scope["path"]
            )


@dataclass(frozen=True)
class ReadLimits:
    """How long a request's headers and body may take to arrive."""

    header_timeout_s: float = 10.0
    body_timeout_s: float = 30.0


def raw_response(status: int, reason: str, body: bytes, headers: list[tuple[str, str]]) -> bytes:
    """An HTTP/1.1 answer with a JSON body that closes the connection, as bytes."""
    head = [
        f"HTTP/1.1 {status} {reason}".encode(),
        b"content-type: application/json",
        b"content-length: " + str(len(body)).encode(),
        b"connection: close",
        *(f"{name}: {value}".encode("latin-1") for name, value in headers),
    ]
    return b"\r\n".join(head) + b"\r\n\r\n" + body


class ReadTimeoutH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with a deadline for a request's headers and one for its body.

    The header clock starts when the connection opens and, for the next request on a
    keep-alive connection, at its first byte (uvicorn's keep-alive time-out covers the idle
    wait before it); the body clock when the headers are complete. A connection that never
    sent a byte is closed quietly; a late request gets 408 and one WARNING line.
    :func:`read_timeout_h11_protocol` fills in the class attributes.
    """

    limits: ClassVar[ReadLimits] = ReadLimits()
    extra_headers: ClassVar[list[tuple[str, str]]] = []

    def render_error(self, status: int, message: str) -> bytes:
        """The JSON body of an answer the protocol gives itself."""
        return json.dumps({"error": message, "code": status}).encode()

    _header_timer: asyncio.TimerHandle | None = None
    _body_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)  # type: ignore[arg-type]
        self._start_header_clock()

    def data_received(self, data: bytes) -> None:
        if self.conn.their_state is h11.IDLE:
            self._start_header_clock()  # the first byte of a request (no-op when running)
        super().data_received(data)
        self._follow_request()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._follow_request()

    def connection_lost(self, exc: Exception | None) -> None:
        self.stop_read_clocks()
        cycle = self.cycle
        if cycle is not None and not cycle.response_complete:
            self._client_gone(cycle.scope, cycle.response_started, cycle.more_body)
        super().connection_lost(exc)

    @staticmethod
    def _client_gone(scope: Any, started: bool, reading: bool) -> None:
        """Say in the scope when the client went, and call the request's callbacks."""
        scope[CLIENT_GONE] = (
            "mid-answer"
            if started
            else "while sending its request"
            if reading
            else "before its answer"
        )
        for callback in scope.get(ON_DISCONNECT, ()):
            try:
                callback()
            except Exception:
                logger.exception("a disconnect callback failed")

    def stop_read_clocks(self) -> None:
        """Cancel both deadlines (the connection is closing, or answered by other means)."""
        for timer in (self._header_timer, self._body_timer):
            if timer is not None:
                timer.cancel()
        self._header_timer = self._body_timer = None

    def _start_header_clock(self) -> None:
        if self._header_timer is None:
            self._header_timer = self.loop.call_later(
                self.limits.header_timeout_s, self._headers_late
            )

    def _follow_request(self) -> None:
        """Move the clocks along with h11's view of the request: headers awaited (IDLE),
        body awaited (SEND_BODY), or neither."""
        state = self.conn.their_state
        if state is not h11.IDLE and self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None
        if state is h11.IDLE and self.conn.trailing_data[0]:
            self._start_header_clock()  # a pipelined request, buffered
        if state is h11.SEND_BODY:
            if self._body_timer is None:
                self._body_timer = self.loop.call_later(self.limits.body_timeout_s, self._body_late)
        elif self._body_timer is not None:
            self._body_timer.cancel()
            self._body_timer = None

    def _headers_late(self) -> None:
        self._header_timer = None
        if self.transport.is_closing() or self.conn.their_state is not h11.IDLE:
            return
        received = len(self.conn.trailing_data[0])
        if not received:
            logger.debug("closing an idle connection from %s", _client({"client": self.client}))
            self.transport.close()
            return
        logger.warning(
            "closing the connection from %s: its request headers did not arrive within %g s "
            "(%d bytes so far)",
            _client({"client": self.client}),
            self.limits.header_timeout_s,
            received,
        )
        self._answer_408("the request headers did not arrive in time")

    def _body_late(self) -> None:
        self._body_timer = None
        cycle = self.cycle
        if self.transport.is_closing() or self.conn.their_state is not h11.SEND_BODY:
            return
        logger.warning(
            "closing the connection from %s: %s %s: its body did not arrive within %g s",
            _client({"client": self.client}),
            self.scope["method"],
            self.scope["path"],
            self.limits.body_timeout_s,
        )
        if cycle is None or cycle.response_started:
            self.transport.close()  # an answer is under way: it cannot change now
            return
        # the handler waiting for the body gets a disconnect; nothing it sends goes out
        self.scope[ANSWERED_BY_PROTOCOL] = "body read timeout"  # type: ignore[literal-required]
        cycle.disconnected = True
        cycle.message_event.set()
        self._answer_408("the request body did not arrive in time")

    def _answer_408(self, message: str) -> None:
        body = self.render_error(408, message)
        self.transport.write(raw_response(408, "Request Timeout", body, self.extra_headers))
        self.transport.close()


def read_timeout_h11_protocol(
    limits: ReadLimits,
    error_body: Callable[[int, str], bytes],
    headers: list[tuple[str, str]] | None = None,
) -> type[ReadTimeoutH11Protocol]:
    """The protocol class for uvicorn's ``http`` option: ``limits`` as above, ``error_body``
    renders a 408's JSON body (the server's error format), ``headers`` go on that answer (the
    app's middleware never sees it, so the replica header has to come this way)."""
    chosen = limits

    class ReadTimeoutProtocol(ReadTimeoutH11Protocol):
        limits = chosen
        extra_headers = list(headers or [])

        def render_error(self, status: int, message: str) -> bytes:
            return error_body(status, message)

    return ReadTimeoutProtocol
