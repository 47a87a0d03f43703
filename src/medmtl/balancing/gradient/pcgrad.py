"""PCGrad (Yu et al., "Gradient Surgery for Multi-Task Learning", NeurIPS 2020)."""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field
from torch import Tensor

from medmtl.balancing.base import (
    BalancerOptions,
    GradientBalancer,
    GradientBalancerOptions,
)
from medmtl.balancing.gradient.functional import pcgrad_weights


class PCGradOptions(GradientBalancerOptions):
    """Options of ``pcgrad``."""

    reduction: Literal["sum", "mean"] = Field("sum", description="sum (the paper) or mean of the projected gradients")
    seed: int | None = Field(None, description="seed of the random task orders (None: torch's global generator)")


class PCGrad(GradientBalancer):
    """Projects each task gradient off the conflicting others in random order and sums them;
    see :func:`~medmtl.balancing.gradient.functional.pcgrad_weights`."""

    Options = PCGradOptions

    def __init__(self, task_names: list[str], options: BalancerOptions | None = None) -> None:
        super().__init__(task_names, options)
        seed = self.options.seed
        self.generator = None if seed is None else torch.Generator().manual_seed(seed)

    def task_weights(self, grads: Tensor, losses: list[Tensor]) -> Tensor:
        return pcgrad_weights(grads, generator=self.generator, reduction=self.options.reduction)
