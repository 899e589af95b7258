"""A GPT-2-style decoder-only transformer with seeded random weights and a slot-based KV cache.

Token + learned position embeddings, pre-LayerNorm blocks with causal self-attention
(scaled_dot_product_attention) and a 4x GELU MLP, a final LayerNorm and an LM head tied to
the token embedding. Weights are drawn after `torch.manual_seed(seed)` (normal, std
`config.init_std`, 0.02 by default), so the same seed gives the same model, offline.
"""

from __future__ import annotations

import logging
import math
import mmap
from typing import cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from workloads.llm.config import ModelConfig

logger = logging.getLogger(__name__)


class KVCache:
    """Keys and values for `slots` sequences of up to `n_ctx` positions each.

    Layout: [n_layer, 2 (key, value), slots, n_head, n_ctx, head_dim]. A request owns one slot
    while it runs; the engine keeps running requests in slots 0..n-1. `resize` grows or
    shrinks the pool (the on-demand memory model), keeping the first slots' contents.
    """

    def __init__(
        self, config: ModelConfig, slots: int, device: torch.device, dtype: torch.dtype
    ) -> None:
        self.config = config
        self.device = device
        self.dtype = dtype
        self.data = self._alloc(slots)

    def _alloc(self, slots: int) -> Tensor:
        c = self.config
        shape = (c.n_layer, 2, slots, c.n_head, c.n_ctx, c.head_dim)
        if self.device.type != "cpu" or slots == 0:
            return torch.zeros(shape, device=self.device, dtype=self.dtype)
        # On the CPU the pool is a mapping of its own, like a device allocation: it never comes
        # from memory the heap already holds, so a squeezed RLIMIT_AS (the CPU stand-in for a
        # full GPU) fails it the way a full GPU fails cudaMalloc (OSError ENOMEM).
        nbytes = math.prod(shape) * torch.empty((), dtype=self.dtype).element_size()
        region = mmap.mmap(-1, nbytes)  # anonymous, zero-filled
        return torch.frombuffer(region, dtype=self.dtype).view(shape)

    @property
    def slots(self) -> int:
        return int(self.data.shape[2])

    @property
    def nbytes(self) -> int:
        return self.data.numel() * self.data.element_size()

    @staticmethod
    def slot_bytes(config: ModelConfig, dtype: torch.dtype) -> int:
        """Bytes one slot takes."""
        per = config.n_layer * 2 * config.n_head * config.n_ctx * config.head_dim
        return per * torch.empty((), dtype=dtype).element_size()

    def resize(self, slots: int, keep: int) -> None:
        """Reallocate to `slots` slots, copying the first `keep` (raises when out of memory)."""
        if slots == self.slots:
            return
        new = self._alloc(slots)
        keep = min(keep, slots, self.slots)
        if keep:
            new[:, :, :keep] = self.data[:, :, :keep]
        self.data = new

    def move(self, src: int, dst: int, length: int) -> None:
        """Copy the first `length` positions of slot `src` into slot `dst`."""
        self.data[:, :, dst, :, :length] = self.data[:, :, src, :, :length]


