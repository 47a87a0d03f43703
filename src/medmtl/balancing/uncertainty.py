"""Homoscedastic uncertainty weighting (Kendall, Gal & Cipolla, CVPR 2018)."""

from __future__ import annotations

import torch
from torch import nn

from medmtl.balancing.base import BalancerOptions, LossBalancer


class UncertaintyOptions(BalancerOptions):
    """``uncertainty`` has no options."""


class UncertaintyWeights(LossBalancer):
    """L = Σ exp(−sᵢ)·Lᵢ + sᵢ with learnt sᵢ = log σᵢ² (one scalar per task, initialised at 0).

    The regulariser sᵢ is added only for tasks present in the batch, so partially labelled
    batches do not push absent tasks' weights around.
    """

    Options = UncertaintyOptions

    def __init__(self, task_names: list[str], options: UncertaintyOptions | None = None) -> None:
        super().__init__(task_names, options)
        self.log_vars = nn.ParameterDict({name: nn.Parameter(torch.zeros(())) for name in task_names})

    def forward(self, losses: dict[str, torch.Tensor], grads: torch.Tensor | None = None) -> torch.Tensor:
        terms = [torch.exp(-self.log_vars[n]) * loss + self.log_vars[n] for n, loss in losses.items()]
        return torch.stack(terms).sum()

    def current_weights(self) -> dict[str, float]:
        return {name: float(torch.exp(-s.detach())) for name, s in self.log_vars.items()}
