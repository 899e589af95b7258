"""The batching engine: one thread owns the model and runs continuous batching over a KV cache.

Requests wait in a queue; before every decode step the waiting ones are prefilled (one at a
time, each into its own cache slot) and join the running batch, up to `max_batch_size`; one
batched decode step then advances every running request by one token, and finished requests
leave (their slot is reused). Each token is handed to the request's sink as soon as it exists.
A forward that raises (out of memory, for one) fails the requests of that step with an
`ErrorEvent`; the engine keeps serving.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from dataclasses import dataclass, field

import torch

from workloads.llm.config import MODEL_CONFIGS, ModelConfig, is_cuda
from workloads.llm.events import (
    FINISH_LENGTH,
    ErrorEvent,
    GenerationEvent,
    GenerationRequest,
    TokenEvent,
)
from workloads.llm.metrics import Metrics
from workloads.llm.model import GPT, KVCache, build_model

logger = logging.getLogger(__name__)

WARMUP_PROMPT = list(b"warm up")
WARMUP_TOKENS = 4


class EngineNotReady(RuntimeError):
    """The engine was asked to generate before `load` finished, or after `stop`."""


@dataclass(frozen=True)
class StartupTimes:
    """Seconds spent in each startup stage of the engine."""

    device_init: float
    weights: float
    warmup: float


@dataclass(eq=False)
class _Running:
    request: GenerationRequest
    prompt_len: int
    limit: int
    last_token: int = 0
    generated: int = 0
    failed: bool = field(default=False)

    @property
    def next_position(self) -> int:
        """Where the last generated token goes in the cache when it is fed back."""
        return self.prompt_len + self.generated - 1

    @property
    def done(self) -> bool:
        return self.failed or self.generated >= self.limit or self.request.cancelled


def _is_oom(exc: BaseException) -> bool:
    if isinstance(exc, (torch.cuda.OutOfMemoryError, MemoryError)):
        return True
    text = str(exc).lower()
    return "out of memory" in text or "can't allocate memory" in text


class Engine:
    """Greedy continuous-batching generation on one device."""

    def __init__(
        self,
        model: str | ModelConfig,
        device: str,
        max_batch_size: int,
        seed: int = 0,
        metrics: Metrics | None = None,
    ) -> None:
        if max_batch_size < 1:
            raise ValueError("max_batch_size must be at least 1")
        self.config = MODEL_CONFIGS[model] if isinstance(model, str) else model
        self.device = torch.device(device)
        self.dtype = torch.bfloat16 if is_cuda(device) else torch.float32
        self.max_batch_size = max_batch_size
        self.seed = seed
        self._metrics = metrics
        self._model: GPT | None = None
        self._cache: KVCache | None = None
        self._waiting: deque[GenerationRequest] = deque()
        self._running: list[_Running] = []
        self._cond = threading.Condition()
        self._stopping = False
        self._ready = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def ready(self) -> bool:
        return self._ready.is_set() and not self._stopping

    def load(self) -> StartupTimes:
        """Initialise the device, build the seeded model and its cache, and warm up."""
        t0 = time.perf_counter()
        if self.device.type == "cuda":
            if not torch.cuda.is_available():
                raise RuntimeError(f"device {self.device} requested but CUDA is not available")
            torch.cuda.set_device(self.device)
            torch.empty(1, device=self.device)
            if self._metrics is not None:
                dev = self.device
                self._metrics.track_gpu_memory(
                    lambda: float(torch.cuda.memory_allocated(dev)),
                    lambda: float(torch.cuda.memory_reserved(dev)),
                )
        t1 = time.perf_counter()
        self._model = build_model(self.config, self.seed, self.device, self.dtype)
        self._cache = KVCache(self.config, self.max_batch_size, self.device, self.dtype)
        self._sync()
        t2 = time.perf_counter()
        self._warm_up()
        t3 = time.perf_counter()
        self._ready.set()
        return StartupTimes(device_init=t1 - t0, weights=t2 - t1, warmup=t3 - t2)

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def _warm_up(self) -> None:
        model, cache = self._require_model()
        with torch.inference_mode():
            ids = torch.tensor(WARMUP_PROMPT, device=self.device)
            token = model.prefill(ids, cache, 0).argmax()
            position = len(WARMUP_PROMPT)
            for _ in range(WARMUP_TOKENS):
                positions = torch.tensor([position], device=self.device)
                token = model.decode(token.reshape(1), positions, cache)[0].argmax()
                position += 1
            token.item()
        self._sync()

    def _require_model(self) -> tuple[GPT, KVCache]:
        if self._model is None or self._cache is None:
            raise EngineNotReady("the engine is not loaded")
        return self._model, self._cache

    def submit(self, request: GenerationRequest) -> None:
        """Queue a request; its events go to `request.sink` from the engine thread."""
        if not request.prompt_ids:
            raise ValueError("prompt_ids must not be empty")
        if request.max_tokens < 1:
            raise ValueError("max_tokens must be at least 1")
        if not self.ready:
            raise EngineNotReady("the engine is not ready")
        with self._cond:
            self._waiting.append(request)
            self._set_gauges()
            self._cond.notify()

    def start(self) -> threading.Thread:
        """Run `serve_forever` in a daemon thread (after `load`)."""
        thread = threading.Thread(target=self.serve_forever, name="llm-engine", daemon=True)
        self._thread = thread
        thread.start()
        return thread

    def stop(self, timeout: float | None = 5.0) -> None:
        """Stop the loop; requests still queued or running fail with an ErrorEvent."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def serve_forever(self) -> None:
        """The engine loop: admit waiting requests, run one decode step, repeat."""
        self._require_model()
        with torch.inference_mode():
            while True:
                with self._cond:
                    while not self._waiting and not self._running and not self._stopping:
                        self._cond.wait()
                    if self._stopping:
                        break
                    admitted: list[GenerationRequest] = []
                    while self._waiting and len(self._running) + len(admitted) < (
                        self.max_batch_size
                    ):
                        admitted.append(self._waiting.popleft())
                for request in admitted:
                    self._admit(request)
                if self._running:
                    self._decode_step()
                with self._cond:
                    self._set_gauges()
        self._shutdown()

    def _shutdown(self) -> None:
        with self._cond:
            leftovers = [r.request for r in self._running] + list(self._waiting)
            self._running.clear()
            self._waiting.clear()
            self._set_gauges()
        for request in leftovers:
            self._emit(request, ErrorEvent("the server is shutting down", status=503))

    def _set_gauges(self) -> None:
        if self._metrics is not None:
            self._metrics.num_requests_waiting.set(len(self._waiting))
            self._metrics.num_requests_running.set(len(self._running))
            self._metrics.cache_usage.set(len(self._running) / self.max_batch_size)

    def _admit(self, request: GenerationRequest) -> None:
        if request.cancelled:
            return
        model, cache = self._require_model()
        n_ctx = self.config.n_ctx
        prompt = request.prompt_ids[-n_ctx:]
        slot = len(self._running)
        try:
            logits = model.prefill(torch.tensor(prompt, device=self.device), cache, slot)
            token = int(logits.argmax().item())
        except Exception as exc:
            self._fail([request], exc, "prefill")
            return
        if self._metrics is not None:
            self._metrics.prompt_tokens.inc(len(prompt))
        running = _Running(
            request=request,
            prompt_len=len(prompt),
            limit=min(request.max_tokens, n_ctx - len(prompt) + 1),
        )
        self._running.append(running)
        self._deliver(running, token)
        if running.done:
            self._remove(len(self._running) - 1)

    def _decode_step(self) -> None:
        model, cache = self._require_model()
        running = self._running
        for i in reversed(range(len(running))):
            if running[i].request.cancelled:
                self._remove(i)
        if not running:
            return
        ids = torch.tensor([r.last_token for r in running], device=self.device)
        positions = torch.tensor([r.next_position for r in running], device=self.device)
        try:
            tokens = model.decode(ids, positions, cache).argmax(dim=-1).tolist()
        except Exception as exc:
            failed = [r.request for r in running]
            running.clear()
            self._fail(failed, exc, "decode")
            return
        if self._metrics is not None:
            self._metrics.batch_size.observe(len(running))
        for r, token in zip(running, tokens, strict=True):
            self._deliver(r, token)
        for i in reversed(range(len(running))):
            if running[i].done:
                self._remove(i)

    def _deliver(self, running: _Running, token: int) -> None:
        running.last_token = token
        running.generated += 1
        finish = FINISH_LENGTH if running.generated >= running.limit else None
        metrics = self._metrics
        now = time.perf_counter()
        if metrics is not None:
            metrics.generation_tokens.inc()
            if running.generated == 1:
                metrics.time_to_first_token.observe(now - running.request.arrival)
            if finish is not None:
                metrics.e2e_request_latency.observe(now - running.request.arrival)
                metrics.request_success(finish)
        event = TokenEvent(token_id=token, index=running.generated - 1, finish_reason=finish)
        if not self._emit(running.request, event):
            running.failed = True

    def _remove(self, index: int) -> None:
        """Drop running request `index`; the last one moves into its cache slot."""
        _, cache = self._require_model()
        last = len(self._running) - 1
        if index != last:
            moved = self._running[last]
            cache.move(last, index, moved.next_position)
            self._running[index] = moved
        self._running.pop()

    def _fail(self, requests: list[GenerationRequest], exc: Exception, stage: str) -> None:
        kind = "oom" if _is_oom(exc) else "other"
        logger.warning(
            "%s failed (%s) for %d request(s): %s: %s",
            stage,
            kind,
            len(requests),
            type(exc).__name__,
            exc,
        )
        if self.device.type == "cuda" and kind == "oom":
            torch.cuda.empty_cache()
        if self._metrics is not None:
            self._metrics.engine_error(kind)
            self._metrics.failed_requests.inc(len(requests))
        message = "out of memory" if kind == "oom" else f"engine error: {type(exc).__name__}"
        for request in requests:
            self._emit(request, ErrorEvent(f"{message} during {stage}", status=503))

    @staticmethod
    def _emit(request: GenerationRequest, event: GenerationEvent) -> bool:
        """Hand an event to the request's consumer; False (and cancel) if it is gone."""
        try:
            request.sink(event)
        except Exception:
            logger.debug("dropping a request whose consumer is gone", exc_info=True)
            request.cancel()
            return False
        return True
