"""Low-level layers shared by encoders and task heads, in 2D or 3D.

Every factory takes ``spatial_dims`` (2: ``[B, C, H, W]``, 3: ``[B, C, D, H, W]``), following
MONAI's ``Conv[Conv.CONV, spatial_dims]`` pattern, so one class of encoder or head serves both.
A stride is an int (the same on every axis) or one int per spatial axis, in tensor order
(``(z, y, x)`` in 3D): ``(1, 2, 2)`` halves a thick-slice CT in-plane only.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

Norm = Literal["batch", "group"]
SpatialDims = Literal[2, 3]
Stride = int | Sequence[int]

_CONV = {2: nn.Conv2d, 3: nn.Conv3d}
_BATCH_NORM = {2: nn.BatchNorm2d, 3: nn.BatchNorm3d}
_MAX_POOL = {2: nn.MaxPool2d, 3: nn.MaxPool3d}
_LINEAR_MODE = {1: "linear", 2: "bilinear", 3: "trilinear"}


def check_spatial_dims(spatial_dims: int) -> int:
    if spatial_dims not in (2, 3):
        raise ValueError(f"spatial_dims must be 2 or 3, not {spatial_dims!r}")
    return spatial_dims


def as_stride(stride: Stride, spatial_dims: int) -> tuple[int, ...]:
    """``stride`` as one int per spatial axis (an int is repeated)."""
    if isinstance(stride, int):
        return (stride,) * spatial_dims
    stride = tuple(int(s) for s in stride)
    if len(stride) != spatial_dims:
        raise ValueError(f"a stride for {spatial_dims}D needs {spatial_dims} values, got {list(stride)}")
    return stride


def conv_layer(spatial_dims: int, in_ch: int, out_ch: int, kernel_size: Stride = 3, stride: Stride = 1,
               padding: Stride | None = None, bias: bool = True) -> nn.Module:
    """``nn.Conv2d`` or ``nn.Conv3d``; ``padding`` defaults to "same" for odd kernels (``k // 2`` per axis)."""
    kernel = as_stride(kernel_size, check_spatial_dims(spatial_dims))
    pad = tuple(k // 2 for k in kernel) if padding is None else as_stride(padding, spatial_dims)
    return _CONV[spatial_dims](in_ch, out_ch, kernel, stride=as_stride(stride, spatial_dims), padding=pad, bias=bias)


def norm_layer(kind: Norm, channels: int, spatial_dims: int = 2) -> nn.Module:
    """``BatchNorm2d``/``BatchNorm3d`` (``"batch"``) or ``GroupNorm`` with up to 8 groups (``"group"``).

    GroupNorm does not depend on the batch: needed for one whole-slide grid per step, where
    BatchNorm would normalise each grid by its own statistics and erase slide-level shifts.
    """
    if kind == "batch":
        return _BATCH_NORM[check_spatial_dims(spatial_dims)](channels)
    if kind == "group":
        return nn.GroupNorm(min(8, channels), channels)
    raise ValueError(f"norm must be 'batch' or 'group', not {kind!r}")


def max_pool(spatial_dims: int, kernel_size: Stride, stride: Stride, padding: Stride = 0) -> nn.Module:
    """``nn.MaxPool2d`` or ``nn.MaxPool3d``."""
    return _MAX_POOL[check_spatial_dims(spatial_dims)](as_stride(kernel_size, spatial_dims),
                                                       as_stride(stride, spatial_dims),
                                                       as_stride(padding, spatial_dims))


def resize_linear(x: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """``x`` ``[B, C, *spatial]`` resized to ``size`` by (bi/tri)linear interpolation."""
    return F.interpolate(x, size=tuple(size), mode=_LINEAR_MODE[x.dim() - 2], align_corners=False)


def conv_block(in_ch: int, out_ch: int, stride: Stride = 1, norm: Norm = "batch", spatial_dims: int = 2) -> nn.Sequential:
    """Two 3×3(×3) conv + norm + ReLU; the first conv has ``stride``.

    ``[B, in_ch, *S] -> [B, out_ch, *S / stride]``. The convs have no bias (the norm layer has
    one); submodules ``0``–``5`` are conv, norm, ReLU, conv, norm, ReLU.
    """
    return nn.Sequential(
        conv_layer(spatial_dims, in_ch, out_ch, 3, stride=stride, bias=False),
        norm_layer(norm, out_ch, spatial_dims),
        nn.ReLU(inplace=True),
        conv_layer(spatial_dims, out_ch, out_ch, 3, bias=False),
        norm_layer(norm, out_ch, spatial_dims),
        nn.ReLU(inplace=True),
    )
