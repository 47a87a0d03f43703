"""Building blocks shared by task heads: global pooling heads and a U-Net decoder."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from medmtl.encoders.base import FeatureInfo


def conv_block(in_ch: int, out_ch: int) -> nn.Sequential:
    """Two 3×3 conv + BN + ReLU."""
    return nn.Sequential(
        nn.Conv2d(in_ch, out_ch, 3, padding=1, bias=False),
        nn.BatchNorm2d(out_ch),
        nn.ReLU(inplace=True),
        nn.Conv2d(out_ch, out_ch, 3, padding=1, bias=False),
        nn.BatchNorm2d(out_ch),
        nn.ReLU(inplace=True),
    )


class PooledHead(nn.Module):
    """Global average pooling of one or several encoder depths, then an MLP.

    ``levels="last"`` pools the deepest map; ``"all"`` concatenates the pooled maps of every
    depth (the multi-scale outcome head of Amyar et al.). Output ``[B, out_features]``.
    """

    def __init__(self, feature_info: list[FeatureInfo], out_features: int, levels: str = "last",
                 hidden: int = 0, dropout: float = 0.0) -> None:
        super().__init__()
        self.indices = [len(feature_info) - 1] if levels == "last" else list(range(len(feature_info)))
        in_features = sum(feature_info[i].channels for i in self.indices)
        layers: list[nn.Module] = [nn.Dropout(dropout)] if dropout > 0 else []
        if hidden > 0:
            layers += [nn.Linear(in_features, hidden), nn.ReLU(inplace=True)]
            in_features = hidden
        layers.append(nn.Linear(in_features, out_features))
        self.mlp = nn.Sequential(*layers)

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
        self.final_upsample = feature_info[0].reduction
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
