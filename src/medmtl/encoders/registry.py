"""Encoders by name: ``create_encoder("resnet18", in_channels=1)``, each with its options model."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any


from medmtl.encoders.base import Encoder, EncoderOptions
from medmtl.encoders.resnet import ResNetEncoder, ResNetOptions
from medmtl.encoders.small_cnn import SmallCNNEncoder, SmallCNNOptions
from medmtl.encoders.vgg import VGGEncoder, VGGOptions
from medmtl.errors import ConfigError
from medmtl.options import validate_options

OPTIONS_KEY = "model.encoder.options"


@dataclass(frozen=True)
class EncoderSpec:
    """How to build one registered encoder: ``build(in_channels, options)`` and its options model."""

    build: Callable[[int, Any], Encoder]
    options: type[EncoderOptions]


ENCODERS: dict[str, EncoderSpec] = {
    "resnet18": EncoderSpec(lambda in_channels, options: ResNetEncoder(18, in_channels), ResNetOptions),
    "resnet34": EncoderSpec(lambda in_channels, options: ResNetEncoder(34, in_channels), ResNetOptions),
    "resnet50": EncoderSpec(lambda in_channels, options: ResNetEncoder(50, in_channels), ResNetOptions),
    "vgg13": EncoderSpec(lambda in_channels, options: VGGEncoder(in_channels, batch_norm=False), VGGOptions),
    "vgg13_bn": EncoderSpec(lambda in_channels, options: VGGEncoder(in_channels, batch_norm=True), VGGOptions),
    "small_cnn": EncoderSpec(SmallCNNEncoder, SmallCNNOptions),
}


def encoder_spec(name: str) -> EncoderSpec:
    """The registry entry of ``name``; a :class:`ConfigError` naming the choices when there is none."""
    spec = ENCODERS.get(name)
    if spec is None:
        raise ConfigError("model.encoder.name", f"unknown encoder '{name}'; choose one of {sorted(ENCODERS)}")
    return spec


def validate_encoder_options(name: str, options: Mapping[str, Any] | None = None) -> EncoderOptions:
    """``options`` checked against the options model of encoder ``name`` (defaults filled in).

    Raises :class:`ConfigError` with key ``model.encoder.options.<key>`` for an unknown key or a
    bad value, naming the allowed keys.
    """
    return validate_options(encoder_spec(name).options, options, OPTIONS_KEY, f"encoder '{name}'")


def create_encoder(name: str, in_channels: int = 1, weights: str | Path | None = None, **options: Any) -> Encoder:
    """Build an encoder from scratch; ``options`` are checked against its options model (e.g.
    :class:`~medmtl.encoders.small_cnn.SmallCNNOptions`); ``weights`` optionally names a local
    state-dict file."""
    spec = encoder_spec(name)
    encoder = spec.build(in_channels, validate_encoder_options(name, options))
    if weights is not None:
        encoder.load_weights(weights)
    return encoder
