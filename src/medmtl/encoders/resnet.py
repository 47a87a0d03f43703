"""ResNet-10/18/34/50 encoders in 2D or 3D (He et al., CVPR 2016).

One definition for both: layer factories from :mod:`medmtl.nn` pick 2D or 3D convolutions. The
module names are torchvision's (``conv1``, ``bn1``, ``layer1.0.conv1``, ``downsample.0``…), which
MONAI's ``monai.networks.nets.resnet`` and the MedicalNet 3D weights share, so a local state dict
of either loads (:meth:`~medmtl.encoders.base.Encoder.load_weights`). As in torchvision (ResNet
v1.5) and MONAI, a bottleneck block strides in its 3×3 conv. ResNet-10 is MedicalNet's / MONAI's
``resnet10`` (one basic block per layer).
"""

from __future__ import annotations

import torch
from torch import nn

from medmtl.encoders.base import Encoder, EncoderOptionsWithStrides, FeatureInfo, cumulative_strides
from medmtl.nn import conv_layer, max_pool, norm_layer

#: depth -> (block kind, blocks per layer)
LAYOUTS = {10: ("basic", (1, 1, 1, 1)), 18: ("basic", (2, 2, 2, 2)), 34: ("basic", (3, 4, 6, 3)),
           50: ("bottleneck", (3, 4, 6, 3))}
WIDTHS = (64, 128, 256, 512)


class ResNetOptions(EncoderOptionsWithStrides):
    """``model.encoder.options`` of the ResNets (the depth is in the name). ``strides`` has five
    entries: the stem conv, the max-pool, layers 2, 3 and 4 (layer 1 does not stride)."""


def _bn(channels: int, dims: int) -> nn.Module:
    return norm_layer("batch", channels, dims)


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, in_ch: int, width: int, stride: tuple[int, ...], dims: int) -> None:
        super().__init__()
        self.conv1 = conv_layer(dims, in_ch, width, 3, stride, bias=False)
        self.bn1 = _bn(width, dims)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv_layer(dims, width, width, 3, bias=False)
        self.bn2 = _bn(width, dims)
        self.downsample = _shortcut(in_ch, width, stride, dims)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(out)) + identity)


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, in_ch: int, width: int, stride: tuple[int, ...], dims: int) -> None:
        super().__init__()
        self.conv1 = conv_layer(dims, in_ch, width, 1, bias=False)
        self.bn1 = _bn(width, dims)
        self.conv2 = conv_layer(dims, width, width, 3, stride, bias=False)
        self.bn2 = _bn(width, dims)
        self.conv3 = conv_layer(dims, width, width * 4, 1, bias=False)
        self.bn3 = _bn(width * 4, dims)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = _shortcut(in_ch, width * 4, stride, dims)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        return self.relu(self.bn3(self.conv3(out)) + identity)


def _shortcut(in_ch: int, out_ch: int, stride: tuple[int, ...], dims: int) -> nn.Module | None:
    if in_ch == out_ch and all(s == 1 for s in stride):
        return None
    return nn.Sequential(conv_layer(dims, in_ch, out_ch, 1, stride, bias=False), _bn(out_ch, dims))


class ResNetEncoder(Encoder):
    """Five scales: stem (stride 2) and layers 1–4 (total strides 4, 8, 16, 32 by default).

    ``[B, C_in, *S] -> [f0 .. f4]``; ResNet-10/18/34: 64, 64, 128, 256, 512 channels, ResNet-50:
    64, 256, 512, 1024, 2048.
    """

    def __init__(self, depth: int, in_channels: int = 3, options: ResNetOptions | None = None,
                 spatial_dims: int = 2) -> None:
        super().__init__()
        if depth not in LAYOUTS:
            raise ValueError(f"ResNet depth must be one of {sorted(LAYOUTS)}, not {depth}")
        options = options if options is not None else ResNetOptions()
        dims = self.spatial_dims = spatial_dims
        strides = options.scale_strides([2, 2, 2, 2, 2], dims, f"resnet{depth}")
        kind, blocks = LAYOUTS[depth]
        block = BasicBlock if kind == "basic" else Bottleneck
        self.stem = nn.Sequential(conv_layer(dims, in_channels, 64, 7, strides[0], bias=False), _bn(64, dims),
                                  nn.ReLU(inplace=True))
        self.pool = max_pool(dims, 3, strides[1], 1)
        in_ch = 64
        layers = []
        for index, (width, count) in enumerate(zip(WIDTHS, blocks)):
            stride = strides[index + 1] if index > 0 else (1,) * dims
            units = []
            for unit in range(count):
                units.append(block(in_ch, width, stride if unit == 0 else (1,) * dims, dims))
                in_ch = width * block.expansion
            layers.append(nn.Sequential(*units))
        self.layer1, self.layer2, self.layer3, self.layer4 = layers
        channels = [64] + [w * block.expansion for w in WIDTHS]
        self.feature_info = [FeatureInfo(c, s) for c, s in zip(channels, cumulative_strides(strides))]
        self._init_weights()

    def _init_weights(self) -> None:
        for module in self.modules():  # torchvision's initialisation
            if isinstance(module, (nn.Conv2d, nn.Conv3d)):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, (nn.BatchNorm2d, nn.BatchNorm3d)):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        f0 = self.stem(x)
        f1 = self.layer1(self.pool(f0))
        f2 = self.layer2(f1)
        f3 = self.layer3(f2)
        f4 = self.layer4(f3)
        return [f0, f1, f2, f3, f4]

    def _translate_key(self, key: str) -> str:
        # torchvision / MONAI name the stem conv1/bn1; we keep them inside ``stem``.
        for source, ours in (("conv1.", "stem.0."), ("bn1.", "stem.1.")):
            if key.startswith(source):
                return ours + key[len(source):]
        return key
