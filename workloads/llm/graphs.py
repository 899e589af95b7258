"""Decode steps as CUDA graphs: one captured graph per (batch bucket, key-span bucket).

Eager decode of a small model is launch-bound: every step launches a few hundred kernels from
Python (3.9 ms per step for a GPT-2-small-sized model on an H100 at any batch size from 1 to
256). A CUDA graph replays the same kernels with one launch (0.59 ms). Graphs need static
shapes and addresses, so each step is padded to a batch bucket (a power of two, capped at the
batch limit) and its attention span to a span bucket (a power of two from 64, capped at the
context): padded rows decode a dummy token at the last context position of unused cache slots
(never read: a slot attends only to its own positions, and a sequence writes a position before
it reads it), padded keys are masked. Inputs are copied into static tensors, the graph is
replayed, and the logits of the real rows are returned. Graphs are captured for every bucket
at warm-up; a cache that is reallocated (the on-demand memory model) invalidates them and they
are captured again lazily.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch
from torch import Tensor

from workloads.llm.model import GPT, KVCache

logger = logging.getLogger(__name__)

MIN_SPAN_BUCKET = 64
#: Eager iterations run on a side stream before each capture (lazy initialisation).
WARMUP_ITERS = 2


def batch_buckets(limit: int) -> list[int]:
    """Powers of two below `limit`, then `limit` itself."""
    out: list[int] = []
    size = 1
    while size < limit:
        out.append(size)
        size *= 2
    out.append(limit)
    return out


def span_buckets(n_ctx: int) -> list[int]:
    """Powers of two from MIN_SPAN_BUCKET below `n_ctx`, then `n_ctx` itself."""
    out: list[int] = []
    span = MIN_SPAN_BUCKET
    while span < n_ctx:
        out.append(span)
        span *= 2
    out.append(n_ctx)
    return out


def bucket_for(value: int, buckets: list[int]) -> int:
    """The smallest bucket holding `value` (ValueError when none does)."""
    for b in buckets:
        if value <= b:
            return b
    raise ValueError(f"{value} exceeds the largest bucket {buckets[-1]}")


@dataclass
class _Captured:
    graph: torch.cuda.CUDAGraph
    ids: Tensor
    positions: Tensor
    logits: Tensor


class GraphDecoder:
    """`decode` like `GPT.decode`, replaying captured CUDA graphs (CUDA only)."""

    def __init__(self, model: GPT, batch_limit: int) -> None:
        self.model = model
        self.batch_buckets = batch_buckets(batch_limit)
        self.span_buckets = span_buckets(model.config.n_ctx)
        self._graphs: dict[tuple[int, int], _Captured] = {}
        self._cache_ptr: int | None = None
        self._pool = torch.cuda.graph_pool_handle()
        self._dummy = model.config.n_ctx - 1

    @property
    def captured(self) -> int:
        return len(self._graphs)

    def capture_all(self, cache: KVCache) -> None:
        """Capture a graph for every bucket pair (at warm-up, before Ready)."""
        for batch in self.batch_buckets:
            for span in self.span_buckets:
                self._get(batch, span, cache)

    def decode(self, ids: list[int], positions: list[int], cache: KVCache) -> Tensor:
        """Logits [n, vocab] of one decode step for slots 0..n-1 (host lists in)."""
        n = len(ids)
        batch = bucket_for(n, self.batch_buckets)
        span = bucket_for(max(positions) + 1, self.span_buckets)
        g = self._get(batch, span, cache)
        pad = batch - n
        g.ids.copy_(torch.tensor(ids + [0] * pad, dtype=torch.long))
        g.positions.copy_(torch.tensor(positions + [self._dummy] * pad, dtype=torch.long))
        g.graph.replay()
        return g.logits[:n]

    def _get(self, batch: int, span: int, cache: KVCache) -> _Captured:
        ptr = cache.data.data_ptr()
        if ptr != self._cache_ptr:
            if self._graphs:
                logger.info("KV cache reallocated: dropping %d CUDA graphs", len(self._graphs))
            self._graphs.clear()
            self._cache_ptr = ptr
        found = self._graphs.get((batch, span))
        if found is None:
            found = self._capture(batch, span, cache)
            self._graphs[(batch, span)] = found
        return found

    def _capture(self, batch: int, span: int, cache: KVCache) -> _Captured:
        if batch > cache.slots:
            raise ValueError(f"batch bucket {batch} exceeds the cache's {cache.slots} slots")
        device = cache.data.device
        ids = torch.zeros(batch, dtype=torch.long, device=device)
        # dummy rows write at the last position, which no running sequence reads before it
        # writes there itself: capturing while requests run leaves their caches intact
        positions = torch.full((batch,), self._dummy, dtype=torch.long, device=device)
        stream = torch.cuda.Stream(device)
        stream.wait_stream(torch.cuda.current_stream(device))
        with torch.cuda.stream(stream):
            for _ in range(WARMUP_ITERS):
                self.model.decode(ids, positions, cache, span=span)
        torch.cuda.current_stream(device).wait_stream(stream)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, pool=self._pool):
            logits = self.model.decode(ids, positions, cache, span=span)
        return _Captured(graph=graph, ids=ids, positions=positions, logits=logits)
