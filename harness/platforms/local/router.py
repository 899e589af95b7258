"""The router of the local platform: an HTTP/1.1 reverse proxy to the Ready replicas.

Like the L7 gateway in front of a real inference deployment (a Service behind Envoy or
the Gateway API inference extension), it routes each request, not each connection, to
the Ready replica with the fewest requests in flight (round-robin among ties), so
capacity that comes back is used at once even by keep-alive clients. Responses are
streamed through as they arrive (server-sent events included). A replica that dies
mid-response cuts the client's response, as a real proxy does; a connection refused by
a replica that just died is retried once on another one. With no Ready replica the
client gets ``503`` with ``x-replica-id: none``.

Least-in-flight routing has a known failure mode: a replica that fails fast (out of
memory, answering 503 at once) always has the fewest requests in flight, so it draws *more*
traffic than the healthy ones, a black hole. Optional outlier ejection, as Envoy does it
(``consecutive_5xx``), takes a replica out of the rotation after that many 5xx answers or
failed connections in a row, for ``base_ejection_s`` times its number of ejections (at most
``max_ejection_s``), never the last replica and at most ``max_ejection_percent`` of them;
each ejection and return is reported (``replica_ejected``, ``replica_returned`` on the
timeline).

The wire form of the messages (heads, bodies, the streamed copy, the router's own answers)
is :mod:`~harness.platforms.local.http1`; this module routes.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import math
import threading
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from harness.platforms.local.http1 import (
    BAD_GATEWAY_RESPONSE,
    BAD_REQUEST_RESPONSE,
    HEAD_LIMIT,
    IO_ERRORS,
    NO_READY_RESPONSE,
    Head,
    copy_body,
    read_body,
    read_head,
)

if TYPE_CHECKING:
    from harness.config import OutlierEjectionSpec
    from harness.timeline import EventKind

#: Called on the router's loop with (event kind, replica id, details): ``Timeline.emit``.
EventSink = Callable[["EventKind", str, dict[str, Any]], Any]

log = logging.getLogger(__name__)

_CONNECT_TIMEOUT_S = 2.0


class _Backend:
    __slots__ = (
        "ejected_until",
        "ejections",
        "failures",
        "id",
        "idle",
        "inflight",
        "live",
        "out",
        "port",
    )

    def __init__(self, replica_id: str, port: int) -> None:
        self.id = replica_id
        self.port = port
        self.inflight = 0
        self.live = True
        self.idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        self.failures = 0  # 5xx answers or failed connections in a row
        self.ejections = 0
        self.ejected_until = 0.0  # time.monotonic(); in the past: in the rotation
        self.out = False  # ejected and its return not yet reported

    def close_idle(self) -> None:
        for _, writer in self.idle:
            writer.close()
        self.idle.clear()


class _RouterCore:
    """Runs on the router's event loop only."""

    def __init__(
        self,
        host: str,
        ejection: OutlierEjectionSpec | None = None,
        on_event: EventSink | None = None,
    ) -> None:
        self.host = host
        self.backends: dict[str, _Backend] = {}
        self._rr = itertools.count()
        self._clients: set[asyncio.StreamWriter] = set()
        self.ejection = ejection
        self._on_event = on_event

    def set_backends(self, ordered: list[tuple[str, int]]) -> None:
        wanted = dict(ordered)
        for rid, backend in list(self.backends.items()):
            if wanted.get(rid) != backend.port:
                backend.live = False
                backend.close_idle()
                del self.backends[rid]
        for rid, port in ordered:
            if rid not in self.backends:
                self.backends[rid] = _Backend(rid, port)
        log.debug("router backends: %s", sorted(self.backends))

    def pick(self, exclude: _Backend | None = None) -> _Backend | None:
        """The Ready backend in the rotation with the fewest requests in flight; round-robin
        among ties."""
        now = time.monotonic()
        candidates = [
            b for b in self.backends.values() if b is not exclude and b.ejected_until <= now
        ]
        for backend in candidates:
            if backend.out:
                self._back(backend)
        if not candidates:
            return None
        least = min(b.inflight for b in candidates)
        ties = [b for b in candidates if b.inflight == least]
        return ties[next(self._rr) % len(ties)]

    def answered(self, backend: _Backend, status: int) -> None:
        """Outlier detection: count a 5xx answer (0: no answer) or clear the streak."""
        if not (status == 0 or 500 <= status <= 599):
            backend.failures = 0
            return
        backend.failures += 1
        policy = self.ejection
        if policy is None or backend.failures < policy.consecutive_5xx or not backend.live:
            return
        now = time.monotonic()
        if backend.ejected_until > now:
            return
        in_rotation = [b for b in self.backends.values() if b.ejected_until <= now]
        ejected = len(self.backends) - len(in_rotation)
        limit = max(1, math.floor(len(self.backends) * policy.max_ejection_percent / 100))
        if len(in_rotation) <= 1 or ejected >= limit:
            log.debug("router: not ejecting %s (%d already out)", backend.id, ejected)
            return
        backend.ejections += 1
        backend.failures = 0
        duration = min(policy.base_ejection_s * backend.ejections, policy.max_ejection_s)
        backend.ejected_until = now + duration
        backend.out = True
        log.warning(
            "router: ejected %s for %.1f s after %d failures in a row",
            backend.id,
            duration,
            policy.consecutive_5xx,
        )
        self._emit(
            "replica_ejected",
            backend.id,
            {"failures": policy.consecutive_5xx, "for_s": duration, "ejections": backend.ejections},
        )
        asyncio.get_running_loop().call_later(duration, self._returned, backend)

    def _returned(self, backend: _Backend) -> None:
        # (asyncio may run a timer up to its clock resolution early: allow a millisecond)
        back = backend.ejected_until <= time.monotonic() + 0.001
        if self.backends.get(backend.id) is backend and back and backend.out:
            self._back(backend)

    def _back(self, backend: _Backend) -> None:
        """Report a return once, at whichever comes first: the timer, or the first pick that
        sees the ejection over. Why both: on a busy machine the timer runs late, and traffic
        may already have reached the replica (and ejected it again) before it fires; the
        timeline must still show every return before the next ejection."""
        backend.out = False
        log.info("router: %s is back in the rotation", backend.id)
        self._emit("replica_returned", backend.id, {"ejections": backend.ejections})

    def _emit(self, kind: EventKind, replica_id: str, details: dict[str, Any]) -> None:
        if self._on_event is None:
            return
        try:
            self._on_event(kind, replica_id, details)
        except Exception:
            log.exception("router: reporting %s failed", kind)

    def clear_ejections(self) -> int:
        """Every ejected replica back in the rotation now, every failure streak and ejection
        count forgotten (a game day's reset: the next experiment starts from a clean
        router); returns how many were out. A pending return timer then finds nothing out."""
        out = 0
        for backend in self.backends.values():
            if backend.out or backend.ejected_until > time.monotonic():
                out += 1
            backend.failures = 0
            backend.ejections = 0
            backend.ejected_until = 0.0
            if backend.out:
                self._back(backend)
        return out

    def close_all(self) -> None:
        for backend in self.backends.values():
            backend.close_idle()
        for writer in list(self._clients):
            writer.close()

    async def handle_client(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self._clients.add(writer)
        try:
            while True:
                try:
                    head = await read_head(reader)
                    if head is None:
                        return
                    body = await read_body(reader, head)
                except (ValueError, asyncio.LimitOverrunError):
                    writer.write(BAD_REQUEST_RESPONSE)
                    return
                backend = self.pick()
                if backend is None:
                    writer.write(NO_READY_RESPONSE)
                    await writer.drain()
                    if not head.keep_alive():
                        return
                    continue
                if not await self._forward(backend, head, body, writer):
                    return
                if not head.keep_alive():
                    return
        except IO_ERRORS:
            return
        except asyncio.CancelledError:
            # the router is stopping; ending normally keeps Python 3.11's stream callback
            # from logging the cancellation as an error
            return
        finally:
            self._clients.discard(writer)
            writer.close()

    async def _connect(
        self, backend: _Backend
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, bool]:
        while backend.idle:
            reader, writer = backend.idle.pop()
            if not writer.is_closing() and not reader.at_eof():
                return reader, writer, True
            writer.close()
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(self.host, backend.port, limit=HEAD_LIMIT),
            _CONNECT_TIMEOUT_S,
        )
        return reader, writer, False

    async def _send(
        self, backend: _Backend, request: bytes
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, Head] | None:
        """Send the request and read the response head; a stale pooled connection is
        replaced once. None when the backend cannot be reached."""
        for _ in range(2):
            try:
                reader, writer, pooled = await self._connect(backend)
            except (TimeoutError, *IO_ERRORS):
                return None
            try:
                writer.write(request)
                await writer.drain()
                head = await read_head(reader)
            except IO_ERRORS:
                head = None
            if head is not None:
                return reader, writer, head
            writer.close()
            if not pooled:
                return None
        return None

    async def _forward(
        self, backend: _Backend, head: Head, body: bytes, client: asyncio.StreamWriter
    ) -> bool:
        """Proxy one request; True when the client connection can carry another."""
        request = head.raw + body
        target: _Backend | None = backend
        for _ in range(2):  # a replica refusing before any response: one other replica
            if target is None:
                break
            current = target
            current.inflight += 1
            try:
                sent = await self._send(current, request)
                if sent is None:
                    self.answered(current, 0)
                    target = self.pick(exclude=current)
                    continue
                reader, writer, resp = sent
                self.answered(current, resp.status())
                try:
                    client.write(resp.raw)
                    reusable = await copy_body(reader, resp, head, client)
                except IO_ERRORS:
                    writer.close()
                    return False
                if reusable and resp.keep_alive() and current.live:
                    current.idle.append((reader, writer))
                else:
                    writer.close()
                return reusable
            finally:
                current.inflight -= 1
        client.write(BAD_GATEWAY_RESPONSE)
        return False


