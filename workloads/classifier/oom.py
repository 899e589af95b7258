"""Out of memory anywhere in a request's path answers 503 for that request only.

The engine already fails a batch whose forward runs out of memory (503). A large request can
run out earlier, while the server is still reading it: the HTTP parser buffers the body,
Starlette joins it, the JSON tensor becomes Python floats, the answer is rendered. Left alone,
a ``MemoryError`` there is a 500 (in the app) or a fatal error of the connection (in the
parser: asyncio closes it, the client sees a reset). Two guards turn both into a 503 that the
client can read, count it (``gpuchaos_oom_total``) and let the next request through:

- :class:`OomGuard`, ASGI middleware around the routes: an allocation failure while the app
  handles a request answers 503 if no response has started yet.
- :func:`oom_safe_h11_protocol`, uvicorn's h11 protocol whose ``data_received`` survives a
  ``MemoryError``: it answers 503 (``connection: close``) itself, tells the app the request is
  gone, drops what it buffered, and then reads and discards the rest of the request, so the
  client finishes sending and reads the answer instead of a reset; the connection closes when
  the client closes it (or after :data:`DISCARD_GRACE_S`).

The socket read itself (asyncio's 256 KiB receive buffer) happens before either guard and
needs a little memory of its own: with no headroom at all a connection can still be reset.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable

import h11
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from workloads.common import is_oom
from workloads.guards import ANSWERED_BY_PROTOCOL, ReadTimeoutH11Protocol

logger = logging.getLogger(__name__)

#: How long a connection that ran out of memory keeps discarding the rest of its request.
DISCARD_GRACE_S = 10.0


def oom_body(where: str) -> bytes:
    """The JSON body of an out-of-memory answer (the classifier's ``{"error": ...}``)."""
    return json.dumps({"error": f"out of memory {where}"}).encode()


class OomGuard:
    """ASGI middleware: an out-of-memory exception before the response starts answers 503.

    ``on_oom`` is called once per such request (count it, give memory back). An exception after
    the response started, or one that is not an allocation failure, propagates unchanged.
    """

    def __init__(self, app: ASGIApp, on_oom: Callable[[], None]) -> None:
        self.app = app
        self.on_oom = on_oom
        self._body = oom_body("while handling the request")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as exc:
            if started or not is_oom(exc):
                raise
            logger.warning(
                "out of memory handling %s %s (%s: %s): answering 503",
                scope.get("method"),
                scope.get("path"),
                type(exc).__name__,
                exc,
            )
            del exc  # its traceback holds the frames (and buffers) of the failed request
            self.on_oom()
            headers = [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(self._body)).encode()),
            ]
            await send({"type": "http.response.start", "status": 503, "headers": headers})
            await send({"type": "http.response.body", "body": self._body})


def oom_safe_h11_protocol(
    on_oom: Callable[[], None],
    headers: list[tuple[str, str]] | None = None,
    base: type[ReadTimeoutH11Protocol] = ReadTimeoutH11Protocol,
) -> type[asyncio.Protocol]:
    """uvicorn's h11 protocol (``base``: with its read time-outs) that answers 503 when
    reading a request runs out of memory.

    ``on_oom`` is called once per such request; ``headers`` are added to that answer (the
    app's own middleware never sees it, so the replica header has to come this way).
    """
    body = oom_body("while reading the request")
    head = [
        b"HTTP/1.1 503 Service Unavailable",
        b"content-type: application/json",
        b"content-length: " + str(len(body)).encode(),
        b"connection: close",
        *(f"{name}: {value}".encode("latin-1") for name, value in headers or []),
    ]
    answer = b"\r\n".join(head) + b"\r\n\r\n" + body

    class OomSafeH11Protocol(base):  # type: ignore[valid-type,misc]
        _discarding = False

        def data_received(self, data: bytes) -> None:
            if self._discarding:
                return  # the rest of a request that was answered 503
            try:
                super().data_received(data)
            except MemoryError as exc:
                logger.warning("out of memory reading a request (%s): answering 503", exc)
                del exc
                self._answer_out_of_memory()

        def _answer_out_of_memory(self) -> None:
            self._discarding = True
            self.stop_read_clocks()  # this request is answered; DISCARD_GRACE_S bounds the rest
            cycle = self.cycle
            in_progress = cycle is not None and not cycle.response_complete
            if in_progress and cycle is not None:
                cycle.scope[ANSWERED_BY_PROTOCOL] = "out of memory"
            # what h11 and the request buffered goes; the parser's state is not trusted again
            self.conn = h11.Connection(h11.SERVER)
            if cycle is not None:
                cycle.body = bytearray()
                cycle.more_body = False
            self.on_oom_callback()
            if in_progress and cycle is not None and cycle.response_started:
                # the app is already answering: the answer cannot change, the connection ends
                cycle.disconnected = True
                cycle.message_event.set()
                self.transport.close()
                return
            if in_progress and cycle is not None:
                # the app waits for the body: it gets a disconnect, and its answer is dropped
                cycle.disconnected = True
                cycle.message_event.set()
            self.transport.write(answer)
            self.flow.resume_reading()
            self.loop.call_later(DISCARD_GRACE_S, self.transport.close)

        def on_oom_callback(self) -> None:
            try:
                on_oom()
            except Exception:
                logger.exception("counting an out-of-memory request failed")

        def shutdown(self) -> None:
            if self._discarding:
                self.transport.close()
                return
            super().shutdown()

    return OomSafeH11Protocol
