"""Dynamic weight average (DWA): Liu, Johns & Davison, "End-to-End Multi-Task Learning with
Attention", CVPR 2019, Eq. (7).

wᵢ(t) = T·exp(rᵢ(t−1)/τ) / Σⱼ exp(rⱼ(t−1)/τ),  rᵢ(t−1) = Lᵢ(t−1)/Lᵢ(t−2),

with Lᵢ(e) the average training loss of task i over epoch e, τ the temperature and wᵢ = 1 for the
first two epochs.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from pydantic import Field

from medmtl.balancing.base import BalancerOptions, LossBalancer, weighted_sum


class DWAOptions(BalancerOptions):
    temperature: float = Field(2.0, gt=0, allow_inf_nan=False, description="τ of the softmax, > 0 (paper: 2)")


class DynamicWeightAverage(LossBalancer):
    """DWA with epoch-average losses.

    State (buffers, so in checkpoints): this epoch's per-task loss sums and counts, the last two
    epoch averages of every task and the weights of the current epoch. Partial labels: a task
    absent from a batch adds nothing to the sums; a task absent for a whole epoch keeps its two
    last averages, and a task with fewer than two averages gets the neutral ratio r = 1. Under DDP
    the sums and counts are all-reduced at the epoch end, so every rank applies the same weights
    (they are rank-local until then: ``local_buffers``, not broadcast from rank 0 by DDP).
    """

    Options = DWAOptions
    local_buffers = ("epoch_sum", "epoch_count")

    def __init__(self, task_names: list[str], options: DWAOptions | None = None) -> None:
        super().__init__(task_names, options)
        n = len(self.task_names)
        self.register_buffer("epoch_sum", torch.zeros(n, dtype=torch.float64))
        self.register_buffer("epoch_count", torch.zeros(n, dtype=torch.float64))
        # history[0] = Lᵢ(t−1), history[1] = Lᵢ(t−2); NaN where not known yet
        self.register_buffer("history", torch.full((2, n), float("nan"), dtype=torch.float64))
        self.register_buffer("weights", torch.ones(n))

    def forward(self, losses: dict[str, torch.Tensor], grads: torch.Tensor | None = None) -> torch.Tensor:
        if self.training:
            with torch.no_grad():
                for name, loss in losses.items():
                    i = self.task_names.index(name)
                    self.epoch_sum[i] += float(loss.detach())
                    self.epoch_count[i] += 1
        return weighted_sum({n: self.weights[self.task_names.index(n)].to(loss) for n, loss in losses.items()}, losses)

    def on_epoch_end(self) -> None:
        sums, counts = self.epoch_sum.clone(), self.epoch_count.clone()
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            both = torch.stack([sums, counts]).to(_collective_device())
            dist.all_reduce(both)
            sums, counts = both.cpu().to(sums)
        seen = counts > 0
        with torch.no_grad():
            self.history[1, seen] = self.history[0, seen]
            self.history[0, seen] = (sums[seen] / counts[seen]).to(self.history)
            self.epoch_sum.zero_()
            self.epoch_count.zero_()
            self.weights.copy_(dwa_weights(self.history, self.options.temperature).to(self.weights))

    def current_weights(self) -> dict[str, float]:
        return dict(zip(self.task_names, self.weights.tolist()))


def dwa_weights(history: torch.Tensor, temperature: float) -> torch.Tensor:
    """Eq. (7) from ``history [2, T]`` (rows: Lᵢ(t−1), Lᵢ(t−2); NaN where unknown): equal weights
    until some task has two averages; r = 1 for a task with fewer."""
    n = history.shape[1]
    known = ~torch.isnan(history).any(dim=0)
    if not known.any():
        return torch.ones(n, dtype=history.dtype, device=history.device)
    ratio = torch.ones(n, dtype=history.dtype, device=history.device)
    ratio[known] = history[0, known] / history[1, known].clamp_min(1e-12)
    return n * torch.softmax(ratio / temperature, dim=0)


def _collective_device() -> torch.device:
    """The device collectives run on (NCCL needs CUDA tensors)."""
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")
