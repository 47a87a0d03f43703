"""Plain convolutional encoders: ``small_cnn`` (fast, for CPU work) and ``unet`` (the U-Net encoder)."""

from __future__ import annotations

import torch
from pydantic import Field
from torch import nn

from medmtl.encoders.base import Encoder, EncoderOptionsWithStrides, FeatureInfo, cumulative_strides
from medmtl.nn import Norm, conv_block


class SmallCNNOptions(EncoderOptionsWithStrides):
    """``model.encoder.options`` of ``small_cnn``."""

    width: int = Field(16, ge=1, description="channels of the first stage; stage i has width·2^i")
    stages: int = Field(5, ge=1, description="number of scales (stage i has stride 2^i)")
    norm: Norm = Field("batch", description="'group' (GroupNorm) for batches of one, e.g. slide grids")


class UNetEncoderOptions(EncoderOptionsWithStrides):
    """``model.encoder.options`` of ``unet``: MONAI's ``UNet(channels=..., strides=...)`` in spirit."""

    channels: list[int] = Field([16, 32, 64, 128, 256], min_length=1, description="channels of each scale")
    norm: Norm = "batch"


class ConvEncoder(Encoder):
    """Stages of two 3×3(×3) convs (conv + norm + ReLU twice); each stage but the first down-samples
    with its strided first conv (stride 2 by default, per axis with ``strides``).

    ``[B, C_in, *S] -> [f_0 .. f_{n-1}]``, ``f_i`` with ``channels[i]`` channels.
    """

    def __init__(self, in_channels: int, channels: list[int], options: EncoderOptionsWithStrides, norm: Norm,
                 spatial_dims: int, name: str) -> None:
        super().__init__()
        self.spatial_dims = spatial_dims
        strides = options.scale_strides([1] + [2] * (len(channels) - 1), spatial_dims, name)
        self.stages = nn.ModuleList(
            conv_block(in_channels if i == 0 else channels[i - 1], c, stride=strides[i], norm=norm,
                       spatial_dims=spatial_dims)
            for i, c in enumerate(channels)
        )
        self.feature_info = [FeatureInfo(c, s) for c, s in zip(channels, cumulative_strides(strides))]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        features = []
        for stage in self.stages:
            x = stage(x)
            features.append(x)
        return features


class SmallCNNEncoder(ConvEncoder):
    """``options.stages`` stages; stage ``i`` has ``width·2^i`` channels and stride ``2^i``.

    ``norm="group"`` uses GroupNorm instead of BatchNorm (for batches of one, e.g. slide grids).
    """

    def __init__(self, in_channels: int, options: SmallCNNOptions | None = None, spatial_dims: int = 2) -> None:
        options = options if options is not None else SmallCNNOptions()
        channels = [options.width * 2**i for i in range(options.stages)]
        super().__init__(in_channels, channels, options, options.norm, spatial_dims, "small_cnn")


class UNetEncoder(ConvEncoder):
    """The contracting path of a U-Net (Ronneberger et al. 2015; Çiçek et al. 2016 in 3D) with
    strided convolutions instead of max-pooling, as in MONAI's ``UNet`` and nnU-Net."""

    def __init__(self, in_channels: int, options: UNetEncoderOptions | None = None, spatial_dims: int = 2) -> None:
        options = options if options is not None else UNetEncoderOptions()
        super().__init__(in_channels, list(options.channels), options, options.norm, spatial_dims, "unet")
