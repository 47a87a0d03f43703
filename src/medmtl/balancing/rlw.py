"""Random loss weighting (RLW): Lin, Ye, Xu, Shi & Zhang, "Reasonable Effectiveness of Random
Weighting: A Litmus Test for Multi-Task Learning", TMLR 2022.

Each step draws λ̃ ~ N(0, I) and weights the losses with λ = softmax(λ̃) (the paper's Eq. for RLW
with the normal distribution; the weights sum to 1, they are not multiplied by T — as in the
authors' LibMTL implementation, ``F.softmax(torch.randn(task_num), dim=-1)``).
"""

from __future__ import annotations

import torch

from medmtl.balancing.base import BalancerOptions, LossBalancer, weighted_sum


class RLWOptions(BalancerOptions):
    """``rlw`` has no options."""


class RandomLossWeights(LossBalancer):
    """λ = softmax over the present tasks of fresh standard-normal draws.

    T draws (one per configured task) are taken every step from torch's generator (seeded per
    epoch by the trainer, so resumes repeat them); the softmax runs over the tasks present in the
    batch, so their weights sum to 1 and absent tasks keep their last weight.
    """

    Options = RLWOptions

    def __init__(self, task_names: list[str], options: RLWOptions | None = None) -> None:
        super().__init__(task_names, options)
        self.register_buffer("last_weights", torch.full((len(self.task_names),), 1.0 / max(1, len(self.task_names))))

    def forward(self, losses: dict[str, torch.Tensor], grads: torch.Tensor | None = None) -> torch.Tensor:
        index = [self.task_names.index(name) for name in losses]
        if self.training:
            draws = torch.randn(len(self.task_names))
            weights = torch.softmax(draws[index], dim=0)
            with torch.no_grad():
                self.last_weights[index] = weights.to(self.last_weights)
        else:  # evaluation: the expected weights, equal over the present tasks
            weights = torch.full((len(index),), 1.0 / len(index))
        reference = next(iter(losses.values()))
        return weighted_sum(dict(zip(losses, weights.to(reference))), losses)

    def current_weights(self) -> dict[str, float]:
        return dict(zip(self.task_names, self.last_weights.tolist()))
