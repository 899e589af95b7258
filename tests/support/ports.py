"""Ports on 127.0.0.1 for tests: a free one, one that accepts connections and never answers,
and a server of the test process served from a thread.

Why one module: a fixed port collides with another test or a developer's server, so every
test asks the kernel for an ephemeral port here, and only ever on the loopback address.
"""

from __future__ import annotations

import socket
import socketserver
import threading
from collections.abc import Iterator
from contextlib import contextmanager

LOOPBACK = "127.0.0.1"


def free_port() -> int:
    """An ephemeral TCP port of 127.0.0.1 that was free a moment ago: use it at once, the kernel
    may hand it out again."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


@contextmanager
def silent_port() -> Iterator[int]:
    """A port of 127.0.0.1 that accepts connections (the kernel's backlog) and never answers,
    like a hung server; closed when the block ends."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        sock.listen(128)
        yield int(sock.getsockname()[1])


@contextmanager
def in_thread(server: socketserver.BaseServer, name: str = "test-server") -> Iterator[int]:
    """Serve ``server`` (bound to 127.0.0.1 already) from a daemon thread of the test process
    and yield its port; it is shut down, closed and its thread joined when the block ends."""
    thread = threading.Thread(target=server.serve_forever, name=name, daemon=True)
    thread.start()
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
