"""The engine's KV-cache pool: how many slots it has at load, and when it grows or shrinks.

Memory models (`kv_cache`):

- ``preallocate``: the whole KV-cache pool is allocated at load, like vLLM's
  ``gpu_memory_utilization``. Under memory pressure the replica fails at *startup* (the pool
  does not fit) or not at all for KV memory: a hog arriving later cannot take the pool.
- ``on-demand``: the pool grows (by powers of two) as requests join and is released when the
  engine is idle. Under memory pressure the *growth* fails: the requests joining at that moment
  get 503 while the running ones continue, and memory the engine held is given back when idle.

These are the sizing decisions only; the engine (:mod:`workloads.llm.engine`) decides when to
take them and fails the joining requests when a growth raises.
"""

from __future__ import annotations

from typing import Literal

import torch

from workloads.common import release_memory
from workloads.llm.config import ModelConfig
from workloads.llm.graphs import batch_buckets, bucket_for
from workloads.llm.model import KVCache

KVCacheMode = Literal["preallocate", "on-demand"]


def initial_slots(
    config: ModelConfig,
    device: torch.device,
    dtype: torch.dtype,
    mode: KVCacheMode,
    max_batch_size: int,
    gpu_memory_utilization: float | None,
) -> int:
    """Slots of the pool at load: all of it (preallocate) or one, for warm-up (on demand).

    Preallocated on CUDA with ``gpu_memory_utilization``: the slots that fit in that share of
    the GPU's memory, less what other processes and this one hold already; OutOfMemoryError
    when not even one fits.
    """
    if mode == "on-demand":
        return 1
    slots = max_batch_size
    if device.type == "cuda" and gpu_memory_utilization is not None:
        free, total = torch.cuda.mem_get_info(device)
        used_by_others = total - free - torch.cuda.memory_reserved(device)
        budget = gpu_memory_utilization * total - used_by_others
        budget -= torch.cuda.memory_allocated(device)
        per_slot = KVCache.slot_bytes(config, dtype)
        slots = int(budget // per_slot)
        if slots < 1:
            raise torch.cuda.OutOfMemoryError(
                f"gpu_memory_utilization {gpu_memory_utilization}: no room for a KV "
                f"cache slot ({per_slot} bytes; {free} of {total} bytes free)"
            )
    return slots


def grown_size(needed: int, batch_limit: int) -> int:
    """On demand: the pool size that holds ``needed`` slots, the smallest batch bucket (a
    power of two, or the batch limit) at or above it, so the pool grows by doubling."""
    return bucket_for(needed, batch_buckets(batch_limit))


def release_idle(cache: KVCache, mode: KVCacheMode, device_type: str) -> bool:
    """On demand: give the pool's memory back (an idle engine); False when there is none to
    give (preallocated, or released already)."""
    if mode != "on-demand" or cache.slots == 0:
        return False
    cache.resize(0, keep=0)
    release_memory(device_type)
    return True
