"""Aligned-MTL (Senushkin et al., "Independent Component Alignment for Multi-Task Learning", CVPR 2023)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field
from torch import Tensor

from medmtl.balancing.base import GradientBalancer, GradientBalancerOptions
from medmtl.balancing.gradient.functional import aligned_mtl_weights


class AlignedMTLOptions(GradientBalancerOptions):
    """Options of ``aligned_mtl``."""

    scale: Literal["min", "median", "rmse"] = Field(
        "min", description="norm of the aligned gradients: smallest singular value (the paper), median or RMS")


class AlignedMTL(GradientBalancer):
    """Sum of the aligned gradients B·G (orthogonal, equal norms: condition number 1);
    see :func:`~medmtl.balancing.gradient.functional.aligned_mtl_weights`."""

    Options = AlignedMTLOptions

    def task_weights(self, grads: Tensor, losses: list[Tensor]) -> Tensor:
        return aligned_mtl_weights(grads, scale=self.options.scale)
