"""A ResNet-50-shaped CNN with seeded random weights (torchvision's layout, no torchvision).

Bottleneck blocks (1x1, 3x3, 1x1 convolutions with batch norm and a projection shortcut when
the shape changes), stages of [3, 4, 6, 3] blocks with widths 64-128-256-512 (x4 expansion),
a 7x7 stem with max pooling, global average pooling and a linear head: 25.6 M parameters and
about 4.1 GFLOPs per 224x224 image. `tiny` keeps the architecture with one block per stage,
a base width of 8 and 32x32 inputs, so tests run on a CPU in milliseconds. Weights are drawn
after `torch.manual_seed(seed)` (Kaiming-normal convolutions, unit batch norms), so a seed
gives the same model, offline.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from workloads.classifier.config import CLASSIFIER_CONFIGS, ClassifierConfig

__all__ = ["CLASSIFIER_CONFIGS", "ClassifierConfig", "ResNet", "build_classifier"]


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, in_ch: int, width: int, stride: int) -> None:
        super().__init__()
        out_ch = width * self.expansion
        self.conv1 = nn.Conv2d(in_ch, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, out_ch, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_ch)
        self.relu = nn.ReLU(inplace=True)
        self.downsample: nn.Module | None = None
        if stride != 1 or in_ch != out_ch:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_ch, out_ch, 1, stride=stride, bias=False), nn.BatchNorm2d(out_ch)
            )

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


class ResNet(nn.Module):
    """ResNet with bottleneck blocks; `forward` maps [N, 3, H, W] to logits [N, classes]."""

    def __init__(self, config: ClassifierConfig) -> None:
        super().__init__()
        self.config = config
        w = config.base_width
        self.stem = nn.Sequential(
            nn.Conv2d(3, w, 7, stride=2, padding=3, bias=False),
            nn.BatchNorm2d(w),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(3, stride=2, padding=1),
        )
        stages: list[nn.Module] = []
        in_ch = w
        for i, blocks in enumerate(config.layers):
            width = w * 2**i
            stride = 1 if i == 0 else 2
            layer: list[nn.Module] = []
            for b in range(blocks):
                layer.append(Bottleneck(in_ch, width, stride if b == 0 else 1))
                in_ch = width * Bottleneck.expansion
            stages.append(nn.Sequential(*layer))
        self.stages = nn.Sequential(*stages)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(in_ch, config.num_classes)

    def init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, std=0.01)
                nn.init.zeros_(m.bias)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(torch.flatten(self.pool(self.stages(self.stem(x))), 1))


def build_classifier(
    config: ClassifierConfig, seed: int, device: torch.device, dtype: torch.dtype
) -> ResNet:
    """The seeded classifier on `device` in `dtype` (channels-last on CUDA), in eval mode."""
    torch.manual_seed(seed)
    model = ResNet(config)
    model.init_weights()
    model = model.to(device=device, dtype=dtype).eval()
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    return model
