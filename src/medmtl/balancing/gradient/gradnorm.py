"""GradNorm: Chen, Badrinarayanan, Lee & Rabinovich, "GradNorm: Gradient Normalization for Adaptive
Loss Balancing in Deep Multitask Networks", ICML 2018 (Sec. 3, Eq. 1–2, Algorithm 1).

Learnable task weights wᵢ pull the weighted gradient norms toward a common scale set by each
task's relative inverse training rate:

    Gᵢ = ‖∇_W wᵢLᵢ‖ = wᵢ·‖gᵢ‖,  Ḡ = meanᵢ Gᵢ,  L̃ᵢ = Lᵢ(t)/Lᵢ(0),  rᵢ = L̃ᵢ / meanⱼ L̃ⱼ,
    L_grad = Σᵢ |Gᵢ − const(Ḡ·rᵢ^α)|                                              (Eq. 2)

with α the restoring force; after each step the weights are renormalised to Σ wᵢ = T. The paper
takes W = the last shared layer; here the per-task gradients ``gᵢ`` are those of the training step:
the encoder's output feature maps (``level: representation``, the default — the output of the
shared network, the closest analogue) or its parameters (``level: shared``).
"""

from __future__ import annotations

import torch
from pydantic import Field
from torch import Tensor

from medmtl.balancing.base import (
    BalancerOptions,
    GradientBalancer,
    GradientBalancerOptions,
)
from medmtl.balancing.famo import adam_step
from medmtl.balancing.gradient._common import as_losses, out, row_norms

MIN_WEIGHT = 1e-6  # weights are clamped to stay positive before the renormalisation
#: |Gᵢ − target| below this fraction of Ḡ counts as 0: round-off must not flip the sign of an L1
#: gradient (Adam would turn it into a full step)
RELATIVE_TOLERANCE = 1e-9


class GradNormOptions(GradientBalancerOptions):
    """Options of ``gradnorm``."""

    alpha: float = Field(1.5, ge=0, allow_inf_nan=False, description="α, the restoring force toward equal "
                         "training rates (paper: 1.5 on NYUv2, 0.12 on its toy problem; 0: equal weighted norms)")
    lr: float = Field(0.025, gt=0, allow_inf_nan=False, description="Adam's learning rate of the weights w")


class GradNorm(GradientBalancer):
    """GradNorm with the weights updated analytically, outside the model's optimiser.

    Gᵢ is linear in wᵢ (‖gᵢ‖ is a constant of the step), so ``∂L_grad/∂wᵢ = sign(Gᵢ − Ḡ·rᵢ^α)·‖gᵢ‖``.
    Each training step (Algorithm 1) applies the current weights w(t) to the losses — the weights
    returned are the pre-update ones — then takes one Adam step (β₁ = 0.9, β₂ = 0.999, ε = 1e-8:
    invariant to the scale of ‖gᵢ‖, which varies by orders of magnitude with the level and the
    loss reductions) of learning rate ``lr`` on w, clamps w ≥ ``MIN_WEIGHT`` and renormalises.
    Lᵢ(0) is the first loss seen of each task (a task first labelled later gets its own then).

    Partial labels: only the tasks present take part (Ḡ and the mean of L̃ over them); their updated
    weights are rescaled to keep their previous sum, so absent tasks keep their weight and all T
    weights keep Σ wᵢ = T (with every task present: exactly the paper's renormalisation). Absent
    tasks' Lᵢ(0) and Adam moments are untouched too. Under DDP the gradients and loss values are
    identical on every rank, so is the update.

    State (buffers ``[T]`` in ``task_names`` order, in checkpoints; not parameters, so the model's
    optimiser never touches w): ``next_weights`` w(t+1), ``initial_losses`` Lᵢ(0) (NaN until seen),
    Adam's ``adam_avg``, ``adam_avg_sq``, ``adam_steps``; ``last_weights`` (the base class) holds the
    weights applied at the last step.
    """

    Options = GradNormOptions

    def __init__(self, task_names: list[str], options: BalancerOptions | None = None) -> None:
        super().__init__(task_names, options)
        n = len(self.task_names)
        self.register_buffer("next_weights", torch.ones(n, dtype=torch.float64))
        self.register_buffer("initial_losses", torch.full((n,), float("nan"), dtype=torch.float64))
        self.register_buffer("adam_avg", torch.zeros(n, dtype=torch.float64))
        self.register_buffer("adam_avg_sq", torch.zeros(n, dtype=torch.float64))
        self.register_buffer("adam_steps", torch.zeros(n, dtype=torch.long))

    def task_weights(self, grads: Tensor, losses: list[Tensor]) -> Tensor:
        o = self.options
        present = self.present or list(range(grads.shape[0]))
        norms = torch.as_tensor(row_norms(grads))
        values = torch.as_tensor(as_losses(losses, len(present), needed_by="gradnorm"))
        with torch.no_grad():
            initial = self.initial_losses[present].cpu()
            unseen = torch.isnan(initial)
            initial[unseen] = values[unseen]
            self.initial_losses[present] = initial.to(self.initial_losses)
            weights = self.next_weights[present].cpu()
            grad = gradnorm_grad(weights, norms, values / initial.clamp_min(1e-12), o.alpha)
            new, avg, avg_sq, steps = adam_step(weights, grad, self.adam_avg[present].cpu(),
                                                self.adam_avg_sq[present].cpu(), self.adam_steps[present].cpu(),
                                                lr=o.lr)
            new = new.clamp_min(MIN_WEIGHT)
            new = new * (weights.sum() / new.sum())
            for buffer, value in zip((self.next_weights, self.adam_avg, self.adam_avg_sq, self.adam_steps),
                                     (new, avg, avg_sq, steps)):
                buffer[present] = value.to(buffer)
        return out(weights, grads)


def gradnorm_grad(weights: Tensor, norms: Tensor, loss_ratios: Tensor, alpha: float) -> Tensor:
    """``∂L_grad/∂w`` (Eq. 2) ``[T]`` from the weights, the gradient norms ‖gᵢ‖ and ``L̃ᵢ = Lᵢ(t)/Lᵢ(0)``
    (all ``[T]``): ``sign(Gᵢ − Ḡ·rᵢ^α)·‖gᵢ‖`` with ``Gᵢ = wᵢ‖gᵢ‖`` and the target held constant
    (a gap within ``RELATIVE_TOLERANCE·Ḡ`` has sign 0)."""
    g = weights * norms
    rates = loss_ratios / loss_ratios.mean()
    target = g.mean() * rates**alpha
    gap = g - target
    gap[gap.abs() <= RELATIVE_TOLERANCE * g.mean()] = 0.0
    return torch.sign(gap) * norms

