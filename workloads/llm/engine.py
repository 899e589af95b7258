"""The batching engine: one thread owns the model and runs continuous batching over a KV cache.

Requests wait in a bounded queue (a full queue refuses at once: the server answers 429); before
every decode step the waiting ones are prefilled (one at a time, each into its own cache slot)
and join the running batch, up to the batch limit; one batched decode step then advances every
running request by one token, and finished requests leave (their slot is reused). Each token is
handed to the request's sink as soon as it exists. A request past its deadline fails with 504.

The KV-cache pool is preallocated at load or grown on demand (`kv_cache`); its memory models
and their sizing are :mod:`workloads.llm.kvpool`.

Any forward that raises fails only the requests it was computing: a prefill its one request,
a decode step its batch, with an `ErrorEvent` (503 for out of memory); after an out-of-memory
the engine collects garbage and empties the CUDA cache, counts it, and keeps serving. How a
request is failed and its events handed over is :mod:`workloads.llm.failures`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from dataclasses import dataclass, field

import torch
from torch import Tensor

from workloads.common import StartupTimes, init_device, queue_full
from workloads.faulthook import HOOK
from workloads.llm.config import MODEL_CONFIGS, ModelConfig, is_cuda
from workloads.llm.events import FINISH_LENGTH, ErrorEvent, GenerationRequest, TokenEvent
from workloads.llm.failures import emit, fail, time_out
from workloads.llm.graphs import GraphDecoder
from workloads.llm.kvpool import KVCacheMode, grown_size, initial_slots, release_idle
from workloads.llm.metrics import Metrics
from workloads.llm.model import GPT, KVCache, build_model

logger = logging.getLogger(__name__)

WARMUP_PROMPT = list(b"warm up")
WARMUP_TOKENS = 4
#: Weight of the newest request in the moving average of request time (for Retry-After).
EWMA_ALPHA = 0.1


class EngineNotReady(RuntimeError):
    """The engine was asked to generate before `load` finished, or after `stop`."""


@dataclass(eq=False)
class _Running:
    request: GenerationRequest
    prompt_len: int
    limit: int
    last_token: int = 0
    generated: int = 0
    last_token_at: float = 0.0
    failed: bool = field(default=False)

    @property
    def next_position(self) -> int:
        """Where the last generated token goes in the cache when it is fed back."""
        return self.prompt_len + self.generated - 1

    @property
    def done(self) -> bool:
        return self.failed or self.generated >= self.limit or self.request.cancelled


class Engine:
    """Greedy continuous-batching generation on one device."""

    def __init__(
        self,
        model: str | ModelConfig,
        device: str,
        max_batch_size: int,
        seed: int = 0,
        metrics: Metrics | None = None,
        *,
        max_queue_size: int = 256,
        kv_cache: KVCacheMode = "preallocate",
        gpu_memory_utilization: float | None = None,
        cuda_graphs: bool = True,
    ) -> None:
        if max_batch_size < 1:
            raise ValueError("max_batch_size must be at least 1")
        if max_queue_size < 0:
            raise ValueError("max_queue_size must not be negative")
        self.config = MODEL_CONFIGS[model] if isinstance(model, str) else model
        self.device = torch.device(device)
        self.dtype = torch.bfloat16 if is_cuda(device) else torch.float32
        self.max_batch_size = max_batch_size
        self.max_queue_size = max_queue_size
        self.kv_cache_mode: KVCacheMode = kv_cache
        self.gpu_memory_utilization = gpu_memory_utilization
        self.use_cuda_graphs = cuda_graphs and self.device.type == "cuda"
        self.seed = seed
        self._metrics = metrics
        self._model: GPT | None = None
        self._cache: KVCache | None = None
        self._graphs: GraphDecoder | None = None
        #: Requests that may run at once: the batch limit, or fewer when the pool is smaller.
        self.batch_limit = max_batch_size
        self._waiting: deque[GenerationRequest] = deque()
        self._running: list[_Running] = []
        self._cond = threading.Condition()
        self._stopping = False
        self._ready = threading.Event()
        self._thread: threading.Thread | None = None
        self._request_s = 0.1  # moving average of request time, for Retry-After

    @property
    def ready(self) -> bool:
        return self._ready.is_set() and not self._stopping

    @property
    def cache_slots(self) -> int:
        return 0 if self._cache is None else self._cache.slots

    def load(self) -> StartupTimes:
        """Initialise the device, build the seeded model and its cache, and warm up."""
        t0 = time.perf_counter()
        init_device(self.device, self._metrics)
        t1 = time.perf_counter()
        self._model = build_model(self.config, self.seed, self.device, self.dtype)
        self._cache = KVCache(self.config, self._initial_slots(), self.device, self.dtype)
        self._sync()
        t2 = time.perf_counter()
        self._warm_up()
        t3 = time.perf_counter()
        if self._metrics is not None:
            self._metrics.kv_cache_bytes.set(self._require_model()[1].nbytes)
        self._ready.set()
        logger.info(
            "KV cache %s: %d slots (%.1f MiB), batch limit %d, decode %s",
            self.kv_cache_mode,
            self.cache_slots,
            self._require_model()[1].nbytes / 2**20,
            self.batch_limit,
            f"CUDA graphs ({self._graphs.captured} captured)" if self._graphs else "eager",
        )
        return StartupTimes(device_init=t1 - t0, weights=t2 - t1, warmup=t3 - t2)

    def _initial_slots(self) -> int:
        """Slots of the pool at load; a preallocated pool smaller than the batch limit
        lowers the batch limit to its size."""
        slots = initial_slots(
            self.config,
            self.device,
            self.dtype,
            self.kv_cache_mode,
            self.max_batch_size,
            self.gpu_memory_utilization,
        )
        if self.kv_cache_mode != "on-demand":
            self.batch_limit = min(self.max_batch_size, slots)
        return slots

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
            if self.use_cuda_graphs:
                self._graphs = GraphDecoder(model, self.batch_limit)
                if self.kv_cache_mode == "preallocate":
                    self._graphs.capture_all(cache)
            if self.kv_cache_mode == "on-demand":
                cache.resize(0, keep=0)
        self._sync()

    def _require_model(self) -> tuple[GPT, KVCache]:
        if self._model is None or self._cache is None:
            raise EngineNotReady("the engine is not loaded")
        return self._model, self._cache

    def retry_after_s(self) -> float:
        """A guess at when the queue has room again: the waiting work over the batch."""
        with self._cond:
            waiting = len(self._waiting)
        return self._request_s * (1 + waiting / self.batch_limit)

    def submit(self, request: GenerationRequest) -> None:
        """Queue a request; its events go to `request.sink` from the engine thread.

        Raises QueueFull when `max_queue_size` requests already wait.
        """
        if not request.prompt_ids:
            raise ValueError("prompt_ids must not be empty")
        if request.max_tokens < 1:
            raise ValueError("max_tokens must be at least 1")
        if not self.ready:
            raise EngineNotReady("the engine is not ready")
        with self._cond:
            if len(self._waiting) >= self.max_queue_size:
                waiting = len(self._waiting)
                raise queue_full(waiting, self.batch_limit, self._request_s, self._metrics)
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
                    if not self._waiting and not self._running and not self._stopping:
                        self._release_idle_cache()
                    while not self._waiting and not self._running and not self._stopping:
                        self._cond.wait()
                    if self._stopping:
                        break
                    admitted: list[GenerationRequest] = []
                    while self._waiting and len(self._running) + len(admitted) < self.batch_limit:
                        admitted.append(self._waiting.popleft())
                    self._set_gauges()
                self._admit_all(admitted)
                if self._running:
                    self._expire_running()
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
            emit(request, ErrorEvent("the server is shutting down", status=503))

    def _set_gauges(self) -> None:
        if self._metrics is not None:
            self._metrics.num_requests_waiting.set(len(self._waiting))
            self._metrics.num_requests_running.set(len(self._running))
            self._metrics.cache_usage.set(len(self._running) / self.batch_limit)

    # -- admission ---------------------------------------------------------------------------

    def _admit_all(self, admitted: list[GenerationRequest]) -> None:
        now = time.perf_counter()
        live: list[GenerationRequest] = []
        for request in admitted:
            if request.cancelled:
                continue
            if request.deadline is not None and now > request.deadline:
                time_out(request, "in the queue", self._metrics)
                continue
            live.append(request)
        if not live:
            return
        if not self._ensure_slots(len(self._running) + len(live), live):
            return
        for request in live:
            self._admit(request)

    def _ensure_slots(self, needed: int, joining: list[GenerationRequest]) -> bool:
        """On demand: grow the pool for `needed` slots; an OOM fails only `joining`."""
        _, cache = self._require_model()
        if cache.slots >= needed:
            return True
        target = grown_size(needed, self.batch_limit)
        try:
            cache.resize(target, keep=len(self._running))
        except Exception as exc:
            fail(joining, exc, "KV-cache growth", self.device.type, self._metrics)
            return False
        if self._metrics is not None:
            self._metrics.kv_cache_bytes.set(cache.nbytes)
        return True

    def _release_idle_cache(self) -> None:
        """On demand: an idle engine gives its KV-cache memory back."""
        if self._cache is None or not release_idle(
            self._cache, self.kv_cache_mode, self.device.type
        ):
            return
        if self._metrics is not None:
            self._metrics.kv_cache_bytes.set(0)

    def _admit(self, request: GenerationRequest) -> None:
        model, cache = self._require_model()
        n_ctx = self.config.n_ctx
        prompt = request.prompt_ids[-n_ctx:]
        slot = len(self._running)
        try:
            with HOOK.step():
                logits = model.prefill(torch.tensor(prompt, device=self.device), cache, slot)
                token = int(logits.argmax().item())
        except Exception as exc:
            fail([request], exc, "prefill", self.device.type, self._metrics)
            return
        if self._metrics is not None:
            self._metrics.prompt_tokens.inc(len(prompt))
            self._metrics.queue_time.observe(time.perf_counter() - request.arrival)
        running = _Running(
            request=request,
            prompt_len=len(prompt),
            limit=min(request.max_tokens, n_ctx - len(prompt) + 1),
        )
        self._running.append(running)
        self._deliver(running, token)
        if running.done:
            self._remove(len(self._running) - 1)

    # -- decoding ----------------------------------------------------------------------------

    def _expire_running(self) -> None:
        now = time.perf_counter()
        for i in reversed(range(len(self._running))):
            r = self._running[i]
            if r.request.deadline is not None and now > r.request.deadline:
                self._remove(i)
                time_out(r.request, "while generating", self._metrics)

    def _forward(self, running: list[_Running]) -> Tensor:
        model, cache = self._require_model()
        ids = [r.last_token for r in running]
        positions = [r.next_position for r in running]
        if self._graphs is not None:
            return self._graphs.decode(ids, positions, cache)
        return model.decode(
            torch.tensor(ids, device=self.device),
            torch.tensor(positions, device=self.device),
            cache,
            span=max(positions) + 1,
        )

    def _decode_step(self) -> None:
        running = self._running
        for i in reversed(range(len(running))):
            if running[i].request.cancelled:
                self._remove(i)
        if not running:
            return
        try:
            with HOOK.step():
                tokens = self._forward(running).argmax(dim=-1).tolist()
        except Exception as exc:
            failed = [r.request for r in running]
            running.clear()
            fail(failed, exc, "decode", self.device.type, self._metrics)
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
            else:
                metrics.time_per_output_token.observe(now - running.last_token_at)
            if finish is not None:
                metrics.e2e_request_latency.observe(now - running.request.arrival)
                metrics.request_success(finish)
        running.last_token_at = now
        if finish is not None:
            spent = now - running.request.arrival
            self._request_s += EWMA_ALPHA * (spent - self._request_s)
        event = TokenEvent(token_id=token, index=running.generated - 1, finish_reason=finish)
        if not emit(running.request, event):
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