class Block(nn.Module):
    """Pre-LayerNorm transformer block."""

    def __init__(self, config: ModelConfig, device: torch.device | None = None) -> None:
        super().__init__()
        d = config.d_model
        self.n_head = config.n_head
        self.head_dim = config.head_dim
        self.ln_1 = nn.LayerNorm(d, device=device)
        self.c_attn = nn.Linear(d, 3 * d, device=device)
        self.c_proj = nn.Linear(d, d, device=device)
        self.ln_2 = nn.LayerNorm(d, device=device)
        self.mlp_fc = nn.Linear(d, 4 * d, device=device)
        self.mlp_proj = nn.Linear(4 * d, d, device=device)

    def _qkv(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        b, t, d = x.shape
        q, k, v = self.c_attn(self.ln_1(x)).split(d, dim=2)
        shape = (b, t, self.n_head, self.head_dim)
        return (
            q.view(shape).transpose(1, 2),
            k.view(shape).transpose(1, 2),
            v.view(shape).transpose(1, 2),
        )

    def _finish(self, x: Tensor, y: Tensor) -> Tensor:
        b, _, t, _ = y.shape
        x = x + self.c_proj(y.transpose(1, 2).reshape(b, t, -1))
        return x + self.mlp_proj(F.gelu(self.mlp_fc(self.ln_2(x))))

    def forward(self, x: Tensor) -> Tensor:
        """Full causal attention over `x` [batch, time, d_model], no cache."""
        q, k, v = self._qkv(x)
        return self._finish(x, F.scaled_dot_product_attention(q, k, v, is_causal=True))

    def prefill(self, x: Tensor, layer_cache: Tensor, slot: int) -> Tensor:
        """Causal attention over one prompt `x` [1, time, d]; stores its keys and values."""
        q, k, v = self._qkv(x)
        t = x.shape[1]
        layer_cache[0, slot, :, :t] = k[0]
        layer_cache[1, slot, :, :t] = v[0]
        return self._finish(x, F.scaled_dot_product_attention(q, k, v, is_causal=True))

    def decode(self, x: Tensor, layer_cache: Tensor, positions: Tensor, mask: Tensor) -> Tensor:
        """One new token per running slot: `x` [n, 1, d] at `positions` [n]."""
        n = x.shape[0]
        q, k, v = self._qkv(x)
        rows = torch.arange(n, device=x.device)
        layer_cache[0, rows, :, positions] = k[:, :, 0]
        layer_cache[1, rows, :, positions] = v[:, :, 0]
        span = mask.shape[-1]
        keys = layer_cache[0, :n, :, :span]
        values = layer_cache[1, :n, :, :span]
        return self._finish(x, F.scaled_dot_product_attention(q, keys, values, attn_mask=mask))


class GPT(nn.Module):
    """GPT-2-style decoder; `forward` recomputes, `prefill`/`decode` use a `KVCache`.

    `init_weights` draws the weights from torch's current random state.
    """

    def __init__(self, config: ModelConfig, device: torch.device | None = None) -> None:
        super().__init__()
        self.config = config
        d = config.d_model
        self.wte = nn.Embedding(config.vocab_size, d, device=device)
        self.wpe = nn.Embedding(config.n_ctx, d, device=device)
        self.blocks = nn.ModuleList(Block(config, device) for _ in range(config.n_layer))
        self.ln_f = nn.LayerNorm(d, device=device)

    def init_weights(self) -> None:
        """Normal(0, init_std) weights, zero biases, unit LayerNorms."""
        self.apply(self._init_module)

    def _init_module(self, module: nn.Module) -> None:
        std = self.config.init_std
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, mean=0.0, std=std)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=std)
        elif isinstance(module, nn.LayerNorm):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)

    def _layers(self) -> list[Block]:
        return [cast(Block, block) for block in self.blocks]

    def _logits(self, h: Tensor) -> Tensor:
        return self.ln_f(h) @ self.wte.weight.T

    def forward(self, ids: Tensor) -> Tensor:
        """Logits [batch, time, vocab] for `ids` [batch, time] (full recompute, no cache)."""
        positions = torch.arange(ids.shape[1], device=ids.device)
        h = self.wte(ids) + self.wpe(positions)
        for block in self.blocks:
            h = block(h)
        return self._logits(h)

    def prefill(self, ids: Tensor, cache: KVCache, slot: int) -> Tensor:
        """Fill `slot` with the prompt `ids` [time]; return the logits [vocab] of its last token."""
        positions = torch.arange(ids.shape[0], device=ids.device)
        h = (self.wte(ids) + self.wpe(positions)).unsqueeze(0)
        for layer, block in enumerate(self._layers()):
            h = block.prefill(h, cache.data[layer], slot)
        return self._logits(h[0, -1])

    def decode(
        self, ids: Tensor, positions: Tensor, cache: KVCache, span: int | None = None
    ) -> Tensor:
        """One step for slots 0..n-1: token `ids[i]` at `positions[i]`; logits [n, vocab].

        Each slot attends only to its own positions 0..positions[i] (the rest is masked), so a
        sequence decodes the same whatever else shares the batch. `span` (keys attended, at
        least max(positions) + 1) may be given to avoid reading `positions` back from the
        device, which a CUDA graph cannot do.
        """
        if span is None:
            span = int(positions.max().item()) + 1
        key_pos = torch.arange(span, device=ids.device)
        mask = (key_pos[None, :] <= positions[:, None])[:, None, None, :]
        h = (self.wte(ids) + self.wpe(positions)).unsqueeze(1)
        for layer, block in enumerate(self._layers()):
            h = block.decode(h, cache.data[layer], positions, mask)
        return self._logits(h[:, 0])


def build_model(config: ModelConfig, seed: int, device: torch.device, dtype: torch.dtype) -> GPT:
    """The seeded model on `device` in `dtype`, in eval mode.

    The weights are drawn on `device` itself (fast on a GPU), so a seed gives the same model
    on every run on the same kind of device.
    """
    torch.manual_seed(seed)
    model = GPT(config, device=device)
    model.init_weights()
    return model.to(dtype=dtype).eval()
