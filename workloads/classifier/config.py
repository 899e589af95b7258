"""Classifier shapes and server settings (torch-free, so the server can bind its port early)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ClassifierConfig:
    """Shape of a ResNet-style classifier."""

    name: str
    layers: tuple[int, int, int, int]
    base_width: int
    image_size: int
    num_classes: int

    def input_shape(self) -> list[int]:
        """Per-image input shape, channels first: [3, H, W]."""
        return [3, self.image_size, self.image_size]


CLASSIFIER_CONFIGS: dict[str, ClassifierConfig] = {
    "tiny": ClassifierConfig("tiny", (1, 1, 1, 1), 8, 32, 10),
    "resnet50": ClassifierConfig("resnet50", (3, 4, 6, 3), 64, 224, 1000),
}


def resolve_classifier_name(model: str, device: str) -> str:
    """`auto` means tiny on CPU and resnet50 on CUDA."""
    if model == "auto":
        return "resnet50" if device.startswith("cuda") else "tiny"
    if model not in CLASSIFIER_CONFIGS:
        raise ValueError(
            f"unknown model {model!r}; expected auto or one of {sorted(CLASSIFIER_CONFIGS)}"
        )
    return model


@dataclass(frozen=True)
class ClassifierSettings:
    """Everything the command line decides."""

    host: str
    port: int
    device: str
    model: str
    replica_id: str
    max_batch_size: int
    max_batch_delay_ms: float
    max_queue_size: int
    request_timeout_s: float
    shutdown_grace_s: float
    seed: int
    threads: int
    header_timeout_s: float = 10.0
    body_timeout_s: float = 30.0
    liveness: str = "shallow"  # shallow | deep (workloads.faulthook)
    memory_fraction: float | None = None  # --memory-fraction (workloads.sharing)
