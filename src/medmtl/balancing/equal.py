"""Equal weighting: L = Σ Lᵢ (the usual multi-task baseline, e.g. "EW" in Lin et al., TMLR 2022)."""

from __future__ import annotations

import torch

from medmtl.balancing.base import BalancerOptions, LossBalancer


class EqualOptions(BalancerOptions):
    """``equal`` has no options."""


class EqualWeights(LossBalancer):
    """Every present task's loss with weight 1."""

    Options = EqualOptions

    def forward(self, losses: dict[str, torch.Tensor], grads: torch.Tensor | None = None) -> torch.Tensor:
        return torch.stack(list(losses.values())).sum()

    def current_weights(self) -> dict[str, float]:
        return {name: 1.0 for name in self.task_names}
