"""CAGrad (Liu et al., "Conflict-Averse Gradient Descent for Multi-task Learning", NeurIPS 2021)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field
from torch import Tensor

from medmtl.balancing.base import GradientBalancer, GradientBalancerOptions
from medmtl.balancing.gradient.functional import cagrad_weights


class CAGradOptions(GradientBalancerOptions):
    """Options of ``cagrad``."""

    c: float = Field(0.5, ge=0, description="radius of the ball around the mean gradient, relative to its norm")
    rescale: Literal[0, 1, 2] = Field(1, description="divide the direction by 1 (0), 1 + c² (1) or 1 + c (2)")
    max_iter: int = Field(100, ge=1, description="SLSQP iterations of the dual problem at most")


class CAGrad(GradientBalancer):
    """The direction maximising the worst task improvement within c·|g₀| of the mean gradient g₀;
    see :func:`~medmtl.balancing.gradient.functional.cagrad_weights`."""

    Options = CAGradOptions

    def task_weights(self, grads: Tensor, losses: list[Tensor]) -> Tensor:
        o = self.options
        return cagrad_weights(grads, c=o.c, rescale=o.rescale, max_iter=o.max_iter)
