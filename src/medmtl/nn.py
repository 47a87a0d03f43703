"""Low-level layers shared by encoders and task heads."""

from __future__ import annotations

from typing import Literal

from torch import nn

Norm = Literal["batch", "group"]


def norm_layer(kind: Norm, channels: int) -> nn.Module:
    """``BatchNorm2d`` (``"batch"``) or ``GroupNorm`` with up to 8 groups (``"group"``).

    GroupNorm does not depend on the batch: needed for one whole-slide grid per step, where
    BatchNorm would normalise each grid by its own statistics and erase slide-level shifts.
    """
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "group":
        return nn.GroupNorm(min(8, channels), channels)
    raise ValueError(f"norm must be 'batch' or 'group', not {kind!r}")


def conv_block(in_ch: int, out_ch: int, stride: int = 1, norm: Norm = "batch") -> nn.Sequential:
    """Two 3×3 conv + norm + ReLU; the first conv has ``stride``.

    ``[B, in_ch, H, W] -> [B, out_ch, H / stride, W / stride]``. The convs have no bias (the norm
    layer has one); submodules ``0``–``5`` are conv, norm, ReLU, conv, norm, ReLU.
    """
    return nn.Sequential(
        nn.Conv2d(in_ch, out_ch, 3, stride=stride, padding=1, bias=False),
        norm_layer(norm, out_ch),
        nn.ReLU(inplace=True),
        nn.Conv2d(out_ch, out_ch, 3, padding=1, bias=False),
        norm_layer(norm, out_ch),
        nn.ReLU(inplace=True),
    )
