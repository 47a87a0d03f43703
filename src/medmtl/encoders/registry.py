"""Encoders by name: ``create_encoder("resnet18", in_channels=1, spatial_dims=3)``, each with its options model."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from medmtl.encoders.base import Encoder, EncoderOptions
from medmtl.encoders.resnet import ResNetEncoder, ResNetOptions
from medmtl.encoders.small_cnn import SmallCNNEncoder, SmallCNNOptions, UNetEncoder, UNetEncoderOptions
from medmtl.encoders.vgg import VGGEncoder, VGGOptions
from medmtl.errors import ConfigError
from medmtl.options import validate_options

OPTIONS_KEY = "model.encoder.options"


@dataclass(frozen=True)
class EncoderSpec:
    """How to build one registered encoder: ``build(in_channels, options, spatial_dims)``, its
    options model and the spatial dimensions it supports."""

    build: Callable[[int, Any, int], Encoder]
    options: type[EncoderOptions]
    spatial_dims: tuple[int, ...] = (2, 3)


def _resnet(depth: int) -> EncoderSpec:
    return EncoderSpec(lambda in_channels, options, dims: ResNetEncoder(depth, in_channels, options, dims),
                       ResNetOptions)


ENCODERS: dict[str, EncoderSpec] = {
    "resnet10": _resnet(10),
    "resnet18": _resnet(18),
    "resnet34": _resnet(34),
    "resnet50": _resnet(50),
    "vgg13": EncoderSpec(lambda in_channels, options, dims: VGGEncoder(in_channels, batch_norm=False), VGGOptions,
                         (2,)),
    "vgg13_bn": EncoderSpec(lambda in_channels, options, dims: VGGEncoder(in_channels, batch_norm=True), VGGOptions,
                            (2,)),
    "small_cnn": EncoderSpec(SmallCNNEncoder, SmallCNNOptions),
    "unet": EncoderSpec(UNetEncoder, UNetEncoderOptions),
}


def encoder_spec(name: str) -> EncoderSpec:
    """The registry entry of ``name``; a :class:`ConfigError` naming the choices when there is none."""
    spec = ENCODERS.get(name)
    if spec is None:
        raise ConfigError("model.encoder.name", f"unknown encoder '{name}'; choose one of {sorted(ENCODERS)}")
    return spec


def check_encoder_dims(name: str, spatial_dims: int) -> None:
    """A :class:`ConfigError` when encoder ``name`` has no ``spatial_dims``-D form."""
    spec = encoder_spec(name)
    if spatial_dims not in spec.spatial_dims:
        works = sorted(n for n, s in ENCODERS.items() if spatial_dims in s.spatial_dims)
        raise ConfigError("model.encoder.name", f"encoder '{name}' is {'/'.join(map(str, spec.spatial_dims))}D "
                                                f"only; in {spatial_dims}D choose one of {works}")


def validate_encoder_options(name: str, options: Mapping[str, Any] | None = None) -> EncoderOptions:
    """``options`` checked against the options model of encoder ``name`` (defaults filled in).

    Raises :class:`ConfigError` with key ``model.encoder.options.<key>`` for an unknown key or a
    bad value, naming the allowed keys.
    """
    return validate_options(encoder_spec(name).options, options, OPTIONS_KEY, f"encoder '{name}'")


def create_encoder(name: str, in_channels: int = 1, weights: str | Path | None = None, spatial_dims: int = 2,
                   **options: Any) -> Encoder:
    """Build an encoder from scratch in 2D or 3D; ``options`` are checked against its options model
    (e.g. :class:`~medmtl.encoders.small_cnn.SmallCNNOptions`); ``weights`` optionally names a
    local state-dict file."""
    check_encoder_dims(name, spatial_dims)
    spec = encoder_spec(name)
    encoder = spec.build(in_channels, validate_encoder_options(name, options), spatial_dims)
    if weights is not None:
        encoder.load_weights(weights)
    return encoder
