"""Backbones that return one feature map per scale."""

from medmtl.encoders.base import Encoder, FeatureInfo
from medmtl.encoders.registry import ENCODERS, create_encoder

__all__ = ["ENCODERS", "Encoder", "FeatureInfo", "create_encoder"]
