"""A small, fast CNN encoder for CPU work (demo, tests, quick experiments)."""

from __future__ import annotations

import torch
from pydantic import Field
from torch import nn

from medmtl.encoders.base import Encoder, EncoderOptions, FeatureInfo
from medmtl.nn import Norm, conv_block


class SmallCNNOptions(EncoderOptions):
    """``model.encoder.options`` of ``small_cnn``."""

    width: int = Field(16, ge=1, description="channels of the first stage; stage i has width·2^i")
    stages: int = Field(5, ge=1, description="number of scales (stage i has stride 2^i)")
    norm: Norm = Field("batch", description="'group' (GroupNorm) for batches of one, e.g. slide grids")


class SmallCNNEncoder(Encoder):
    """``options.stages`` stages of two 3×3 convs; stage ``i`` has ``width·2^i`` channels and stride ``2^i``.

    ``norm="group"`` uses GroupNorm instead of BatchNorm (for batches of one, e.g. slide grids).
    """

    def __init__(self, in_channels: int, options: SmallCNNOptions | None = None) -> None:
        super().__init__()
        options = options if options is not None else SmallCNNOptions()
        channels = [options.width * 2**i for i in range(options.stages)]
        self.stages = nn.ModuleList(
            conv_block(in_channels if i == 0 else channels[i - 1], c, stride=1 if i == 0 else 2, norm=options.norm)
            for i, c in enumerate(channels)
        )
        self.feature_info = [FeatureInfo(c, 2**i) for i, c in enumerate(channels)]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        features = []
        for stage in self.stages:
            x = stage(x)
            features.append(x)
        return features
