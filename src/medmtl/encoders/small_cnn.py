"""A small, fast CNN encoder for CPU work (demo, tests, quick experiments)."""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from medmtl.encoders.base import Encoder, FeatureInfo
from medmtl.errors import ConfigError

Norm = Literal["batch", "group"]


def _norm(kind: Norm, channels: int) -> nn.Module:
    # GroupNorm does not depend on the batch: needed for one whole-slide grid per step, where
    # BatchNorm would normalise each grid by its own statistics and erase slide-level shifts
    return nn.BatchNorm2d(channels) if kind == "batch" else nn.GroupNorm(min(8, channels), channels)


def _conv_block(in_ch: int, out_ch: int, stride: int, norm: Norm = "batch") -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_ch, out_ch, 3, stride=stride, padding=1, bias=False),
        _norm(norm, out_ch),
        nn.ReLU(inplace=True),
        nn.Conv2d(out_ch, out_ch, 3, padding=1, bias=False),
        _norm(norm, out_ch),
        nn.ReLU(inplace=True),
    )


class SmallCNNEncoder(Encoder):
    """``depth`` stages of two 3×3 convs; stage ``i`` has ``width·2^i`` channels and stride ``2^i``.

    ``norm="group"`` uses GroupNorm instead of BatchNorm (for batches of one, e.g. slide grids).
    """

    def __init__(self, in_channels: int = 1, width: int = 16, depth: int = 5, norm: Norm = "batch") -> None:
        super().__init__()
        if norm not in ("batch", "group"):
            raise ConfigError("model.encoder.options.norm", f"'{norm}' is not one of ['batch', 'group']")
        channels = [width * 2**i for i in range(depth)]
        self.stages = nn.ModuleList(
            _conv_block(in_channels if i == 0 else channels[i - 1], c, stride=1 if i == 0 else 2, norm=norm)
            for i, c in enumerate(channels)
        )
        self.feature_info = [FeatureInfo(c, 2**i) for i, c in enumerate(channels)]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        features = []
        for stage in self.stages:
            x = stage(x)
            features.append(x)
        return features
