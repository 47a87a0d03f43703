"""How per-task losses become the one scalar that is back-propagated.

Two kinds of balancers share one interface (:class:`LossBalancer`):

* loss-level ones (fixed, uncertainty, equal, DWA, RLW) weight the losses and ignore ``grads``;
* gradient-level ones (:class:`GradientBalancer`) set ``gradients`` to ``"shared"`` or
  ``"representation"``: the training step then computes one gradient per task present in the batch
  (w.r.t. the encoder's parameters, or its output feature maps), stacks them to ``grads [T, D]`` and
  passes them to ``forward``. Every implemented method combines the task gradients linearly, so the
  balancer returns ``Σ wᵢ·Lᵢ`` with detached weights: back-propagating it gives the shared parameters
  exactly ``Σ wᵢ·gᵢ`` and each task head ``wᵢ·∇Lᵢ``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

GradientLevel = Literal["shared", "representation"]


class BalancerOptions(BaseModel):
    """Base of the balancers' options models (``loss.options``); unknown keys are errors.

    Each balancer declares its subclass (the only place of its option defaults) in its own module;
    a balancer without options uses this class as is.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)


class GradientBalancerOptions(BalancerOptions):
    """Options every gradient-level balancer has."""

    level: GradientLevel = Field("representation", description="per-task gradients w.r.t. the encoder's "
                                 "parameters ('shared') or its output feature maps ('representation', cheaper)")


class LossBalancer(nn.Module, ABC):
    """``forward({task: scalar loss}, grads=None) -> scalar`` to back-propagate.

    Only tasks labelled in the current batch appear in the dict; a balancer must not add
    anything for the absent ones (nor change their state). Balancers may own parameters (they are
    optimised with the model) and buffers (saved in checkpoints), and report the weights they
    currently apply through :meth:`current_weights`.
    """

    #: which per-task gradients ``forward`` needs: None (loss-level), the encoder's parameters
    #: (``"shared"``) or its output feature maps (``"representation"``)
    gradients: ClassVar[Literal[None, "shared", "representation"]] = None
    #: the options model of ``loss.options``
    Options: ClassVar[type[BalancerOptions]] = BalancerOptions
    #: whether ``loss.weights`` (fixed per-task weights, 0 switches a task off) apply
    uses_weights: ClassVar[bool] = False
    #: buffers holding this rank's own partial values under DDP, which the balancer reduces itself
    #: (DWA's epoch sums): the training module keeps DDP from overwriting them with rank 0's before
    #: every forward (DDP's ``broadcast_buffers``), which it does to all other buffers
    local_buffers: ClassVar[tuple[str, ...]] = ()
    #: whether ``forward`` runs a collective under DDP in training (FAMO all-reduces the loss values):
    #: then the training step calls it on every rank at every step, with ``{}`` on a rank where no
    #: task is labelled (it must return a zero then)
    collective: ClassVar[bool] = False

    def __init__(self, task_names: list[str], options: BalancerOptions | None = None) -> None:
        super().__init__()
        self.task_names = list(task_names)
        self.options = options if options is not None else self.Options()

    @abstractmethod
    def forward(self, losses: dict[str, torch.Tensor], grads: torch.Tensor | None = None) -> torch.Tensor: ...

    @abstractmethod
    def current_weights(self) -> dict[str, float]: ...

    def active_tasks(self) -> list[str]:
        """The tasks whose loss can contribute (training runs only their heads); all by default."""
        return list(self.task_names)

    def on_epoch_end(self) -> None:
        """Called by the trainer after the last training batch of every epoch (before validation
        and the epoch's checkpoint); nothing by default."""


def weighted_sum(weights: dict[str, torch.Tensor | float], losses: dict[str, torch.Tensor]) -> torch.Tensor:
    """``Σ wᵢ·Lᵢ`` over the tasks in ``losses``."""
    return torch.stack([weights[name] * loss for name, loss in losses.items()]).sum()


class GradientBalancer(LossBalancer):
    """Base of gradient-level balancers: subclasses implement :meth:`task_weights` only.

    ``forward(losses, grads [T, D])`` computes ``w = task_weights(grads, list(losses.values()))``
    (detached) for the T tasks present (rows of ``grads`` in the order of ``losses``' keys) and
    returns ``Σ wᵢ·Lᵢ``. With one task present it returns that loss (weight 1). Without ``grads``
    (validation) it applies the last weights. The last weights are the buffer ``last_weights``
    (one per task, in ``task_names`` order; in checkpoints); absent tasks keep their value.
    """

    gradients: ClassVar[Literal[None, "shared", "representation"]] = "representation"
    Options: ClassVar[type[BalancerOptions]] = GradientBalancerOptions

    def __init__(self, task_names: list[str], options: BalancerOptions | None = None) -> None:
        super().__init__(task_names, options)
        self.gradients = getattr(self.options, "level", type(self).gradients)  # per instance
        self.register_buffer("last_weights", torch.ones(len(self.task_names)))
        #: indices (in ``task_names``) of the tasks of the current step, in the order of the rows of
        #: ``grads``; set before :meth:`task_weights` runs (methods with per-task state use it)
        self.present: list[int] = []

    @abstractmethod
    def task_weights(self, grads: torch.Tensor, losses: list[torch.Tensor]) -> torch.Tensor:
        """Weights ``[T]`` of the T present tasks from their gradients ``[T, D]`` and losses."""

    def forward(self, losses: dict[str, torch.Tensor], grads: torch.Tensor | None = None) -> torch.Tensor:
        names = list(losses)
        index = [self.task_names.index(name) for name in names]
        self.present = index
        if len(names) == 1:
            with torch.no_grad():
                self.last_weights[index[0]] = 1.0
            return losses[names[0]]
        if grads is None:  # evaluation: the weights of the last training step
            weights = self.last_weights[index].detach()
        else:
            if grads.dim() != 2 or grads.shape[0] != len(names):
                raise ValueError(f"grads must be [T={len(names)}, D]; got {tuple(grads.shape)}")
            weights = self.task_weights(grads, [losses[n] for n in names]).detach().flatten()
            if weights.shape != (len(names),):
                raise ValueError(f"{type(self).__name__}.task_weights returned shape {tuple(weights.shape)}; "
                                 f"expected ({len(names)},)")
            with torch.no_grad():
                self.last_weights[index] = weights.to(self.last_weights)
        reference = losses[names[0]]
        weights = weights.to(device=reference.device, dtype=reference.dtype)
        return weighted_sum(dict(zip(names, weights)), losses)

    def current_weights(self) -> dict[str, float]:
        return {name: float(w) for name, w in zip(self.task_names, self.last_weights.tolist())}

    def weights_of(self, names: list[str]) -> torch.Tensor:
        """The last weights ``[len(names)]`` of these tasks (what :meth:`forward` just applied)."""
        return self.last_weights[[self.task_names.index(name) for name in names]].detach()
