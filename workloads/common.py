"""What both reference servers share (torch-free at import): the replica header, admission
control answers, the draining uvicorn server, out-of-memory handling and memory gauges.
"""

from __future__ import annotations

import gc
import logging
import math
from collections.abc import Callable
from types import FrameType
from typing import Any

import uvicorn
from fastapi.responses import JSONResponse
from prometheus_client import CollectorRegistry, Gauge
from starlette.types import ASGIApp, Message, Receive, Scope, Send

logger = logging.getLogger(__name__)

REPLICA_HEADER = "x-replica-id"


class QueueFull(RuntimeError):
    """The server's queue is at its limit: answer 429 with Retry-After."""

    def __init__(self, waiting: int, retry_after_s: float) -> None:
        super().__init__(f"the queue is full ({waiting} requests waiting); retry later")
        self.retry_after_s = retry_after_s


class Draining(RuntimeError):
    """The server got SIGTERM: it finishes what it has and takes nothing new."""


def retry_after_header(seconds: float) -> dict[str, str]:
    """``Retry-After`` in whole seconds (at least 1), as HTTP wants it."""
    return {"retry-after": str(max(1, math.ceil(seconds)))}


class ReplicaHeaderMiddleware:
    """Adds `x-replica-id` to every HTTP response, errors included (wraps the whole app)."""

    def __init__(self, app: ASGIApp, replica_id: str) -> None:
        self.app = app
        self._header = (REPLICA_HEADER.encode("latin-1"), replica_id.encode("latin-1"))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_header(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [*message.get("headers", []), self._header]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_header)


class DrainingServer(uvicorn.Server):
    """uvicorn that calls ``on_drain`` at the first SIGTERM/SIGINT, before its own shutdown.

    uvicorn then stops accepting connections, lets the requests in flight (streams included)
    finish within ``timeout_graceful_shutdown`` and runs the lifespan shutdown.
    """

    def __init__(self, config: uvicorn.Config, on_drain: Callable[[], None]) -> None:
        super().__init__(config)
        self._on_drain = on_drain
        self._drained = False

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if not self._drained:
            self._drained = True
            logger.info("signal %d: draining (no new requests, in-flight ones finish)", sig)
            self._on_drain()
        super().handle_exit(sig, frame)


def is_oom(exc: BaseException) -> bool:
    """True for CUDA out-of-memory, MemoryError and the CPU allocator's failures."""
    if isinstance(exc, MemoryError) or type(exc).__name__ == "OutOfMemoryError":
        return True
    text = str(exc).lower()
    return (
        "out of memory" in text
        or "can't allocate memory" in text
        or "defaultcpuallocator" in text
        or "cannot allocate memory" in text
        # oneDNN (CPU kernels) reports a failed scratchpad allocation this way
        or "could not create a primitive" in text
    )


def release_memory(device_type: str) -> None:
    """After an OOM: drop garbage and give cached allocator blocks back (CUDA)."""
    gc.collect()
    if device_type == "cuda":
        import torch

        torch.cuda.empty_cache()


def track_gpu_memory(registry: CollectorRegistry, device: str) -> None:
    """GPU memory gauges of this process, read at scrape time (CUDA only)."""
    import torch

    dev = torch.device(device)
    Gauge(
        "gpuchaos_gpu_memory_allocated_bytes",
        "GPU memory used by tensors of this process.",
        registry=registry,
    ).set_function(lambda: float(torch.cuda.memory_allocated(dev)))
    Gauge(
        "gpuchaos_gpu_memory_reserved_bytes",
        "GPU memory reserved by this process's caching allocator.",
        registry=registry,
    ).set_function(lambda: float(torch.cuda.memory_reserved(dev)))


def error_json(status: int, message: str, kind: str, headers: dict[str, str] | None = None) -> Any:
    """An OpenAI-style error body."""
    return JSONResponse(
        {"error": {"message": message, "type": kind, "param": None, "code": status}},
        status_code=status,
        headers=headers,
    )


_M_MMAP_THRESHOLD = -3  # glibc mallopt parameter
#: Allocations from this size on get address space of their own: tensors of 1 MiB and more,
#: while socket buffers (asyncio reads 256 KiB at a time) stay in the heap.
MMAP_THRESHOLD_BYTES = 1024 * 1024


def pin_mmap_threshold() -> bool:
    """Make large host allocations map fresh memory, every time (glibc only; CPU replicas).

    glibc raises its mmap threshold as large blocks are freed, and then serves them from heap
    and arena address space reserved earlier. A squeezed RLIMIT_AS (the CPU stand-in for GPU
    memory exhaustion) would then never bite: pinning the threshold makes the next large
    tensor fail to allocate, the way a full GPU fails the next cudaMalloc. Returns False
    where mallopt is not available.
    """
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        libc = ctypes.CDLL(name)
        return bool(libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES))
    except (OSError, AttributeError):
        return False
