"""ResNet-18/34/50 encoders (torchvision definitions, He et al., CVPR 2016)."""

from __future__ import annotations

import torch
from torch import nn
from torchvision.models import resnet

from medmtl.encoders.base import Encoder, EncoderOptions, FeatureInfo, replace_first_conv


class ResNetOptions(EncoderOptions):
    """ResNet-18/34/50 take no options (the depth is in the name)."""


class ResNetEncoder(Encoder):
    """Five scales: stem (stride 2) and layers 1–4 (strides 4, 8, 16, 32)."""

    def __init__(self, depth: int, in_channels: int = 3) -> None:
        super().__init__()
        builders = {18: resnet.resnet18, 34: resnet.resnet34, 50: resnet.resnet50}
        net = builders[depth](weights=None)
        net.conv1 = replace_first_conv(net.conv1, in_channels)
        self.stem = nn.Sequential(net.conv1, net.bn1, net.relu)
        self.pool = net.maxpool
        self.layer1, self.layer2, self.layer3, self.layer4 = net.layer1, net.layer2, net.layer3, net.layer4
        expansion = 4 if depth == 50 else 1
        self.feature_info = [FeatureInfo(64, 2)] + [
            FeatureInfo(c * expansion, r) for c, r in ((64, 4), (128, 8), (256, 16), (512, 32))
        ]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        f0 = self.stem(x)
        f1 = self.layer1(self.pool(f0))
        f2 = self.layer2(f1)
        f3 = self.layer3(f2)
        f4 = self.layer4(f3)
        return [f0, f1, f2, f3, f4]

    def _translate_key(self, key: str) -> str:
        # torchvision names the stem conv1/bn1; we keep them inside ``stem``.
        for tv_name, ours in (("conv1.", "stem.0."), ("bn1.", "stem.1.")):
            if key.startswith(tv_name):
                return ours + key[len(tv_name):]
        return key
