"""DB-MTL (Lin et al., "Dual-Balancing for Multi-Task Learning", 2023)."""

from __future__ import annotations

import torch
from pydantic import Field
from torch import Tensor

from medmtl.balancing.base import (
    BalancerOptions,
    GradientBalancer,
    GradientBalancerOptions,
)
from medmtl.balancing.gradient.functional import db_mtl_weights


class DBMTLOptions(GradientBalancerOptions):
    """Options of ``db_mtl``."""

    beta: float = Field(0.9, ge=0, lt=1, description="EMA factor of the log-loss gradients")
    beta_sigma: float = Field(0.5, ge=0, description="the EMA factor decays as beta / step^beta_sigma")
    eps: float = Field(1e-8, gt=0, description="added to the losses and the gradient norms")


class DBMTL(GradientBalancer):
    """Log-losses, and every task's (EMA) log-loss gradient scaled to the largest norm; see
    :func:`~medmtl.balancing.gradient.functional.db_mtl_weights` (the EMA sets the magnitudes,
    the current gradients the directions).

    The EMA of the gradients is the buffer ``grad_ema [len(task_names), D]`` (lazily sized; rows of
    absent tasks are left alone; reset when D changes, e.g. representation gradients of another
    batch size) and ``step`` counts the solves.
    """

    Options = DBMTLOptions

    def __init__(self, task_names: list[str], options: BalancerOptions | None = None) -> None:
        super().__init__(task_names, options)
        self.register_buffer("step", torch.zeros((), dtype=torch.long))
        self.register_buffer("grad_ema", torch.zeros(len(self.task_names), 0))
        self.register_buffer("seen", torch.zeros(len(self.task_names), dtype=torch.bool))

    def task_weights(self, grads: Tensor, losses: list[Tensor]) -> Tensor:
        o = self.options
        present = self.present or list(range(grads.shape[0]))
        if self.grad_ema.shape[1] != grads.shape[1]:
            self.grad_ema = torch.zeros(len(self.task_names), grads.shape[1], dtype=grads.dtype, device=grads.device)
            self.seen.zero_()
        self.step += 1
        ema = self.grad_ema[present].to(grads)
        weights, new_ema = db_mtl_weights(grads, losses, ema=ema, beta=o.beta, beta_sigma=o.beta_sigma,
                                          step=int(self.step), eps=o.eps)
        with torch.no_grad():
            self.grad_ema[present] = new_ema.detach().to(self.grad_ema)
            self.seen[present] = True
        return weights
