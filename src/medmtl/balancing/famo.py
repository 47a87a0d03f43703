"""FAMO: Liu, Liang, Liu, Stone & Liu, "FAMO: Fast Adaptive Multitask Optimization", NeurIPS 2023.

FAMO balances the rates at which the tasks' log-losses decrease, at O(1) cost per step (no
per-task gradients). With logits ξ ∈ R^T, z = softmax(ξ) and Dᵢ = Lᵢ − Lᵢ* + ε, a step descends

    Σᵢ zᵢ·log Dᵢ / c,   c = Σᵢ zᵢ / Dᵢ  (detached),

whose gradient is Σᵢ wᵢ·∇Lᵢ with wᵢ = zᵢ / (c·Dᵢ) (Σ wᵢ = 1). After the step the logits follow the
observed decrease of the log-losses, δᵢ = log Dᵢ(before) − log Dᵢ(after):

    ξ ← ξ − β·(J_zᵀ δ + γ·ξ),   J_z = diag(z) − z zᵀ the Jacobian of softmax(ξ),

so a task whose loss falls more slowly than the others gains weight (the paper's ξ update, Sec. 3;
β the learning rate, γ the weight decay). As in the authors' code (``famo.py``, ``FAMO.update``), the
step ``β·(…)`` is taken by Adam (β₁ = 0.9, β₂ = 0.999, ε = 1e-8) with γ as Adam's L2 weight decay.
"""

from __future__ import annotations

import math

import torch
import torch.distributed as dist
from pydantic import Field

from medmtl.balancing.base import BalancerOptions, LossBalancer, weighted_sum

ADAM_BETAS = (0.9, 0.999)
ADAM_EPS = 1e-8


class FAMOOptions(BalancerOptions):
    """Options of ``famo`` (defaults: the authors' ``w_lr = 0.025`` and ``gamma = 0.001``)."""

    lr: float = Field(0.025, gt=0, allow_inf_nan=False, description="β: Adam's learning rate of the logits ξ")
    weight_decay: float = Field(0.001, ge=0, allow_inf_nan=False, description="γ: the logits' L2 weight decay")
    min_losses: float = Field(0.0, ge=0, allow_inf_nan=False,
                              description="Lᵢ*: a lower bound of every task loss (losses below it count as it)")
    eps: float = Field(1e-8, gt=0, allow_inf_nan=False, description="ε added to Lᵢ − Lᵢ* before the log")


class FAMO(LossBalancer):
    """FAMO with the logits updated at the next training step (no extra forward pass).

    Approximation: the authors re-evaluate the same batch after the optimiser step to get
    ``L(after)``; here ``L(after)`` is the loss of the next training step (a new batch). So each
    training call (1) updates ξ from the previous call's losses and these ones, (2) stores these as
    the previous losses, (3) weights them with the updated z. It returns ``Σ wᵢ·Lᵢ`` with the detached
    ``wᵢ = zᵢ/(c·Dᵢ)`` — the gradient of the authors' objective, with a loss value that stays
    meaningful to log.

    Partial labels: z is the softmax over the present tasks; δ exists only for tasks present now
    that have a previous loss, and the update (softmax, Jacobian, Adam) runs over those tasks only
    (with fewer than two, ξ is left alone: the softmax of one logit is constant). Absent tasks keep
    their ξ, previous loss, Adam moments and last weight. Under DDP the losses used are the means
    over the ranks where each task is present (one ``all_reduce`` per training call: every rank must
    call ``forward`` at every training step, with an empty dict if it has no loss), so every rank
    holds the same ξ and applies the same weights. Evaluation applies the last training weights and
    changes nothing.

    State (buffers ``[T]``, in ``task_names`` order, in checkpoints): ``logits`` ξ, ``prev_losses``
    (NaN until seen), Adam's ``adam_avg``, ``adam_avg_sq`` and per-task ``adam_steps``, and
    ``last_weights`` (what :meth:`current_weights` reports; 1/T before the first step).
    """

    Options = FAMOOptions
    collective = True  # forward all-reduces the loss values under DDP

    def __init__(self, task_names: list[str], options: FAMOOptions | None = None) -> None:
        super().__init__(task_names, options)
        n = len(self.task_names)
        self.register_buffer("logits", torch.zeros(n, dtype=torch.float64))
        self.register_buffer("prev_losses", torch.full((n,), float("nan"), dtype=torch.float64))
        self.register_buffer("adam_avg", torch.zeros(n, dtype=torch.float64))
        self.register_buffer("adam_avg_sq", torch.zeros(n, dtype=torch.float64))
        self.register_buffer("adam_steps", torch.zeros(n, dtype=torch.long))
        self.register_buffer("last_weights", torch.full((n,), 1.0 / max(1, n), dtype=torch.float64))

    def forward(self, losses: dict[str, torch.Tensor], grads: torch.Tensor | None = None) -> torch.Tensor:
        if self.training:
            present, values = self._global_losses(losses)
            if present:
                with torch.no_grad():
                    self._update_logits(present, values)
                    now = values[present]
                    finite = [i for i in present if math.isfinite(float(values[i]))]  # never a NaN reference
                    self.prev_losses[finite] = values[finite].to(self.prev_losses)
                    weights = famo_weights(self.logits[present].cpu(), now, self.options.min_losses,
                                           self.options.eps)
                    self.last_weights[present] = weights.to(self.last_weights)
        if not losses:
            return self.last_weights.new_zeros(())
        reference = next(iter(losses.values()))
        return weighted_sum({n: self.last_weights[self.task_names.index(n)].to(reference) for n in losses}, losses)

    def _global_losses(self, losses: dict[str, torch.Tensor]) -> tuple[list[int], torch.Tensor]:
        """Indices of the tasks present (on any rank) and the loss values ``[T]`` (float64, CPU): this
        rank's, or under DDP the mean over the ranks where each task is present (NaN where absent)."""
        stats = torch.zeros(2, len(self.task_names), dtype=torch.float64)
        for name, loss in losses.items():
            i = self.task_names.index(name)
            stats[0, i] = 1.0
            stats[1, i] = float(loss.detach())
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            both = stats.to(_collective_device())
            dist.all_reduce(both)
            stats = both.cpu()
        present = [i for i in range(len(self.task_names)) if stats[0, i] > 0]
        values = torch.where(stats[0] > 0, stats[1] / stats[0].clamp_min(1.0), torch.tensor(float("nan")))
        return present, values.to(torch.float64)

    def _update_logits(self, present: list[int], values: torch.Tensor) -> None:
        """One Adam step of ξ on the tasks present now with a previous loss (both finite)."""
        prev = self.prev_losses.cpu()
        have = [i for i in present if math.isfinite(float(prev[i])) and math.isfinite(float(values[i]))]
        if len(have) < 2:
            return
        o = self.options
        delta = log_gap(prev[have], o.min_losses, o.eps) - log_gap(values[have], o.min_losses, o.eps)
        grad = softmax_vjp(self.logits[have].cpu(), delta)
        new = adam_step(self.logits[have].cpu(), grad, self.adam_avg[have].cpu(), self.adam_avg_sq[have].cpu(),
                        self.adam_steps[have].cpu(), lr=o.lr, weight_decay=o.weight_decay)
        for buffer, value in zip((self.logits, self.adam_avg, self.adam_avg_sq, self.adam_steps), new):
            buffer[have] = value.to(buffer)

    def current_weights(self) -> dict[str, float]:
        return dict(zip(self.task_names, self.last_weights.tolist()))

    def probabilities(self) -> dict[str, float]:
        """z = softmax(ξ) over all tasks (the weights of the log-losses)."""
        return dict(zip(self.task_names, torch.softmax(self.logits, dim=0).tolist()))


