"""Building blocks shared by task heads: global pooling heads (and their options) and a U-Net decoder."""

from __future__ import annotations

from typing import Any, Literal

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from medmtl.encoders.base import FeatureInfo
from medmtl.errors import ConfigError
from medmtl.nn import conv_block
from medmtl.tasks.base import TaskOptions


PoolFrom = Literal["last", "all"] | list[int]


class PooledHeadOptions(TaskOptions):
    """Options of the tasks that predict from globally pooled features (classification, regression, survival)."""

    pool_from: PoolFrom = Field("last", description="encoder scales pooled: 'last' (deepest), 'all', or indices "
                                                    "(0 = finest; negative from the deepest), e.g. [2, 3, 4] for "
                                                    "the multi-scale outcome head of Amyar et al.")
    hidden: int = Field(0, ge=0, description="hidden units of the MLP; 0 = one linear layer")
    dropout: float = Field(0.0, ge=0, lt=1)


def pooled_scales(pool_from: PoolFrom, count: int, key: str) -> list[int]:
    """Indices (ascending, unique) of the ``count`` encoder scales that ``pool_from`` names."""
    if pool_from == "last":
        return [count - 1]
    if pool_from == "all":
        return list(range(count))
    bad = [i for i in pool_from if not -count <= i < count]
    if bad or not pool_from:
        raise ConfigError(key, f"{list(pool_from)} must name scales of this encoder, which has {count} "
                               f"(0..{count - 1}, or negative from the deepest)")
    return sorted({i % count for i in pool_from})


class PooledHead(nn.Module):
    """Global average pooling of one or several encoder scales, then an MLP.

    ``scales``: the indices of the encoder maps pooled and concatenated (the deepest alone, or
    several depths as in the multi-scale outcome head of Amyar et al.). Output ``[B, out_features]``.
    """

    def __init__(self, feature_info: list[FeatureInfo], out_features: int, scales: list[int],
                 hidden: int, dropout: float) -> None:
        super().__init__()
        self.indices = list(scales)
        in_features = sum(feature_info[i].channels for i in self.indices)
        layers: list[nn.Module] = [nn.Dropout(dropout)] if dropout > 0 else []
        if hidden > 0:
            layers += [nn.Linear(in_features, hidden), nn.ReLU(inplace=True)]
            in_features = hidden
        layers.append(nn.Linear(in_features, out_features))
        self.mlp = nn.Sequential(*layers)

    @classmethod
    def for_task(cls, task: Any, feature_info: list[FeatureInfo], out_features: int) -> PooledHead:
        """The head a task with :class:`PooledHeadOptions` asks for."""
        options = task.options
        scales = pooled_scales(options.pool_from, len(feature_info), f"tasks.{task.name}.pool_from")
        return cls(feature_info, out_features, scales, options.hidden, options.dropout)

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        pooled = [F.adaptive_avg_pool2d(features[i], 1).flatten(1) for i in self.indices]
        return self.mlp(torch.cat(pooled, dim=1))


class UNetDecoder(nn.Module):
    """Decoder from the deepest encoder map back to input resolution.

    With ``use_skips`` each step upsamples and concatenates the encoder map of the same scale
    (U-Net, Ronneberger et al. 2015). Without skips it only upsamples, so a reconstruction head
    cannot copy the input through the shallow maps. Input: the encoder's list of maps; output
    ``[B, out_channels, H, W]`` with (H, W) the image size.
    """

    def __init__(self, feature_info: list[FeatureInfo], out_channels: int, use_skips: bool = True,
                 max_width: int = 256) -> None:
        super().__init__()
        self.use_skips = use_skips
        widths = [max(16, min(max_width, f.channels // 2)) for f in feature_info]
        self.bottleneck = nn.Conv2d(feature_info[-1].channels, widths[-1], 1)
        self.steps = nn.ModuleList()
        for level in range(len(feature_info) - 2, -1, -1):
            skip = feature_info[level].channels if use_skips else 0
            self.steps.append(conv_block(widths[level + 1] + skip, widths[level]))
        self.out = nn.Conv2d(widths[0], out_channels, 1)

    def forward(self, features: list[torch.Tensor], output_size: tuple[int, int]) -> torch.Tensor:
        return self.out(self.decode(features, output_size))

    def decode(self, features: list[torch.Tensor], output_size: tuple[int, int]) -> torch.Tensor:
        """The last feature map before the 1×1 output conv, ``[B, widths[0], H, W]``."""
        x = self.bottleneck(features[-1])
        for step, level in zip(self.steps, range(len(features) - 2, -1, -1)):
            x = F.interpolate(x, size=features[level].shape[-2:], mode="bilinear", align_corners=False)
            if self.use_skips:
                x = torch.cat([x, features[level]], dim=1)
            x = step(x)
        if tuple(x.shape[-2:]) != tuple(output_size):
            x = F.interpolate(x, size=output_size, mode="bilinear", align_corners=False)
        return x
