"""CUDA paths of the LLM workload: graph decode equals eager decode, and an engine squeezed by
a memory hog fails only the requests that needed memory, then serves again."""

from __future__ import annotations

import threading

import pytest
import torch

from workloads.llm.config import MODEL_CONFIGS
from workloads.llm.engine import Engine
from workloads.llm.events import ErrorEvent, GenerationEvent, GenerationRequest, TokenEvent
from workloads.llm.graphs import GraphDecoder
from workloads.llm.metrics import Metrics
from workloads.llm.model import KVCache, build_model


def test_graph_decode_matches_eager() -> None:
    config = MODEL_CONFIGS["gpt2-small"]
    device = torch.device("cuda")
    model = build_model(config, 0, device, torch.bfloat16)
    cache = KVCache(config, 8, device, torch.bfloat16)
    with torch.inference_mode():
        for slot in range(5):
            model.prefill(torch.arange(10 + slot, device=device), cache, slot)
        ids, positions = [11, 12, 13, 14, 15], [10, 11, 12, 13, 14]
        eager = model.decode(
            torch.tensor(ids, device=device), torch.tensor(positions, device=device), cache
        )
        graphs = GraphDecoder(model, batch_limit=8)
        replayed = graphs.decode(ids, positions, cache).clone()
    assert graphs.captured == 1
    torch.testing.assert_close(replayed.float(), eager.float(), atol=0.1, rtol=0.05)
    assert (replayed.argmax(-1) == eager.argmax(-1)).float().mean() >= 0.8


def _collect(engine: Engine, n: int, max_tokens: int) -> list[list[GenerationEvent]]:
    events: list[list[GenerationEvent]] = [[] for _ in range(n)]
    done = [threading.Event() for _ in range(n)]

    def sink(i: int):  # type: ignore[no-untyped-def]
        def put(event: GenerationEvent) -> None:
            events[i].append(event)
            if isinstance(event, ErrorEvent) or (
                isinstance(event, TokenEvent) and event.finish_reason
            ):
                done[i].set()

        return put

    for i in range(n):
        engine.submit(GenerationRequest(list(b"prompt %d" % i), max_tokens, sink(i)))
    for d in done:
        assert d.wait(120)
    return events


def test_on_demand_engine_survives_a_gpu_memory_hog() -> None:
    metrics = Metrics("gpt2-small", "gpu-test", "cuda")
    engine = Engine("gpt2-small", "cuda", 64, metrics=metrics, kv_cache="on-demand")
    engine.load()
    engine.start()
    hog: list[torch.Tensor] = []
    try:
        torch.cuda.empty_cache()
        free, _ = torch.cuda.mem_get_info()
        chunk = 256 * 2**20
        while free > 2 * chunk:  # leave less than a 64-slot pool (64 x 37.7 MB) free
            hog.append(torch.empty(chunk, dtype=torch.uint8, device="cuda"))
            free, _ = torch.cuda.mem_get_info()
        squeezed = _collect(engine, 48, 32)
        failed = [e for e in squeezed if isinstance(e[-1], ErrorEvent)]
        assert failed, "no request ran out of memory"
        assert all("out of memory" in e[-1].message for e in failed)  # type: ignore[union-attr]
        assert metrics.oom._value.get() >= 1
        hog.clear()
        torch.cuda.empty_cache()
        after = _collect(engine, 48, 8)
        assert all(isinstance(e[-1], TokenEvent) for e in after)
    finally:
        hog.clear()
        engine.stop()


def test_engine_uses_cuda_graphs() -> None:
    engine = Engine("gpt2-small", "cuda", 16)
    engine.load()
    try:
        assert engine._graphs is not None and engine._graphs.captured > 0
        engine.start()
        events = _collect(engine, 4, 16)
        assert all(isinstance(e[-1], TokenEvent) and len(e) == 16 for e in events)
    finally:
        engine.stop()


@pytest.fixture(autouse=True)
def _free_gpu() -> None:
    torch.cuda.empty_cache()
