"""Fixed task weights: L = Σ wᵢ·Lᵢ."""

from __future__ import annotations

import torch

from medmtl.balancing.base import BalancerOptions, LossBalancer
from medmtl.errors import ConfigError


class FixedOptions(BalancerOptions):
    """``fixed`` has no options besides ``loss.weights``."""


class FixedWeights(LossBalancer):
    """Constant weights (default 1). Weights of 0 switch a task's loss off, as the 0/1 weights of
    the four-task chest CT model (Hryniewska-Guzik et al.) do; a switched-off task is still
    evaluated.
    """

    Options = FixedOptions
    uses_weights = True

    def __init__(self, task_names: list[str], weights: dict[str, float] | None = None,
                 options: FixedOptions | None = None) -> None:
        super().__init__(task_names, options)
        weights = dict(weights or {})
        unknown = sorted(set(weights) - set(task_names))
        if unknown:
            raise ConfigError("loss.weights", f"names unknown task(s) {unknown}; tasks are {task_names}")
        negative = sorted(k for k, v in weights.items() if v < 0)
        if negative:
            raise ConfigError("loss.weights", f"weights must be ≥ 0; negative for {negative}")
        self.weights = {name: float(weights.get(name, 1.0)) for name in task_names}
        if not any(self.weights.values()):
            raise ConfigError("loss.weights", "all weights are 0: nothing would be trained")

    def forward(self, losses: dict[str, torch.Tensor], grads: torch.Tensor | None = None) -> torch.Tensor:
        terms = [self.weights[name] * loss for name, loss in losses.items() if self.weights[name] != 0]
        if not terms:
            reference = next(iter(losses.values()), None)
            return reference * 0.0 if reference is not None else torch.zeros(())
        return torch.stack(terms).sum()

    def current_weights(self) -> dict[str, float]:
        return dict(self.weights)

    def active_tasks(self) -> list[str]:
        """Tasks with a nonzero weight: a switched-off head is not run in training (still evaluated)."""
        return [name for name, weight in self.weights.items() if weight != 0]
