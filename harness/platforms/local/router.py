"""The router of the local platform: an L4 TCP proxy to the Ready replicas (like a Service).

Each accepted connection is pinned to one Ready replica, picked round-robin, and bytes are
piped both ways until a side closes, so keep-alive and streaming just work. When a replica
leaves the Ready set its connections are closed and clients reconnect to a Ready one. With
no Ready replica the client gets a minimal ``503``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Mapping

log = logging.getLogger(__name__)

NO_READY_RESPONSE = (
    b"HTTP/1.1 503 Service Unavailable\r\n"
    b"Content-Type: text/plain\r\n"
    b"Content-Length: 18\r\n"
    b"Connection: close\r\n"
    b"x-replica-id: none\r\n"
    b"\r\n"
    b"no ready replicas\n"
)
_REJECT_LINGER_S = 1.0  # how long to wait for a request (and drain it) before closing
_CONNECT_TIMEOUT_S = 2.0

Backend = tuple[str, int]  # (replica id, port)


class _Pipe(asyncio.Protocol):
    """One side of a proxied connection; forwards what it reads to its peer."""

    def __init__(self, conn: _Connection) -> None:
        self.conn = conn
        self.peer: _Pipe | None = None
        self.transport: asyncio.Transport | None = None
        self.eof = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        peer = self.peer
        if peer is not None and peer.transport is not None:
            peer.transport.write(data)

    def eof_received(self) -> bool:
        self.eof = True
        peer = self.peer
        if peer is None or peer.transport is None or peer.eof:
            self.conn.close()
            return False
        if peer.transport.can_write_eof():
            peer.transport.write_eof()
        return True  # keep the other direction open (half-close)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self.conn.close()

    def pause_writing(self) -> None:
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.resume_reading()


class _ClientPipe(_Pipe):
    """The client side: holds reading until the upstream connection is made."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        assert self.transport is not None
        self.transport.pause_reading()
        self.conn.router.opened(self.conn)


class _Connection:
    """A client connection and, once connected, its upstream replica connection."""

    def __init__(self, router: _RouterCore) -> None:
        self.router = router
        self.client: _Pipe = _ClientPipe(self)
        self.upstream = _Pipe(self)
        self.backend: Backend | None = None
        self.closed = False

    def link(self) -> None:
        self.client.peer = self.upstream
        self.upstream.peer = self.client

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self.client.transport is not None:
            self.client.transport.close()  # flushes what the replica already sent
        if self.upstream.transport is not None:
            self.upstream.transport.abort()
        self.router.forget(self)


class _Rejecter(asyncio.Protocol):
    """Answers a client with 503: waits for its request, replies, drains, closes."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.replied = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        loop = asyncio.get_running_loop()
        loop.call_later(_REJECT_LINGER_S, self._reply)
        loop.call_later(2 * _REJECT_LINGER_S, transport.close)

    def data_received(self, data: bytes) -> None:
        self._reply()

    def eof_received(self) -> bool:
        if self.transport is not None:
            self._reply()
            self.transport.close()
        return False

    def _reply(self) -> None:
        if self.replied or self.transport is None or self.transport.is_closing():
            return
        self.replied = True
        self.transport.write(NO_READY_RESPONSE)
        self.transport.write_eof()  # keep reading so the unread request causes no RST

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None


class _RouterCore:
    """The proxy state; lives on the router's event loop only."""

    def __init__(self, host: str) -> None:
        self.host = host
        self.backends: list[Backend] = []
        self.next_index = 0
        self.connections: dict[Backend, set[_Connection]] = {}
        self.open: set[_Connection] = set()
        self.tasks: set[asyncio.Task[None]] = set()

    def set_backends(self, backends: list[Backend]) -> None:
        gone = set(self.backends) - set(backends)
        self.backends = backends
        for backend in gone:
            conns = self.connections.pop(backend, set())
            if conns:
                log.debug("closing %d connection(s) to %s", len(conns), backend[0])
            for conn in list(conns):
                conn.close()

    def forget(self, conn: _Connection) -> None:
        self.open.discard(conn)
        if conn.backend is not None:
            conns = self.connections.get(conn.backend)
            if conns is not None:
                conns.discard(conn)

    def pick(self, exclude: set[Backend]) -> Backend | None:
        candidates = [b for b in self.backends if b not in exclude]
        if not candidates:
            return None
        backend = candidates[self.next_index % len(candidates)]
        self.next_index += 1
        return backend

    def accept(self) -> asyncio.Protocol:
        if not self.backends:
            return _Rejecter()
        return _Connection(self).client

    def opened(self, conn: _Connection) -> None:
        self.open.add(conn)
        task = asyncio.get_running_loop().create_task(self.connect(conn))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def close_all(self) -> None:
        for conn in list(self.open):
            conn.close()

    async def connect(self, conn: _Connection) -> None:
        loop = asyncio.get_running_loop()
        tried: set[Backend] = set()
        while not conn.closed:
            backend = self.pick(tried)
            if backend is None:
                break
            tried.add(backend)
            try:
                await asyncio.wait_for(
                    loop.create_connection(lambda: conn.upstream, self.host, backend[1]),
                    _CONNECT_TIMEOUT_S,
                )
            except (TimeoutError, OSError) as exc:
                log.debug("connect to %s on port %d failed: %s", backend[0], backend[1], exc)
                continue
            if conn.closed or backend not in self.backends:
                if conn.upstream.transport is not None:
                    conn.upstream.transport.abort()
                if conn.closed:
                    return
                continue
            conn.backend = backend
            self.connections.setdefault(backend, set()).add(conn)
            conn.link()
            if conn.client.transport is not None:
                conn.client.transport.resume_reading()
            return
        transport = conn.client.transport
        if transport is not None and not conn.closed:
            conn.closed = True
            self.forget(conn)
            rejecter = _Rejecter()
            transport.set_protocol(rejecter)
            rejecter.connection_made(transport)
            transport.resume_reading()


class Router:
    """An asyncio TCP proxy on ``host`` (ephemeral port) running in its own thread."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.host = host
        self._core = _RouterCore(host)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.Server | None = None
        self._thread: threading.Thread | None = None
        self._port: int | None = None

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
                    loop.create_server(self._core.accept, self.host, 0, backlog=1024)
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
        """Replace the Ready set ({replica id: port}); thread-safe."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        ordered = sorted(backends.items())
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
            loop.call_soon_threadsafe(self._core.set_backends, ordered)

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
