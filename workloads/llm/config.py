"""Model configurations and server settings (torch-free, so the server can start early)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ModelConfig:
    """Shape of a GPT-2-style decoder."""

    name: str
    n_layer: int
    d_model: int
    n_head: int
    vocab_size: int
    n_ctx: int
    init_std: float = 0.02

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_head

    def param_count(self) -> int:
        """Parameters of the model (LM head tied to the token embedding, so counted once)."""
        d = self.d_model
        embeddings = self.vocab_size * d + self.n_ctx * d
        attn = d * 3 * d + 3 * d + d * d + d
        mlp = d * 4 * d + 4 * d + 4 * d * d + d
        layer_norms = 2 * (2 * d)
        return embeddings + self.n_layer * (attn + mlp + layer_norms) + 2 * d


MODEL_CONFIGS: dict[str, ModelConfig] = {
    "tiny": ModelConfig(name="tiny", n_layer=2, d_model=64, n_head=4, vocab_size=512, n_ctx=256),
    "gpt2-small": ModelConfig(
        name="gpt2-small", n_layer=12, d_model=768, n_head=12, vocab_size=50257, n_ctx=1024
    ),
}


def is_cuda(device: str) -> bool:
    return device.startswith("cuda")


def resolve_model_name(model: str, device: str) -> str:
    """`auto` means tiny on CPU and gpt2-small on CUDA."""
    if model == "auto":
        return "gpt2-small" if is_cuda(device) else "tiny"
    if model not in MODEL_CONFIGS:
        raise ValueError(
            f"unknown model {model!r}; expected auto or one of {sorted(MODEL_CONFIGS)}"
        )
    return model


@dataclass(frozen=True)
class ServerSettings:
    """Everything the command line decides."""

    host: str
    port: int
    device: str
    model: str
    replica_id: str
    max_batch_size: int
    max_tokens_limit: int
    seed: int
    threads: int
    max_queue_size: int = 256
    request_timeout_s: float = 60.0
    shutdown_grace_s: float = 10.0
    header_timeout_s: float = 10.0
    body_timeout_s: float = 30.0
    kv_cache: str = "preallocate"
    gpu_memory_utilization: float | None = None
    cuda_graphs: bool = True
    liveness: str = "shallow"  # shallow | deep (workloads.faulthook)
    memory_fraction: float | None = None  # --memory-fraction (workloads.sharing)

    @property
    def model_config(self) -> ModelConfig:
        return MODEL_CONFIGS[self.model]
