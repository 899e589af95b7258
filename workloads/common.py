"""What both reference servers share (torch-free at import): the replica header, admission
control answers, the draining uvicorn server, the replica's life (load, serve, drain, exit),
and the engines' device start-up, queue refusal and out-of-memory handling. How requests are
refused (nesting, slow clients, disconnects) is in workloads/guards.py; `Replica.serve` puts
those guards around every server.
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import math
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from types import FrameType
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Protocol, TypeVar

import uvicorn
from fastapi import FastAPI, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from workloads import sharing
from workloads.faulthook import HOOK, cuda_error_message, is_cuda_error
from workloads.guards import DisconnectGuard, ReadLimits, read_timeout_h11_protocol
from workloads.metrics import STARTUP_STAGES, ReplicaMetrics

if TYPE_CHECKING:
    import torch

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


def openai_error(status: int, message: str, kind: str) -> dict[str, Any]:
    """An OpenAI-style error document."""
    return {"error": {"message": message, "type": kind, "param": None, "code": status}}


def error_json(
    status: int, message: str, kind: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    """An OpenAI-style error answer."""
    return JSONResponse(openai_error(status, message, kind), status_code=status, headers=headers)


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


class ReplicaSettings(Protocol):
    """The settings every server has."""

    @property
    def host(self) -> str: ...
    @property
    def port(self) -> int: ...
    @property
    def device(self) -> str: ...
    @property
    def model(self) -> str: ...
    @property
    def replica_id(self) -> str: ...
    @property
    def shutdown_grace_s(self) -> float: ...
    @property
    def threads(self) -> int: ...
    @property
    def header_timeout_s(self) -> float: ...
    @property
    def body_timeout_s(self) -> float: ...
    @property
    def memory_fraction(self) -> float | None: ...


@dataclass(frozen=True)
class StartupTimes:
    """Seconds an engine's `load` spent in each of its stages."""

    device_init: float
    weights: float
    warmup: float


class ReplicaEngine(Protocol):
    """What a replica asks of its engine."""

    @property
    def ready(self) -> bool: ...
    def load(self) -> StartupTimes: ...
    def serve_forever(self) -> None: ...
    def stop(self) -> None: ...


SettingsT = TypeVar("SettingsT", bound=ReplicaSettings)
MetricsT = TypeVar("MetricsT", bound=ReplicaMetrics)
EngineT = TypeVar("EngineT", bound=ReplicaEngine)


