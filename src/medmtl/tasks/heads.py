"""Building blocks shared by task heads: global pooling heads (and their options) and a U-Net decoder,
in 2D or 3D (the dimensionality is read from the encoder's :class:`FeatureInfo`)."""

from __future__ import annotations

from typing import Any, Literal

import torch
from pydantic import Field
from torch import nn

from medmtl.encoders.base import FeatureInfo
from medmtl.errors import ConfigError
from medmtl.nn import conv_block, conv_layer, resize_linear
from medmtl.tasks.base import TaskOptions


PoolFrom = Literal["last", "all"] | list[int]


class PooledHeadOptions(TaskOptions):
    """Options of the tasks that predict from globally pooled features (classification, regression, survival)."""

    pool_from: PoolFrom = Field("last", description="encoder scales pooled: 'last' (deepest), 'all', or indices "
                                                    "(0 = finest; negative from the deepest), e.g. [2, 3, 4] for "
                                                    "the multi-scale outcome head of Amyar et al.")
    pooling: Literal["avg", "avg_max"] = Field("avg", description="global average pooling, or average and max "
                                                                 "pooling concatenated (Amyar et al.)")
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
    """Global pooling of one or several encoder scales, then an MLP; 2D or 3D maps alike.

    ``scales``: the indices of the encoder maps pooled and concatenated (the deepest alone, or
    several depths as in the multi-scale outcome head of Amyar et al.); ``pooling="avg_max"``
    concatenates each map's average and maximum. Input: the encoder's maps ``[B, C_i, *S_i]``;
    output ``[B, out_features]``.
    """

    def __init__(self, feature_info: list[FeatureInfo], out_features: int, scales: list[int],
                 hidden: int, dropout: float, pooling: str = "avg") -> None:
        super().__init__()
        self.indices = list(scales)
        self.with_max = pooling == "avg_max"
        in_features = sum(feature_info[i].channels for i in self.indices) * (2 if self.with_max else 1)
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
        return cls(feature_info, out_features, scales, options.hidden, options.dropout, options.pooling)

    def pool(self, features: list[torch.Tensor]) -> torch.Tensor:
        """The pooled, concatenated features ``[B, in_features]`` the MLP reads."""
        pooled = []
        for i in self.indices:
            flat = features[i].flatten(2)
            pooled.append(flat.mean(dim=2))
            if self.with_max:
                pooled.append(flat.amax(dim=2))
        return torch.cat(pooled, dim=1)

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        return self.mlp(self.pool(features))


class UNetDecoder(nn.Module):
    """Decoder from the deepest encoder map back to input resolution.

    With ``use_skips`` each step upsamples and concatenates the encoder map of the same scale
    (U-Net, Ronneberger et al. 2015). Without skips it only upsamples, so a reconstruction head
    cannot copy the input through the shallow maps. Up-sampling is (bi/tri)linear to the size of the
    next finer map, so anisotropic encoders need nothing special. Input: the encoder's list of
    maps ``[B, C_i, *S_i]``; output ``[B, out_channels, *S]`` with ``S`` the image size.
    """

    def __init__(self, feature_info: list[FeatureInfo], out_channels: int, use_skips: bool = True,
                 max_width: int = 256) -> None:
        super().__init__()
        self.use_skips = use_skips
        dims = feature_info[0].spatial_dims
        widths = [max(16, min(max_width, f.channels // 2)) for f in feature_info]
        self.bottleneck = conv_layer(dims, feature_info[-1].channels, widths[-1], 1)
        self.steps = nn.ModuleList()
        for level in range(len(feature_info) - 2, -1, -1):
            skip = feature_info[level].channels if use_skips else 0
            self.steps.append(conv_block(widths[level + 1] + skip, widths[level], spatial_dims=dims))
        self.out = conv_layer(dims, widths[0], out_channels, 1)

    def forward(self, features: list[torch.Tensor], output_size: tuple[int, ...]) -> torch.Tensor:
        return self.out(self.decode(features, output_size))

    def decode(self, features: list[torch.Tensor], output_size: tuple[int, ...]) -> torch.Tensor:
        """The last feature map before the 1×1 output conv, ``[B, widths[0], *S]``."""
        x = self.bottleneck(features[-1])
        for step, level in zip(self.steps, range(len(features) - 2, -1, -1)):
            x = resize_linear(x, features[level].shape[2:])
            if self.use_skips:
                x = torch.cat([x, features[level]], dim=1)
            x = step(x)
        if tuple(x.shape[2:]) != tuple(output_size):
            x = resize_linear(x, output_size)
        return x
