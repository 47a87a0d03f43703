"""Feature pyramid (FPN, Lin et al. 2017) over the shared encoder's scales."""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn
from torchvision.ops import FeaturePyramidNetwork
from torchvision.ops.feature_pyramid_network import LastLevelMaxPool

from medmtl.encoders.base import FeatureInfo
from medmtl.errors import ConfigError


class EncoderPyramid(nn.Module):
    """FPN over the encoder maps whose stride is at least ``min_reduction``, plus one max-pooled level.

    ``forward(features: list[[B, C_i, H_i, W_i]]) -> OrderedDict[str, [B, out_channels, h, w]]``
    with keys ``"0"``, ``"1"``, … from fine to coarse and ``"pool"`` last; :attr:`reductions`
    holds each output's stride.
    """

    def __init__(self, feature_info: list[FeatureInfo], out_channels: int, min_reduction: int,
                 task_name: str = "detection") -> None:
        super().__init__()
        self.indices = [i for i, info in enumerate(feature_info) if info.reduction >= min_reduction]
        if len(self.indices) < 2:
            strides = [info.reduction for info in feature_info]
            raise ConfigError(f"tasks.{task_name}", f"detection needs an encoder with at least two feature scales of "
                                                    f"stride ≥ {min_reduction} for its feature pyramid; this encoder "
                                                    f"gives strides {strides}. Use a multi-scale encoder (resnet*, "
                                                    "vgg13*, small_cnn with stages ≥ 4) or lower min_reduction.")
        self.fpn = FeaturePyramidNetwork([feature_info[i].channels for i in self.indices], out_channels,
                                         extra_blocks=LastLevelMaxPool())
        selected = [feature_info[i].reduction for i in self.indices]
        self.reductions = [*selected, selected[-1] * 2]
        self.out_channels = out_channels

    def forward(self, features: list[torch.Tensor]) -> OrderedDict[str, torch.Tensor]:
        inputs = OrderedDict((str(k), features[i]) for k, i in enumerate(self.indices))
        return self.fpn(inputs)
