"""A small, fast CNN encoder for CPU work (demo, tests, quick experiments)."""

from __future__ import annotations

import torch
from torch import nn

from medmtl.encoders.base import Encoder, FeatureInfo


def _conv_block(in_ch: int, out_ch: int, stride: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_ch, out_ch, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(out_ch),
        nn.ReLU(inplace=True),
        nn.Conv2d(out_ch, out_ch, 3, padding=1, bias=False),
        nn.BatchNorm2d(out_ch),
        nn.ReLU(inplace=True),
    )


class SmallCNNEncoder(Encoder):
    """``depth`` stages of two 3×3 convs; stage ``i`` has ``width·2^i`` channels and stride ``2^i``."""

    def __init__(self, in_channels: int = 1, width: int = 16, depth: int = 5) -> None:
        super().__init__()
        channels = [width * 2**i for i in range(depth)]
        self.stages = nn.ModuleList(
            _conv_block(in_channels if i == 0 else channels[i - 1], c, stride=1 if i == 0 else 2)
            for i, c in enumerate(channels)
        )
        self.feature_info = [FeatureInfo(c, 2**i) for i, c in enumerate(channels)]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        features = []
        for stage in self.stages:
            x = stage(x)
            features.append(x)
        return features
