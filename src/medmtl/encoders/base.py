"""The encoder contract: an image in, one feature map per scale out."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from pydantic import BaseModel, ConfigDict
from torch import nn

from medmtl.errors import DataError


class EncoderOptions(BaseModel):
    """Base of the options models of the encoders (``model.encoder.options``); unknown keys are errors.

    Each encoder declares its subclass (with the defaults) in its own module; an encoder without
    options uses this class as is.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass(frozen=True)
class FeatureInfo:
    """What one encoder output looks like: its channel count and its stride w.r.t. the input."""

    channels: int
    reduction: int


class Encoder(nn.Module):
    """Base class of 2D encoders.

    ``forward(x [B, C_in, H, W]) -> list[Tensor]``, one map per scale from fine to coarse;
    map ``i`` has shape ``[B, feature_info[i].channels, H / r_i, W / r_i]`` with
    ``r_i = feature_info[i].reduction``. Dense heads use the list as U-Net skips; global heads
    pool the last map.
    """

    feature_info: list[FeatureInfo]

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
        """Load a local state dict (ours or the matching torchvision model's).

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


def replace_first_conv(conv: nn.Conv2d, in_channels: int) -> nn.Conv2d:
    """A copy of ``conv`` taking ``in_channels`` inputs (weights averaged when it had 3)."""
    if conv.in_channels == in_channels:
        return conv
    new = nn.Conv2d(
        in_channels,
        conv.out_channels,
        kernel_size=conv.kernel_size,
        stride=conv.stride,
        padding=conv.padding,
        bias=conv.bias is not None,
    )
    with torch.no_grad():
        mean = conv.weight.mean(dim=1, keepdim=True)
        new.weight.copy_(mean.repeat(1, in_channels, 1, 1))
    return new
