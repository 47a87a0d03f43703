"""Survival: a risk score per image trained with the Cox partial likelihood."""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import torch

from medmtl.encoders.base import FeatureInfo
from medmtl.losses.cox import cox_partial_likelihood_loss
from medmtl.metrics import survival_metrics
from medmtl.tasks.base import Outputs, Task
from medmtl.tasks.heads import PooledHead


class SurvivalTask(Task):
    """Predicts a log-risk ``[B, 1]`` (higher = shorter survival).

    Target ``[B, 2]`` = (time > 0, event ∈ {0, 1}). The Cox loss compares samples within a
    batch, so larger batches give a better estimate; a batch without events gives zero loss.
    """

    kind = "survival"
    monitor = ("c_index", "max")

    def __init__(self, name: str = "survival", target_key: str = "survival",
                 ties: Literal["breslow", "efron"] = "efron", levels: Literal["last", "all"] = "last",
                 hidden: int = 0, dropout: float = 0.0, consumes: tuple[str, ...] = ()) -> None:
        super().__init__(name, target_key, consumes)
        self.ties = ties
        self.levels, self.hidden, self.dropout = levels, hidden, dropout

    def build_head(self, feature_info: list[FeatureInfo], image_channels: int) -> None:
        self.head = PooledHead(feature_info, 1, self.levels, self.hidden, self.dropout)

    def forward(self, features: list[torch.Tensor], image: torch.Tensor, context: Outputs) -> torch.Tensor:
        return self.head(features)

    def compute_loss(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return cox_partial_likelihood_loss(prediction[:, 0], target[:, 0], target[:, 1], ties=self.ties)

    def summarize(self, prediction: torch.Tensor, target: torch.Tensor) -> dict[str, np.ndarray]:
        target = target.detach().float().cpu().numpy()
        return {"time": target[:, 0], "event": target[:, 1],
                "risk": prediction.detach().float()[:, 0].cpu().numpy()}

    def compute_metrics(self, summary: dict[str, np.ndarray], n_resamples: int = 1000, seed: int = 0) -> dict[str, Any]:
        return survival_metrics(summary["time"], summary["event"], summary["risk"], n_resamples=n_resamples, seed=seed)
