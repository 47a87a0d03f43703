"""Regression of one or several continuous targets per image."""

from __future__ import annotations

from typing import Any, Literal

import torch
import torch.nn.functional as F
from pydantic import Field

from medmtl.encoders.base import FeatureInfo
from medmtl.metrics import regression_metrics
from medmtl.tasks.base import Batch, Outputs, Summary, Task
from medmtl.tasks.heads import PooledHead, PooledHeadOptions

_LOSSES = {"mse": F.mse_loss, "l1": F.l1_loss, "huber": F.smooth_l1_loss}


class RegressionOptions(PooledHeadOptions):
    kind: Literal["regression"] = "regression"
    target: str = "value"
    num_outputs: int = Field(1, ge=1)
    loss: Literal["mse", "l1", "huber"] = "mse"


class RegressionTask(Task[torch.Tensor, torch.Tensor]):
    """Predicts ``num_outputs`` numbers per image ``[B, num_outputs]``. Target ``[B]`` or ``[B, num_outputs]``.

    Metrics (MAE, Spearman) are reported for the first output.
    """

    kind = "regression"
    Options = RegressionOptions
    monitor = ("mae", "min")
    summary_metrics = ("mae", "spearman")
    lower_is_better = frozenset({"loss", "mae"})
    metric_names = ("mae", "spearman")
    options: RegressionOptions

    def __init__(self, name: str | None = None, options: RegressionOptions | None = None, **values: Any) -> None:
        super().__init__(name, options, **values)
        self.loss_fn = _LOSSES[self.options.loss]

    def build_head(self, feature_info: list[FeatureInfo], image_channels: int) -> None:
        self.head = PooledHead.for_task(self, feature_info, self.options.num_outputs)

    def forward(self, features: list[torch.Tensor], image: torch.Tensor, context: Outputs,
                batch: Batch | None = None) -> torch.Tensor:
        return self.head(features)

    def compute_loss(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return self.loss_fn(prediction, target.float().reshape(prediction.shape))

    def merge_outputs(self, outputs: list[torch.Tensor]) -> torch.Tensor:
        """Merged outputs (TTA copies, ensemble members): the mean of the predicted values ``[B, num_outputs]``."""
        return torch.stack(outputs).mean(dim=0)

    def explained_columns(self, prediction: torch.Tensor) -> list[tuple[int, str]]:
        return [(i, "predicted value") for i in range(prediction.shape[1])]

    def summarize(self, prediction: torch.Tensor, target: torch.Tensor) -> Summary:
        pred = prediction.detach().float().reshape(len(prediction), -1)[:, 0]
        true = target.detach().float().reshape(len(target), -1)[:, 0]
        return {"target": true.cpu().numpy(), "prediction": pred.cpu().numpy()}

    def compute_metrics(self, summary: Summary, n_resamples: int = 1000, seed: int = 0) -> dict[str, Any]:
        return regression_metrics(summary["target"], summary["prediction"], n_resamples=n_resamples, seed=seed)