class Replica(ABC, Generic[SettingsT, MetricsT, EngineT]):
    """One server process: settings, metrics and (once loaded) the engine.

    The port is bound before the model loads: a loader thread imports torch, builds and warms
    up the engine and then runs its loop; the first SIGTERM drains. A server names its loader
    thread, its logger (its lines keep their names) and what it loads, and builds its engine.
    """

    thread_name: ClassVar[str]
    log: ClassVar[logging.Logger]
    #: What the model is, in the "ready" line: "<kind> <model> on <device>".
    kind: ClassVar[str]
    #: Whether CPU forwards may use oneDNN (the LLM turns it off: see ``_load``).
    cpu_onednn: ClassVar[bool] = True

    def __init__(self, settings: SettingsT, metrics: MetricsT, started: float) -> None:
        self.settings = settings
        self.metrics = metrics
        self.started = started
        self.engine: EngineT | None = None
        self.failure: str | None = None
        self.draining = False
        self.on_fatal: Callable[[], None] = lambda: None
        self.mps = sharing.mps_status(settings.device)
        self._fraction_enforced = metrics.track_sharing(
            settings.memory_fraction,
            self.mps.active,
            self.mps.memory_limit_bytes,
            lambda: float(HOOK.hog.held_bytes),
        )

    @property
    def ready(self) -> bool:
        return self.engine is not None and self.engine.ready and not self.draining

    def start_loading(self) -> None:
        threading.Thread(target=self._load_and_serve, name=self.thread_name, daemon=True).start()

    def stop(self) -> None:
        if self.engine is not None:
            self.engine.stop()

    @abstractmethod
    def engine_builder(self) -> Callable[[], EngineT]:
        """Import the engine's module (its time counts as import) and say how to build it."""

    def _load_and_serve(self) -> None:
        try:
            engine = self._load()
        except Exception as exc:
            self.failure = f"{type(exc).__name__}: {exc}"
            self.log.exception("model load failed; exiting")
            self.on_fatal()
            return
        self.engine = engine
        engine.serve_forever()

    def _load(self) -> EngineT:
        s = self.settings
        t0 = time.perf_counter()
        import torch

        build = self.engine_builder()
        torch.set_num_threads(s.threads)
        if not self.cpu_onednn and not str(s.device).startswith("cuda"):
            # Why: after an allocation failed under a lowered address-space limit (the
            # memory faults' CPU stand-in), a oneDNN matmul primitive could keep failing
            # ("could not create a primitive") once the limit was lifted, so the replica
            # never recovered, which a CUDA OOM does not do. The LLM's forward is as fast
            # without oneDNN on CPU (1.1-1.5 ms per tiny forward either way).
            torch.backends.mkldnn.set_flags(False)
        import_seconds = time.perf_counter() - t0
        sharing.log_mps(self.mps)
        # before the engine's first allocation on the device: the cap covers the weights too
        # (on CUDA this initialises the device: its time counts as device init)
        t1 = time.perf_counter()
        if sharing.apply_memory_fraction(s.device, s.memory_fraction):
            self._fraction_enforced.set(1)
        fraction_seconds = time.perf_counter() - t1
        engine = build()
        times = engine.load()
        stages = dict(
            zip(
                STARTUP_STAGES,
                (import_seconds, fraction_seconds + times.device_init, times.weights, times.warmup),
                strict=True,
            )
        )
        for stage, seconds in stages.items():
            self.metrics.startup_stage(stage, seconds)
        self.metrics.ready.set(1)
        self.log.info(
            "ready: %s %s on %s, replica %s; startup import %.2f s, device init %.2f s, "
            "weights %.2f s, warm-up %.2f s (%.2f s since launch)",
            self.kind,
            s.model,
            s.device,
            s.replica_id,
            *stages.values(),
            time.perf_counter() - self.started,
        )
        return engine

    @asynccontextmanager
    async def lifespan(self, _: FastAPI) -> AsyncIterator[None]:
        self.start_loading()
        yield
        self.stop()

    def fastapi_app(self, title: str) -> FastAPI:
        """An app that loads the model at startup and stops the engine at shutdown, without
        documentation pages, with ``GET /metrics``."""
        app = FastAPI(
            title=title, lifespan=self.lifespan, docs_url=None, redoc_url=None, openapi_url=None
        )

        @app.get("/metrics")
        async def metrics() -> Response:
            return Response(self.metrics.render(), media_type=CONTENT_TYPE_LATEST)

        return app

    def error_body(self, status: int, message: str) -> bytes:
        """The JSON body of an error the HTTP protocol answers itself (a 408): the server's
        error format, OpenAI's unless a server says otherwise."""
        return json.dumps(openai_error(status, message, "timeout")).encode()

    def http_protocol(self) -> type[asyncio.Protocol]:
        """uvicorn's h11 protocol with the header and body read time-outs of the settings."""
        s = self.settings
        return read_timeout_h11_protocol(
            ReadLimits(s.header_timeout_s, s.body_timeout_s),
            self.error_body,
            [(REPLICA_HEADER, s.replica_id)],
        )

    def serve(self, app: ASGIApp, what: str, **uvicorn_options: Any) -> int:
        """Serve `app` until SIGTERM/SIGINT; 0 on a clean stop, 1 if the model failed to load.

        `what` names the model in the first log line; `uvicorn_options` go to uvicorn.Config.
        A client that disconnects is one log line (DisconnectGuard); requests whose headers or
        body arrive too slowly get 408 (`http_protocol`).
        """
        s = self.settings
        config = uvicorn.Config(
            DisconnectGuard(app),
            host=s.host,
            port=s.port,
            log_level="warning",
            log_config=None,
            access_log=False,
            lifespan="on",
            timeout_graceful_shutdown=max(1, round(s.shutdown_grace_s)),
            http=self.http_protocol(),
            **uvicorn_options,
        )

        def drain() -> None:
            self.draining = True

        server = DrainingServer(config, drain)

        def fatal() -> None:
            server.should_exit = True

        self.on_fatal = fatal
        self.log.info(
            "serving %s on http://%s:%d (device %s, replica %s); loading the model",
            what,
            s.host,
            s.port,
            s.device,
            s.replica_id,
        )
        server.run()
        if self.failure is not None:
            self.log.error("exiting: %s", self.failure)
            return 1
        return 0


def init_device(device: torch.device, metrics: ReplicaMetrics | None) -> None:
    """Engine start-up: CUDA is checked, selected, initialised and its memory gauged; on CPU
    large allocations are made to map fresh memory (see `pin_mmap_threshold`)."""
    if device.type == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise RuntimeError(f"device {device} requested but CUDA is not available")
        torch.cuda.set_device(device)
        torch.empty(1, device=device)
        if metrics is not None:
            metrics.track_gpu_memory(str(device))
    else:
        pin_mmap_threshold()


def queue_full(
    waiting: int, per_batch: int, request_s: float, metrics: ReplicaMetrics | None
) -> QueueFull:
    """Count a refusal at the queue limit; the error says to retry once the waiting requests
    (`per_batch` at a time, `request_s` each) have had their turn."""
    if metrics is not None:
        metrics.rejected("queue_full")
    return QueueFull(waiting, request_s * (1 + waiting / per_batch))


def engine_failure(
    exc: Exception, kind: str, count: int, device_type: str, metrics: ReplicaMetrics | None
) -> str:
    """After a forward of `count` requests raised (`kind`: oom or other): give memory back
    after an OOM and count it; returns the message their requests fail with (503)."""
    if kind == "oom":
        release_memory(device_type)
    if metrics is not None:
        metrics.engine_error(kind)
        metrics.failed_requests.inc(count)
    if kind == "oom":
        return "out of memory"
    if is_cuda_error(exc):  # a poisoned context: the client sees the CUDA error itself
        return cuda_error_message(exc)
    return f"engine error: {type(exc).__name__}"


def failure_status(exc: BaseException) -> int:
    """The status a failed forward's requests get: 500 for a CUDA error (the context is
    broken, not busy: a retry here fails the same way), else 503."""
    return 500 if is_cuda_error(exc) else 503
