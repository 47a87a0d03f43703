"""VGG-13 encoder (Simonyan & Zisserman, ICLR 2015), as used by the four-task chest CT model."""

from __future__ import annotations

import torch
from torch import nn
from torchvision.models import vgg

from medmtl.encoders.base import Encoder, EncoderOptions, FeatureInfo, replace_first_conv


class VGGOptions(EncoderOptions):
    """VGG-13 takes no options (batch norm is in the name: vgg13_bn)."""


class VGGEncoder(Encoder):
    """VGG-13 conv blocks; features are taken before each max-pool (strides 1, 2, 4, 8, 16).

    ``batch_norm=True`` (vgg13_bn) trains far more reliably from scratch.
    """

    def __init__(self, in_channels: int = 3, batch_norm: bool = True) -> None:
        super().__init__()
        net = vgg.vgg13_bn(weights=None) if batch_norm else vgg.vgg13(weights=None)
        layers = list(net.features)
        layers[0] = replace_first_conv(layers[0], in_channels)
        blocks: list[nn.Sequential] = []
        current: list[nn.Module] = []
        for layer in layers:
            if isinstance(layer, nn.MaxPool2d):
                blocks.append(nn.Sequential(*current))
                current = [layer]
            else:
                current.append(layer)
        self.blocks = nn.ModuleList(blocks)
        self.feature_info = [FeatureInfo(c, r) for c, r in ((64, 1), (128, 2), (256, 4), (512, 8), (512, 16))]
        # torchvision's flat ``features.<i>`` index -> our (block, position) pair
        positions = [(b, j) for b, block in enumerate(blocks) for j in range(len(block))]
        self._torchvision_index = dict(enumerate(positions))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        features = []
        for block in self.blocks:
            x = block(x)
            features.append(x)
        return features

    def _translate_key(self, key: str) -> str:
        # torchvision: features.<i>.weight -> ours: blocks.<b>.<j>.weight
        parts = key.split(".")
        if len(parts) == 3 and parts[0] == "features" and parts[1].isdigit():
            mapped = self._torchvision_index.get(int(parts[1]))
            if mapped is not None:
                return f"blocks.{mapped[0]}.{mapped[1]}.{parts[2]}"
        return key

