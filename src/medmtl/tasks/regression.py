"""Regression of one or several continuous targets per image."""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F

from medmtl.encoders.base import FeatureInfo
from medmtl.errors import ConfigError
from medmtl.metrics import regression_metrics
from medmtl.tasks.base import Outputs, Task
from medmtl.tasks.heads import PooledHead

_LOSSES = {"mse": F.mse_loss, "l1": F.l1_loss, "huber": F.smooth_l1_loss}


class RegressionTask(Task):
    """Predicts ``num_outputs`` numbers per image. Target ``[B]`` or ``[B, num_outputs]``.

    Metrics (MAE, Spearman) are reported for the first output.
    """

    kind = "regression"
    monitor = ("mae", "min")

    def __init__(self, name: str = "regression", target_key: str = "value", num_outputs: int = 1,
                 loss: Literal["mse", "l1", "huber"] = "mse", levels: Literal["last", "all"] = "last",
                 hidden: int = 0, dropout: float = 0.0, consumes: tuple[str, ...] = ()) -> None:
        super().__init__(name, target_key, consumes)
        if loss not in _LOSSES:
            raise ConfigError(f"tasks.{name}.loss", f"'{loss}' is not one of {sorted(_LOSSES)}")
        self.num_outputs = num_outputs
        self.loss_fn = _LOSSES[loss]
        self.levels, self.hidden, self.dropout = levels, hidden, dropout

    def build_head(self, feature_info: list[FeatureInfo], image_channels: int) -> None:
        self.head = PooledHead(feature_info, self.num_outputs, self.levels, self.hidden, self.dropout)

    def forward(self, features: list[torch.Tensor], image: torch.Tensor, context: Outputs) -> torch.Tensor:
        return self.head(features)

    def compute_loss(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return self.loss_fn(prediction, target.float().reshape(prediction.shape))

    def summarize(self, prediction: torch.Tensor, target: torch.Tensor) -> dict[str, np.ndarray]:
        pred = prediction.detach().float().reshape(len(prediction), -1)[:, 0]
        true = target.detach().float().reshape(len(target), -1)[:, 0]
        return {"target": true.cpu().numpy(), "prediction": pred.cpu().numpy()}

    def compute_metrics(self, summary: dict[str, np.ndarray], n_resamples: int = 1000, seed: int = 0) -> dict[str, Any]:
        return regression_metrics(summary["target"], summary["prediction"], n_resamples=n_resamples, seed=seed)