class Router:
    """The proxy on ``host`` (an ephemeral port), running its event loop in its own thread."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        ejection: OutlierEjectionSpec | None = None,
        on_event: EventSink | None = None,
    ) -> None:
        self.host = host
        self._core = _RouterCore(host, ejection, on_event)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.Server | None = None
        self._thread: threading.Thread | None = None
        self._port: int | None = None
        self._ready: dict[str, int] = {}  # the supervisor's Ready set, before held_out
        #: replicas taken out of the rotation by hand (on-call's eject) until let back
        self.held_out: set[str] = set()

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("router is not running")
        return self._port

    def start(self) -> int:
        """Bind and serve; returns the port."""
        if self._thread is not None:
            return self.port
        started = threading.Event()
        errors: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                self._server = loop.run_until_complete(
                    asyncio.start_server(
                        self._core.handle_client, self.host, 0, backlog=1024, limit=HEAD_LIMIT
                    )
                )
                self._port = self._server.sockets[0].getsockname()[1]
            except BaseException as exc:
                errors.append(exc)
                started.set()
                loop.close()
                return
            started.set()
            try:
                loop.run_forever()
            finally:
                self._shutdown(loop)

        self._thread = threading.Thread(target=run, name="gpuchaos-router", daemon=True)
        self._thread.start()
        started.wait()
        if errors:
            self._thread = None
            raise errors[0]
        log.debug("router listening on %s:%d", self.host, self.port)
        return self.port

    def set_backends(self, backends: Mapping[str, int]) -> None:
        """Replace the Ready set ({replica id: port}), less the replicas held out; thread-safe."""
        self._ready = dict(backends)
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        ordered = sorted((rid, port) for rid, port in backends.items() if rid not in self.held_out)
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
            loop.call_soon_threadsafe(self._core.set_backends, ordered)

    def hold_out(self, replica_id: str, out: bool = True) -> None:
        """Take a replica out of the rotation by hand until let back (``out=False``), as
        on-call ejects a bad pod from a load balancer; it keeps running and being probed."""
        (self.held_out.add if out else self.held_out.discard)(replica_id)
        self.set_backends(self._ready)

    def clear_ejections(self, timeout: float = 5.0) -> int:
        """Put every ejected replica back in the rotation (see ``_RouterCore``); thread-safe,
        waits for the router's loop to do it; returns how many were out."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return 0
        done = threading.Event()
        result: list[int] = []

        def clear() -> None:
            try:
                result.append(self._core.clear_ejections())
            finally:
                done.set()

        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
            loop.call_soon_threadsafe(clear)
            done.wait(timeout)
        return result[0] if result else 0

    def stop(self) -> None:
        """Close the listener and every connection; idempotent."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        if not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=5.0)
        self._thread = None
        self._loop = None

    def _shutdown(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._server is not None:
            self._server.close()
        self._core.set_backends([])
        self._core.close_all()
        for task in asyncio.all_tasks(loop):
            task.cancel()
        try:
            loop.run_until_complete(asyncio.sleep(0))
        finally:
            loop.close()
