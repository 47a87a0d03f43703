"""Image classification: binary or multi-class, softmax cross-entropy or binary cross-entropy."""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F

from medmtl.encoders.base import FeatureInfo
from medmtl.errors import ConfigError
from medmtl.metrics import classification_metrics
from medmtl.tasks.base import Outputs, Task
from medmtl.tasks.heads import PooledHead


class ClassificationTask(Task):
    """Predicts one class per image from the pooled encoder features.

    ``loss="ce"``: ``num_classes`` logits with softmax cross-entropy. ``loss="bce"`` (binary
    only): one logit with binary cross-entropy. Targets: LongTensor ``[B]`` of class indices.
    Prediction: logits ``[B, num_classes]`` or ``[B, 1]``.
    """

    kind = "classification"
    monitor = ("auc", "max")

    def __init__(self, name: str = "classification", num_classes: int = 2, target_key: str = "label",
                 loss: Literal["ce", "bce"] = "ce", class_weights: list[float] | None = None,
                 levels: Literal["last", "all"] = "last", hidden: int = 0, dropout: float = 0.0,
                 label_smoothing: float = 0.0, consumes: tuple[str, ...] = ()) -> None:
        super().__init__(name, target_key, consumes)
        if num_classes < 2:
            raise ConfigError(f"tasks.{name}.num_classes", f"must be at least 2, got {num_classes}")
        if loss not in ("ce", "bce"):
            raise ConfigError(f"tasks.{name}.loss", f"'{loss}' is not one of ['ce', 'bce']")
        if loss == "bce" and num_classes != 2:
            raise ConfigError(f"tasks.{name}.loss", "'bce' needs num_classes == 2; use 'ce' for more classes")
        if class_weights is not None and len(class_weights) != num_classes:
            raise ConfigError(f"tasks.{name}.class_weights",
                              f"has {len(class_weights)} values for {num_classes} classes")
        self.num_classes = num_classes
        self.loss_kind = loss
        self.levels, self.hidden, self.dropout = levels, hidden, dropout
        self.label_smoothing = label_smoothing
        weights = torch.tensor(class_weights, dtype=torch.float32) if class_weights else None
        self.register_buffer("class_weights", weights, persistent=False)

    def build_head(self, feature_info: list[FeatureInfo], image_channels: int) -> None:
        outputs = 1 if self.loss_kind == "bce" else self.num_classes
        self.head = PooledHead(feature_info, outputs, self.levels, self.hidden, self.dropout)

    def forward(self, features: list[torch.Tensor], image: torch.Tensor, context: Outputs) -> torch.Tensor:
        return self.head(features)

    def compute_loss(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        target = target.long()
        if self.loss_kind == "bce":
            pos_weight = None
            if self.class_weights is not None:
                pos_weight = self.class_weights[1] / self.class_weights[0]
            return F.binary_cross_entropy_with_logits(prediction[:, 0], target.float(), pos_weight=pos_weight)
        return F.cross_entropy(prediction, target, weight=self.class_weights, label_smoothing=self.label_smoothing)

    def postprocess(self, prediction: torch.Tensor) -> torch.Tensor:
        """Class probabilities ``[B, num_classes]``."""
        if self.loss_kind == "bce":
            p = torch.sigmoid(prediction[:, 0])
            return torch.stack([1 - p, p], dim=1)
        return prediction.softmax(dim=1)

    def summarize(self, prediction: torch.Tensor, target: torch.Tensor) -> dict[str, np.ndarray]:
        probs = self.postprocess(prediction.detach().float()).cpu().numpy()
        return {"labels": target.detach().long().cpu().numpy(), "probs": probs}

    def compute_metrics(self, summary: dict[str, np.ndarray], n_resamples: int = 1000, seed: int = 0) -> dict[str, Any]:
        return classification_metrics(summary["labels"], summary["probs"], n_resamples=n_resamples, seed=seed)