def log_gap(losses: torch.Tensor, min_losses: float, eps: float) -> torch.Tensor:
    """``log(max(L − L*, 0) + ε)`` elementwise."""
    return ((losses - min_losses).clamp_min(0.0) + eps).log()


def famo_weights(logits: torch.Tensor, losses: torch.Tensor, min_losses: float, eps: float) -> torch.Tensor:
    """``wᵢ = zᵢ / (c·Dᵢ)``, ``z = softmax(logits)``, ``Dᵢ = max(Lᵢ − L*, 0) + ε``, ``c = Σ zᵢ/Dᵢ``: the
    weights ``[T]`` (Σ = 1) under which ``Σ wᵢ·∇Lᵢ`` is the gradient of ``Σ zᵢ·log Dᵢ / c``."""
    ratio = torch.softmax(logits.to(torch.float64), dim=0) / ((losses - min_losses).clamp_min(0.0) + eps)
    return ratio / ratio.sum()


def softmax_vjp(logits: torch.Tensor, vector: torch.Tensor) -> torch.Tensor:
    """``J_zᵀ v = z ⊙ (v − zᵀv)`` for ``z = softmax(logits)`` (``J_z = diag(z) − z zᵀ``); shapes ``[T]``."""
    z = torch.softmax(logits, dim=0)
    return z * (vector - (z * vector).sum())


def adam_step(param: torch.Tensor, grad: torch.Tensor, avg: torch.Tensor, avg_sq: torch.Tensor,
              steps: torch.Tensor, lr: float, weight_decay: float = 0.0
              ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """One step of ``torch.optim.Adam`` (L2 ``weight_decay`` added to the gradient, bias correction,
    ``ADAM_BETAS``, ``ADAM_EPS``), elementwise with a step count per element so that a subset of
    the elements can be updated alone. Returns the new ``(param, avg, avg_sq, steps)``."""
    beta1, beta2 = ADAM_BETAS
    grad = grad + weight_decay * param
    avg = beta1 * avg + (1 - beta1) * grad
    avg_sq = beta2 * avg_sq + (1 - beta2) * grad * grad
    steps = steps + 1
    bias1 = 1 - beta1 ** steps.to(param.dtype)
    bias2 = 1 - beta2 ** steps.to(param.dtype)
    param = param - (lr / bias1) * avg / (avg_sq.sqrt() / bias2.sqrt() + ADAM_EPS)
    return param, avg, avg_sq, steps


def _collective_device() -> torch.device:
    """The device collectives run on (NCCL needs CUDA tensors, gloo the CPU)."""
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")
