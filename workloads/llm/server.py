"""The HTTP layer: an OpenAI-style completions API, health checks and Prometheus metrics.

The server binds its port before the model loads: a loader thread imports torch, builds and
warms up the model and then becomes the engine thread, while /health/live already answers and
/health/ready says 503 until the engine is warm. The event loop never runs the model.

Malformed requests are refused as vLLM refuses them, with a 400 and a short OpenAI-style error:
a body that is not JSON or nests deeper than ``guards.MAX_JSON_DEPTH`` levels; a prompt that
does not fit the context. The prompt is never cut: its tokens plus ``max_tokens`` must fit the
model's context (``max_model_len``, ``n_ctx``), else the answer states both, as vLLM's does
("This model's maximum context length is 256 tokens. However, you requested 300 tokens (290
in the prompt, 10 in the completion)..."). Without ``max_tokens`` a completion gets up to
``DEFAULT_MAX_TOKENS``, fewer when the context has less room left (vLLM gives it the room
left); a prompt that fills the context has no room for one token and is refused. Slow
clients and disconnects are handled around the app (workloads/guards.py).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import AsyncGenerator, Callable
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, StrictBool, StrictInt, ValidationError, field_validator
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp

from workloads import common, faulthook
from workloads.common import (
    REPLICA_HEADER,
    QueueFull,
    ReplicaHeaderMiddleware,
    error_json,
    retry_after_header,
)
from workloads.guards import BadJson, load_json, on_disconnect
from workloads.llm.config import ServerSettings
from workloads.llm.events import ErrorEvent, GenerationEvent, GenerationRequest, TokenEvent
from workloads.llm.metrics import Metrics
from workloads.llm.tokenizer import Tokenizer

if TYPE_CHECKING:
    from workloads.llm.engine import Engine

logger = logging.getLogger(__name__)

__all__ = ["REPLICA_HEADER", "Replica", "build_asgi_app", "create_app", "serve"]

DEFAULT_MAX_TOKENS = 16


class CompletionRequest(BaseModel):
    """The fields of an OpenAI completions request that matter here; others are ignored."""

    model_config = ConfigDict(extra="allow")

    model: str | None = None
    prompt: str | list[str]
    max_tokens: StrictInt | None = None
    stream: StrictBool = False
    stream_options: dict[str, Any] | None = None

    @field_validator("prompt")
    @classmethod
    def _one_prompt(cls, value: str | list[str]) -> str | list[str]:
        if isinstance(value, list) and len(value) != 1:
            raise ValueError("exactly one prompt is supported")
        return value

    def prompt_text(self) -> str:
        return self.prompt if isinstance(self.prompt, str) else self.prompt[0]


#: What the queue of a request gets when its client disconnects (nginx's 499 status).
GONE = ErrorEvent("the client disconnected", 499)

ERROR_KINDS = {429: "rate_limit_exceeded", 503: "service_unavailable", 504: "timeout"}


def _failed(status: int, message: str) -> JSONResponse:
    """An engine failure (503 out of memory or shutting down, 504 timed out)."""
    return error_json(status, message, ERROR_KINDS.get(status, "server_error"))


def _bad_request(message: str) -> JSONResponse:
    return error_json(400, message, "invalid_request_error")


def _unavailable(message: str) -> JSONResponse:
    return error_json(503, message, "service_unavailable")


def _validation_message(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "body"
        parts.append(f"{where}: {err['msg']}")
    return "; ".join(parts)


def context_problem(prompt_tokens: int, max_tokens: int, n_ctx: int) -> str | None:
    """Why a prompt of `prompt_tokens` and a completion of up to `max_tokens` do not fit a
    context of `n_ctx` tokens (vLLM's wording), or None when they do."""
    total = prompt_tokens + max_tokens
    if total <= n_ctx:
        return None
    return (
        f"This model's maximum context length is {n_ctx} tokens. However, you requested "
        f"{total} tokens ({prompt_tokens} in the prompt, {max_tokens} in the completion). "
        "Please reduce the length of the prompt or completion."
    )


def _sse(payload: dict[str, Any] | str) -> bytes:
    data = payload if isinstance(payload, str) else json.dumps(payload, separators=(",", ":"))
    return f"data: {data}\n\n".encode()


class Replica(common.Replica[ServerSettings, Metrics, "Engine"]):
    """The state of one server process: settings, metrics, tokenizer and (once loaded) engine."""

    thread_name = "llm-engine"
    log = logger
    kind = "model"
    cpu_onednn = False

    def __init__(self, settings: ServerSettings, metrics: Metrics, started: float) -> None:
        super().__init__(settings, metrics, started)
        self.config = settings.model_config
        self.tokenizer = Tokenizer(self.config.vocab_size)

    def engine_builder(self) -> Callable[[], Engine]:
        from workloads.llm.engine import Engine

        s = self.settings
        return lambda: Engine(
            s.model,
            s.device,
            s.max_batch_size,
            seed=s.seed,
            metrics=self.metrics,
            max_queue_size=s.max_queue_size,
            kv_cache="on-demand" if s.kv_cache == "on-demand" else "preallocate",
            gpu_memory_utilization=s.gpu_memory_utilization,
            cuda_graphs=s.cuda_graphs,
        )


def create_app(replica: Replica) -> FastAPI:
    """The FastAPI app (without the replica header; `build_asgi_app` adds it)."""

    app = replica.fastapi_app("gpuchaos reference LLM server")
    settings = replica.settings
    config = replica.config
    created = int(time.time())

    @app.get("/health/live")
    async def live() -> JSONResponse:
        problem = await faulthook.liveness(settings.liveness, replica.ready)
        if problem is not None:
            doc = {"status": "dead", "replica_id": settings.replica_id, "error": problem}
            return JSONResponse(doc, 503)
        return JSONResponse({"status": "alive", "replica_id": settings.replica_id})

    @app.get("/health/ready")
    async def ready() -> JSONResponse:
        if replica.ready:
            return JSONResponse({"status": "ready", "replica_id": settings.replica_id})
        status = "failed" if replica.failure else "draining" if replica.draining else "loading"
        return JSONResponse({"status": status, "replica_id": settings.replica_id}, 503)

    app.add_api_route("/health", ready, methods=["GET"])

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        return {
            "object": "list",
            "data": [
                {
                    "id": config.name,
                    "object": "model",
                    "created": created,
                    "owned_by": "gpuchaos",
                    "max_model_len": config.n_ctx,
                }
            ],
        }

    @app.post("/v1/completions")
    async def completions(request: Request) -> Response:
        try:
            body = load_json(await request.body())
        except BadJson as exc:
            return _bad_request(str(exc))
        if not isinstance(body, dict):
            return _bad_request("the body must be a JSON object")
        try:
            req = CompletionRequest.model_validate(body)
        except ValidationError as exc:
            return _bad_request(_validation_message(exc))
        try:
            prompt_ids = replica.tokenizer.prompt_ids(req.prompt_text())
        except UnicodeEncodeError as exc:
            return _bad_request(f"prompt: not valid Unicode ({exc.reason})")
        max_tokens = req.max_tokens
        if max_tokens is None:  # the room the context has left, up to the default
            max_tokens = max(1, min(DEFAULT_MAX_TOKENS, config.n_ctx - len(prompt_ids)))
        if not 1 <= max_tokens <= settings.max_tokens_limit:
            return _bad_request(
                f"max_tokens must be between 1 and {settings.max_tokens_limit}, got {max_tokens}"
            )
        problem = context_problem(len(prompt_ids), max_tokens, config.n_ctx)
        if problem is not None:
            return _bad_request(problem)
        if replica.draining:
            replica.metrics.rejected("draining")
            return _unavailable("the server is shutting down")
        engine = replica.engine
        if engine is None or not engine.ready:
            return _unavailable("the model is not ready")
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[GenerationEvent] = asyncio.Queue()

        def sink(event: GenerationEvent) -> None:
            loop.call_soon_threadsafe(queue.put_nowait, event)

        generation = GenerationRequest(prompt_ids, max_tokens, sink)
        generation.deadline = generation.arrival + settings.request_timeout_s
        try:
            engine.submit(generation)
        except QueueFull as exc:
            headers = retry_after_header(exc.retry_after_s)
            return error_json(429, str(exc), ERROR_KINDS[429], headers)
        except RuntimeError as exc:
            return _unavailable(str(exc))

        def client_gone() -> None:
            generation.cancel()
            queue.put_nowait(GONE)

        on_disconnect(request.scope, client_gone)
        try:
            first = await queue.get()
        except asyncio.CancelledError:
            generation.cancel()
            raise
        if first is GONE:
            raise ClientDisconnect
        if isinstance(first, ErrorEvent):
            return _failed(first.status, first.message)
        completion_id = f"cmpl-{uuid.uuid4().hex}"
        base = {
            "id": completion_id,
            "object": "text_completion",
            "created": int(time.time()),
            "model": config.name,
        }

        def usage(completion_tokens: int) -> dict[str, int]:
            return {
                "prompt_tokens": len(prompt_ids),
                "completion_tokens": completion_tokens,
                "total_tokens": len(prompt_ids) + completion_tokens,
            }

        if req.stream:
            include_usage = bool((req.stream_options or {}).get("include_usage"))
            return StreamingResponse(
                _stream(replica.tokenizer, generation, queue, first, base, usage, include_usage),
                media_type="text/event-stream",
                headers={"cache-control": "no-cache", "x-accel-buffering": "no"},
            )
        tokens: list[int] = []
        event: GenerationEvent = first
        try:
            while True:
                if event is GONE:
                    raise ClientDisconnect
                if isinstance(event, ErrorEvent):
                    return _failed(event.status, event.message)
                tokens.append(event.token_id)
                if event.finish_reason is not None:
                    break
                event = await queue.get()
        finally:
            generation.cancel()
        choice = {
            "text": replica.tokenizer.decode(tokens),
            "index": 0,
            "logprobs": None,
            "finish_reason": event.finish_reason,
        }
        return JSONResponse({**base, "choices": [choice], "usage": usage(len(tokens))})

    return app


async def _stream(
    tokenizer: Tokenizer,
    generation: GenerationRequest,
    queue: asyncio.Queue[GenerationEvent],
    first: TokenEvent,
    base: dict[str, Any],
    usage: Callable[[int], dict[str, int]],
    include_usage: bool,
) -> AsyncGenerator[bytes, None]:
    """Server-sent events: one chunk per token as it arrives, then `[DONE]`."""
    event: GenerationEvent = first
    count = 0
    try:
        while True:
            if event is GONE:
                return  # nobody reads the rest (DisconnectGuard logs it)
            if isinstance(event, ErrorEvent):
                error = {"message": event.message, "type": ERROR_KINDS.get(event.status, "error")}
                yield _sse({"error": {**error, "param": None, "code": event.status}})
                break
            count += 1
            choice = {
                "text": tokenizer.piece(event.token_id),
                "index": 0,
                "logprobs": None,
                "finish_reason": event.finish_reason,
            }
            yield _sse({**base, "choices": [choice]})
            # let the loop see a closed connection between chunks: a burst of writes to a
            # gone client is a warning per write (asyncio), and the disconnect stops the stream
            await asyncio.sleep(0)
            if event.finish_reason is not None:
                if include_usage:
                    yield _sse({**base, "choices": [], "usage": usage(count)})
                break
            event = await queue.get()
        yield _sse("[DONE]")
    finally:
        generation.cancel()


def build_asgi_app(replica: Replica) -> ASGIApp:
    """The app as served: FastAPI wrapped so every response carries the replica header."""
    settings = replica.settings
    app = faulthook.mount(create_app(replica), settings.device)
    return ReplicaHeaderMiddleware(app, settings.replica_id)


def serve(settings: ServerSettings, started: float | None = None) -> int:
    """Serve until SIGTERM/SIGINT; 0 on a clean stop, 1 if the model failed to load."""
    metrics = Metrics(settings.model, settings.replica_id, settings.device)
    replica = Replica(settings, metrics, time.perf_counter() if started is None else started)
    return replica.serve(build_asgi_app(replica), settings.model)
