"""Encoders by name: ``create_encoder("resnet18", in_channels=1)``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from medmtl.encoders.base import Encoder
from medmtl.encoders.resnet import ResNetEncoder
from medmtl.encoders.small_cnn import SmallCNNEncoder
from medmtl.encoders.vgg import VGGEncoder
from medmtl.errors import ConfigError

ENCODERS: dict[str, Callable[..., Encoder]] = {
    "resnet18": lambda in_channels, **kw: ResNetEncoder(18, in_channels, **kw),
    "resnet34": lambda in_channels, **kw: ResNetEncoder(34, in_channels, **kw),
    "resnet50": lambda in_channels, **kw: ResNetEncoder(50, in_channels, **kw),
    "vgg13": lambda in_channels, **kw: VGGEncoder(in_channels, batch_norm=False, **kw),
    "vgg13_bn": lambda in_channels, **kw: VGGEncoder(in_channels, batch_norm=True, **kw),
    "small_cnn": lambda in_channels, **kw: SmallCNNEncoder(in_channels, **kw),
}


def create_encoder(name: str, in_channels: int = 1, weights: str | Path | None = None, **kwargs) -> Encoder:
    """Build an encoder from scratch; ``weights`` optionally names a local state-dict file."""
    if name not in ENCODERS:
        raise ConfigError("model.encoder.name", f"unknown encoder '{name}'; choose one of {sorted(ENCODERS)}")
    encoder = ENCODERS[name](in_channels, **kwargs)
    if weights is not None:
        encoder.load_weights(weights)
    return encoder
