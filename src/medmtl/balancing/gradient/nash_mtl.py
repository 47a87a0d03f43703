"""Nash-MTL (Navon et al., "Multi-Task Learning as a Bargaining Game", ICML 2022)."""

from __future__ import annotations

import torch
from pydantic import Field
from torch import Tensor

from medmtl.balancing.base import (
    BalancerOptions,
    GradientBalancer,
    GradientBalancerOptions,
)
from medmtl.balancing.gradient.functional import nash_mtl_weights


class NashMTLOptions(GradientBalancerOptions):
    """Options of ``nash_mtl``."""

    max_norm: float = Field(0.0, ge=0, description="scale the combined gradient down to this norm (0: off)")
    update_weights_every: int = Field(1, ge=1, description="solve for α every this many steps, reuse it between")
    optim_niter: int = Field(20, ge=1, description="Newton steps at most per solve")


class NashMTL(GradientBalancer):
    """The Nash bargaining solution α (G Gᵀ α = 1/α); see
    :func:`~medmtl.balancing.gradient.functional.nash_mtl_weights`.

    α is re-solved every ``update_weights_every`` steps (warm-started from the last α of the same
    task set) and reused in between, as in the authors' code; the step counter and the last α are
    buffers (in checkpoints). A different set of present tasks forces a new solve.
    """

    Options = NashMTLOptions

    def __init__(self, task_names: list[str], options: BalancerOptions | None = None) -> None:
        super().__init__(task_names, options)
        self.register_buffer("step", torch.zeros((), dtype=torch.long))
        self.register_buffer("alpha", torch.zeros(len(self.task_names)))  # 0: never solved
        self._last_present: list[int] | None = None

    def task_weights(self, grads: Tensor, losses: list[Tensor]) -> Tensor:
        o = self.options
        present = self.present or list(range(grads.shape[0]))
        previous = self.alpha[present]
        reuse = (int(self.step) % o.update_weights_every != 0 and present == self._last_present
                 and bool((previous > 0).all()))
        if reuse:
            alpha = previous.to(grads)
        else:
            init = previous if bool((previous > 0).all()) else None
            alpha = nash_mtl_weights(grads, max_norm=o.max_norm, optim_niter=o.optim_niter, init=init)
            with torch.no_grad():
                self.alpha[present] = alpha.detach().to(self.alpha)
        self._last_present = list(present)
        self.step += 1
        return alpha
