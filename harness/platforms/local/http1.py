"""HTTP/1.1 message framing for the local router: heads, bodies, streamed copies.

The router forwards requests and responses in their wire form instead of through an HTTP
library, so that a response is streamed to the client as it arrives (server-sent events
included) and a replica that dies mid-response cuts the client's response as a real proxy
does. This module is that wire form: the canned answers the router gives itself, the parsed
head of a message, a request body read whole (content-length or chunked), and a response
body copied chunk by chunk until its framing (or the connection) ends.
"""

from __future__ import annotations

import asyncio

NO_READY_RESPONSE = (
    b"HTTP/1.1 503 Service Unavailable\r\n"
    b"Content-Type: text/plain\r\n"
    b"Content-Length: 18\r\n"
    b"x-replica-id: none\r\n"
    b"\r\n"
    b"no ready replicas\n"
)
BAD_GATEWAY_RESPONSE = (
    b"HTTP/1.1 502 Bad Gateway\r\n"
    b"Content-Type: text/plain\r\n"
    b"Content-Length: 24\r\n"
    b"Connection: close\r\n"
    b"x-replica-id: none\r\n"
    b"\r\n"
    b"replica connection lost\n"
)
BAD_REQUEST_RESPONSE = b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
HEAD_LIMIT = 64 * 1024
COPY_CHUNK = 64 * 1024
IO_ERRORS = (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, OSError)


class Head:
    """A parsed HTTP/1.1 message head: start line and lower-cased header names."""

    __slots__ = ("headers", "raw", "start")

    def __init__(self, raw: bytes) -> None:
        self.raw = raw
        lines = raw.split(b"\r\n")
        self.start = lines[0]
        self.headers: dict[bytes, bytes] = {}
        for line in lines[1:]:
            if not line:
                continue
            name, _, value = line.partition(b":")
            self.headers[name.strip().lower()] = value.strip()

    def header(self, name: bytes) -> bytes:
        return self.headers.get(name, b"")

    def keep_alive(self) -> bool:
        conn = self.header(b"connection").lower()
        if self.start.endswith(b"HTTP/1.0") or self.start.startswith(b"HTTP/1.0"):
            return conn == b"keep-alive"
        return conn != b"close"

    def chunked(self) -> bool:
        return b"chunked" in self.header(b"transfer-encoding").lower()

    def content_length(self) -> int | None:
        value = self.header(b"content-length")
        return int(value) if value else None

    def status(self) -> int:
        """The status code of a response head (0 when it has none)."""
        parts = self.start.split(b" ", 2)
        return int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0


async def read_head(reader: asyncio.StreamReader) -> Head | None:
    """The next message head, or None at a clean end of stream."""
    try:
        raw = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as exc:
        if exc.partial.strip():
            raise
        return None
    return Head(raw)


async def read_body(reader: asyncio.StreamReader, head: Head) -> bytes:
    """A request body (content-length or chunked, kept in its wire form)."""
    if head.chunked():
        parts = []
        while True:
            line = await reader.readuntil(b"\r\n")
            parts.append(line)
            size = int(line.split(b";", 1)[0], 16)
            if size == 0:
                while True:  # trailers up to the empty line
                    trailer = await reader.readuntil(b"\r\n")
                    parts.append(trailer)
                    if trailer == b"\r\n":
                        return b"".join(parts)
            parts.append(await reader.readexactly(size + 2))
    length = head.content_length() or 0
    return await reader.readexactly(length) if length else b""


async def copy_body(
    reader: asyncio.StreamReader,
    resp: Head,
    req: Head,
    client: asyncio.StreamWriter,
) -> bool:
    """Stream the response body to the client; False when it ended with the connection."""
    status = resp.start.split(b" ", 2)[1] if b" " in resp.start else b""
    if req.start.startswith(b"HEAD ") or status in (b"204", b"304") or status[:1] == b"1":
        await client.drain()
        return True
    if resp.chunked():
        while True:
            line = await reader.readuntil(b"\r\n")
            client.write(line)
            size = int(line.split(b";", 1)[0], 16)
            if size == 0:
                while True:
                    trailer = await reader.readuntil(b"\r\n")
                    client.write(trailer)
                    if trailer == b"\r\n":
                        await client.drain()
                        return True
            client.write(await reader.readexactly(size + 2))
            await client.drain()
    length = resp.content_length()
    if length is not None:
        remaining = length
        while remaining:
            data = await reader.read(min(remaining, COPY_CHUNK))
            if not data:
                raise asyncio.IncompleteReadError(b"", remaining)
            client.write(data)
            remaining -= len(data)
            await client.drain()
        return True
    while data := await reader.read(COPY_CHUNK):  # delimited by the connection's end
        client.write(data)
        await client.drain()
    return False
