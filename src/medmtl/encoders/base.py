"""The encoder contract: an image in, one feature map per scale out."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from medmtl.errors import DataError
from medmtl.nn import as_stride, conv_layer


class EncoderOptions(BaseModel):
    """Base of the options models of the encoders (``model.encoder.options``); unknown keys are errors.

    Each encoder declares its subclass (with the defaults) in its own module; an encoder without
    options uses this class as is.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass(frozen=True)
class FeatureInfo:
    """What one encoder output looks like: its channel count and its stride w.r.t. the input.

    ``strides``: one reduction factor per spatial axis in tensor order (``(y, x)`` in 2D,
    ``(z, y, x)`` in 3D), e.g. ``(1, 4, 4)`` for a thick-slice CT map halved twice in-plane
    only. An int means the same factor on both axes of a 2D map.
    """

    channels: int
    strides: tuple[int, ...]

    def __post_init__(self) -> None:
        if isinstance(self.strides, int):
            object.__setattr__(self, "strides", (self.strides, self.strides))
        else:
            object.__setattr__(self, "strides", tuple(int(s) for s in self.strides))

    @property
    def reduction(self) -> int:
        """The largest per-axis reduction (the stride, for isotropic maps)."""
        return max(self.strides)

    @property
    def spatial_dims(self) -> int:
        return len(self.strides)


class EncoderOptionsWithStrides(EncoderOptions):
    """Options of the encoders whose down-sampling can be anisotropic."""

    strides: list[int | list[int]] | None = Field(
        None, description="stride of each scale w.r.t. the previous one (scale 0: w.r.t. the input), an int or "
                          "one per axis in tensor order (z, y, x); e.g. [[1, 2, 2], [1, 2, 2], 2, 2, 2] keeps a "
                          "thick-slice CT's z resolution in the first two scales; default: the encoder's own")

    def scale_strides(self, defaults: list[int], spatial_dims: int, encoder: str) -> list[tuple[int, ...]]:
        """Per scale, its stride w.r.t. the previous scale as one int per axis."""
        from medmtl.errors import ConfigError

        given = defaults if self.strides is None else self.strides
        if len(given) != len(defaults):
            raise ConfigError("model.encoder.options.strides", f"{encoder} has {len(defaults)} scales, so strides "
                                                               f"needs {len(defaults)} entries, got {len(given)}")
        try:
            out = [as_stride(s, spatial_dims) for s in given]
        except ValueError as exc:
            raise ConfigError("model.encoder.options.strides", str(exc)) from None
        if any(s < 1 for stride in out for s in stride):
            raise ConfigError("model.encoder.options.strides", f"strides must be ≥ 1, got {given}")
        return out


def cumulative_strides(scale_strides: list[tuple[int, ...]]) -> list[tuple[int, ...]]:
    """Per scale, its total reduction w.r.t. the input (running product of the per-scale strides)."""
    total = tuple(1 for _ in scale_strides[0])
    out = []
    for stride in scale_strides:
        total = tuple(t * s for t, s in zip(total, stride))
        out.append(total)
    return out


class Encoder(nn.Module):
    """Base class of encoders, 2D or 3D (``spatial_dims``).

    ``forward(x [B, C_in, *S]) -> list[Tensor]`` with ``S`` = ``(H, W)`` or ``(D, H, W)``, one
    map per scale from fine to coarse; map ``i`` has shape ``[B, feature_info[i].channels,
    *S / feature_info[i].strides]``. Dense heads use the list as U-Net skips; global heads pool
    one or several maps.
    """

    feature_info: list[FeatureInfo]
    spatial_dims: int = 2

    @property
    def channels(self) -> list[int]:
        return [f.channels for f in self.feature_info]

    @property
    def reductions(self) -> list[int]:
        return [f.reduction for f in self.feature_info]

    @property
    def out_channels(self) -> int:
        """Channels of the deepest (coarsest) feature map."""
        return self.feature_info[-1].channels

    def load_weights(self, path: str | Path) -> None:
        """Load a local state dict (ours, the matching torchvision model's, or in 3D a MONAI /
        MedicalNet ResNet's, whose keys are torchvision's with a ``module.`` prefix).

        Keys that do not fit (a classifier layer, a first conv for another channel count) are
        skipped; an error is raised when nothing matches, so a wrong file never passes silently.
        """
        path = Path(path)
        if not path.is_file():
            raise DataError(path, "weights file does not exist")
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # torch raises many types for a bad file
            raise DataError(path, f"cannot be read as a PyTorch state dict: {exc}") from exc
        if isinstance(state, dict) and "state_dict" in state:
            state = state["state_dict"]
        own = self.state_dict()
        usable = {}
        for key, value in state.items():
            for candidate in (key, _strip_prefix(key)):
                target = self._translate_key(candidate)
                if target in own and own[target].shape == value.shape:
                    usable[target] = value
                    break
        if not usable:
            raise DataError(path, f"no tensor in this file fits encoder {type(self).__name__}")
        self.load_state_dict(usable, strict=False)

    def _translate_key(self, key: str) -> str:
        """Map a key of the source model's state dict onto this encoder's (identity by default)."""
        return key


def _strip_prefix(key: str) -> str:
    for prefix in ("encoder.", "model.encoder.", "module."):
        if key.startswith(prefix):
            return key[len(prefix):]
    return key


def replace_first_conv(conv: nn.Conv2d | nn.Conv3d, in_channels: int) -> nn.Module:
    """A copy of ``conv`` taking ``in_channels`` inputs (weights averaged over the old inputs)."""
    if conv.in_channels == in_channels:
        return conv
    new = conv_layer(conv.weight.dim() - 2, in_channels, conv.out_channels, conv.kernel_size, conv.stride,
                     conv.padding, bias=conv.bias is not None)
    with torch.no_grad():
        mean = conv.weight.mean(dim=1, keepdim=True)
        new.weight.copy_(mean.expand(-1, in_channels, *mean.shape[2:]))
    return new
