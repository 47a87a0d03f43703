"""Semantic segmentation with a U-Net decoder over the encoder's skips."""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import torch
from monai.losses import DiceCELoss, DiceLoss, GeneralizedDiceLoss

from medmtl.encoders.base import FeatureInfo
from medmtl.errors import ConfigError
from medmtl.metrics import dice_per_image, iou_per_image, segmentation_metrics
from medmtl.tasks.base import Outputs, Task
from medmtl.tasks.heads import UNetDecoder

_LOSSES = ("dice_ce", "dice", "generalized_dice", "ce")


class SegmentationTask(Task):
    """Per-pixel classes. Target LongTensor ``[B, H, W]`` (0 = background); prediction logits
    ``[B, num_classes, H, W]``.

    Losses (MONAI): ``dice_ce`` (Dice + cross-entropy), ``dice``, ``generalized_dice`` (Sudre et
    al. 2017, as in the four-task chest CT model), ``ce``.
    """

    kind = "segmentation"
    monitor = ("dice", "max")

    def __init__(self, name: str = "segmentation", num_classes: int = 2, target_key: str = "mask",
                 loss: Literal["dice_ce", "dice", "generalized_dice", "ce"] = "dice_ce",
                 use_skips: bool = True, consumes: tuple[str, ...] = ()) -> None:
        super().__init__(name, target_key, consumes)
        if loss not in _LOSSES:
            raise ConfigError(f"tasks.{name}.loss", f"'{loss}' is not one of {list(_LOSSES)}")
        if num_classes < 2:
            raise ConfigError(f"tasks.{name}.num_classes", "must be at least 2 (background + one class)")
        self.num_classes = num_classes
        self.use_skips = use_skips
        self.loss_name = loss
        self.loss_fn = self._make_loss(loss)

    @staticmethod
    def _make_loss(loss: str) -> torch.nn.Module:
        if loss == "dice_ce":
            return DiceCELoss(to_onehot_y=True, softmax=True)
        if loss == "dice":
            return DiceLoss(to_onehot_y=True, softmax=True)
        if loss == "generalized_dice":
            return GeneralizedDiceLoss(to_onehot_y=True, softmax=True)
        return torch.nn.CrossEntropyLoss()

    def build_head(self, feature_info: list[FeatureInfo], image_channels: int) -> None:
        self.head = UNetDecoder(feature_info, self.num_classes, use_skips=self.use_skips)

    def forward(self, features: list[torch.Tensor], image: torch.Tensor, context: Outputs) -> torch.Tensor:
        return self.head(features, image.shape[-2:])

    def compute_loss(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        target = target.long()
        if self.loss_name == "ce":
            return self.loss_fn(prediction, target)
        return self.loss_fn(prediction, target.unsqueeze(1))

    def postprocess(self, prediction: torch.Tensor) -> torch.Tensor:
        """Class index per pixel ``[B, H, W]``."""
        return prediction.argmax(dim=1)

    def summarize(self, prediction: torch.Tensor, target: torch.Tensor) -> dict[str, np.ndarray]:
        predicted = self.postprocess(prediction.detach())
        target = target.detach().long()
        dice = dice_per_image(predicted, target, self.num_classes).mean(dim=1)
        iou = iou_per_image(predicted, target, self.num_classes).mean(dim=1)
        return {"dice": dice.cpu().numpy(), "iou": iou.cpu().numpy()}

    def compute_metrics(self, summary: dict[str, np.ndarray], n_resamples: int = 1000, seed: int = 0) -> dict[str, Any]:
        return segmentation_metrics(summary["dice"], summary["iou"], n_resamples=n_resamples, seed=seed)
