"""Dynamic batching: one thread owns the model and runs batches of queued requests.

Requests (each one or more images) wait in a bounded queue (a full queue refuses at once: the
server answers 429). The batcher takes the oldest request, waits up to `max_batch_delay_s`
after its arrival for more to fill the batch to `max_batch_size` images, and runs one forward
over all of them. A request past its deadline fails with 504. A forward that raises fails only
the requests of that batch (503; after an out-of-memory the engine collects garbage, empties the
CUDA cache and counts it) and the engine keeps serving.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass, field

import numpy as np
import torch

from workloads.classifier.metrics import ClassifierMetrics
from workloads.classifier.model import CLASSIFIER_CONFIGS, ResNet, build_classifier
from workloads.common import (
    StartupTimes,
    engine_failure,
    failure_status,
    init_device,
    is_oom,
    queue_full,
)
from workloads.faulthook import HOOK

logger = logging.getLogger(__name__)

WARMUP_BATCHES = 2
EWMA_ALPHA = 0.1


class EngineNotReady(RuntimeError):
    """The engine was asked to infer before `load` finished, or after `stop`."""


class InferenceFailed(RuntimeError):
    """The request failed in the engine; `status` is the HTTP status to answer with."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


@dataclass(eq=False)
class InferRequest:
    """Images [n, 3, H, W] to classify; the result (logits [n, classes]) goes to `future`."""

    images: np.ndarray
    deadline: float | None = None
    arrival: float = field(default_factory=time.perf_counter)
    future: Future[np.ndarray] = field(default_factory=Future)

    @property
    def count(self) -> int:
        return int(self.images.shape[0])


class BatchingEngine:
    """Dynamic batching of image classification on one device."""

    def __init__(
        self,
        model: str,
        device: str,
        max_batch_size: int,
        max_batch_delay_s: float,
        max_queue_size: int,
        seed: int = 0,
        metrics: ClassifierMetrics | None = None,
    ) -> None:
        self.config = CLASSIFIER_CONFIGS[model]
        self.device = torch.device(device)
        self.dtype = torch.float16 if self.device.type == "cuda" else torch.float32
        self.max_batch_size = max_batch_size
        self.max_batch_delay_s = max_batch_delay_s
        self.max_queue_size = max_queue_size
        self.seed = seed
        self._metrics = metrics
        self._model: ResNet | None = None
        self._queue: deque[InferRequest] = deque()
        self._cond = threading.Condition()
        self._stopping = False
        self._ready = threading.Event()
        self._running = 0
        self._request_s = 0.05

    @property
    def ready(self) -> bool:
        return self._ready.is_set() and not self._stopping

    def load(self) -> StartupTimes:
        t0 = time.perf_counter()
        init_device(self.device, self._metrics)
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True
        t1 = time.perf_counter()
        self._model = build_classifier(self.config, self.seed, self.device, self.dtype)
        self._sync()
        t2 = time.perf_counter()
        with torch.inference_mode():
            for size in (1, self.max_batch_size):
                for _ in range(WARMUP_BATCHES):
                    shape = (size, *self.config.input_shape())
                    self._forward(np.zeros(shape, dtype=np.float32))
        self._sync()
        t3 = time.perf_counter()
        self._ready.set()
        return StartupTimes(device_init=t1 - t0, weights=t2 - t1, warmup=t3 - t2)

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def _forward(self, images: np.ndarray) -> np.ndarray:
        if self._model is None:
            raise EngineNotReady("the engine is not loaded")
        x = torch.from_numpy(images).to(self.device, dtype=self.dtype, non_blocking=True)
        if self.device.type == "cuda":
            x = x.contiguous(memory_format=torch.channels_last)
        logits = self._model(x)
        return logits.float().cpu().numpy()

    def submit(self, request: InferRequest) -> None:
        """Queue a request; raises QueueFull at the queue limit, ValueError for a bad size."""
        if not 1 <= request.count <= self.max_batch_size:
            raise ValueError(
                f"a request holds 1 to {self.max_batch_size} images, got {request.count}"
            )
        if not self.ready:
            raise EngineNotReady("the engine is not ready")
        with self._cond:
            if len(self._queue) >= self.max_queue_size:
                waiting = len(self._queue)
                raise queue_full(waiting, self.max_batch_size, self._request_s, self._metrics)
            self._queue.append(request)
            self._set_gauges()
            self._cond.notify()

    def stop(self) -> None:
        """Stop the loop; queued requests fail with 503."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()

    def _set_gauges(self) -> None:
        if self._metrics is not None:
            self._metrics.waiting.set(len(self._queue))
            self._metrics.running.set(self._running)

    def _next_batch(self) -> list[InferRequest] | None:
        """Wait for a batch: full, or the oldest request's delay over; None when stopping."""
        with self._cond:
            while not self._queue and not self._stopping:
                self._cond.wait()
            if self._stopping:
                return None
            due = self._queue[0].arrival + self.max_batch_delay_s
            while sum(r.count for r in self._queue) < self.max_batch_size and not self._stopping:
                left = due - time.perf_counter()
                if left <= 0:
                    break
                self._cond.wait(left)
            batch: list[InferRequest] = []
            images = 0
            while self._queue and images + self._queue[0].count <= self.max_batch_size:
                request = self._queue.popleft()
                batch.append(request)
                images += request.count
            self._running = images
            self._set_gauges()
            return batch

    def serve_forever(self) -> None:
        with torch.inference_mode():
            while True:
                batch = self._next_batch()
                if batch is None:
                    break
                self._run(batch)
                with self._cond:
                    self._running = 0
                    self._set_gauges()
        with self._cond:
            leftovers = list(self._queue)
            self._queue.clear()
            self._set_gauges()
        for request in leftovers:
            _fail(request, InferenceFailed("the server is shutting down", 503))

    def _run(self, batch: list[InferRequest]) -> None:
        now = time.perf_counter()
        live = []
        for request in batch:
            if request.future.cancelled():
                continue
            if request.deadline is not None and now > request.deadline:
                if self._metrics is not None:
                    self._metrics.rejected("timeout")
                _fail(request, InferenceFailed("request timed out in the queue", 504))
                continue
            live.append(request)
            if self._metrics is not None:
                self._metrics.queue_time.observe(now - request.arrival)
        if not live:
            return
        started = time.perf_counter()
        try:
            images = np.concatenate([r.images for r in live]) if len(live) > 1 else live[0].images
            with HOOK.step():
                logits = self._forward(images)
        except Exception as exc:
            self._failed_batch(live, exc)
            return
        done = time.perf_counter()
        if self._metrics is not None:
            self._metrics.batch_size.observe(images.shape[0])
            self._metrics.compute_time.observe(done - started)
            self._metrics.images.inc(images.shape[0])
        offset = 0
        for request in live:
            result = logits[offset : offset + request.count]
            offset += request.count
            spent = done - request.arrival
            self._request_s += EWMA_ALPHA * (spent - self._request_s)
            if self._metrics is not None:
                self._metrics.request_latency.observe(spent)
            if not request.future.done():
                request.future.set_result(result)

    def _failed_batch(self, batch: list[InferRequest], exc: Exception) -> None:
        kind = "oom" if is_oom(exc) else "other"
        logger.warning(
            "batch of %d request(s) failed (%s): %s: %s", len(batch), kind, type(exc).__name__, exc
        )
        message = engine_failure(exc, kind, len(batch), self.device.type, self._metrics)
        status = failure_status(exc)
        for request in batch:
            _fail(request, InferenceFailed(message, status))


def _fail(request: InferRequest, error: InferenceFailed) -> None:
    if not request.future.done():
        request.future.set_exception(error)
