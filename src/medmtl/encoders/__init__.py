"""Backbones that return one feature map per scale.

Names are imported on first use (PEP 562): task modules need :class:`FeatureInfo` only, and
importing the torchvision-based encoders would make ``import medmtl.config`` slow.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "ENCODERS": "registry", "Encoder": "base", "EncoderOptions": "base", "EncoderSpec": "registry",
    "FeatureInfo": "base", "ResNetOptions": "resnet", "SmallCNNOptions": "small_cnn", "UNetEncoderOptions": "small_cnn",
    "VGGOptions": "vgg",
    "check_encoder_dims": "registry", "create_encoder": "registry", "validate_encoder_options": "registry",
}

__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:
    from medmtl.encoders.base import Encoder, EncoderOptions, FeatureInfo
    from medmtl.encoders.registry import (ENCODERS, EncoderSpec, check_encoder_dims, create_encoder,
                                          validate_encoder_options)
    from medmtl.encoders.resnet import ResNetOptions
    from medmtl.encoders.small_cnn import SmallCNNOptions, UNetEncoderOptions
    from medmtl.encoders.vgg import VGGOptions


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'medmtl.encoders' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"medmtl.encoders.{_EXPORTS[name]}"), name)
    globals()[name] = value
    return value
