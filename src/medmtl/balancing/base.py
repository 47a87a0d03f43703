"""How per-task losses become the one scalar that is back-propagated."""

from __future__ import annotations

from abc import ABC, abstractmethod

import torch
from torch import nn


class LossBalancer(nn.Module, ABC):
    """``forward({task: scalar loss}) -> scalar``.

    Only tasks labelled in the current batch appear in the dict; a balancer must not add
    anything for the absent ones. Balancers may own parameters (they are optimised with the
    model) and report the weights they currently apply through :meth:`current_weights`.
    """

    def __init__(self, task_names: list[str]) -> None:
        super().__init__()
        self.task_names = list(task_names)

    @abstractmethod
    def forward(self, losses: dict[str, torch.Tensor]) -> torch.Tensor: ...

    @abstractmethod
    def current_weights(self) -> dict[str, float]: ...

    def active_tasks(self) -> list[str]:
        """The tasks whose loss can contribute (training runs only their heads); all by default."""
        return list(self.task_names)
