"""Semantic segmentation with a U-Net decoder over the encoder's skips."""

from __future__ import annotations

from typing import Any, Literal

import torch
from pydantic import Field

from medmtl.data.boxes import boxes_from_mask
from medmtl.encoders.base import FeatureInfo
from medmtl.metrics import dice_per_image, iou_per_image, segmentation_metrics
from medmtl.tasks.base import Batch, Outputs, Summary, Task, TaskOptions, mean_log_probabilities
from medmtl.tasks.heads import UNetDecoder
from medmtl.tasks.outputs import Overlay, PredictionSink

LossName = Literal["dice_ce", "dice", "generalized_dice", "ce"]


class SegmentationOptions(TaskOptions):
    kind: Literal["segmentation"] = "segmentation"
    target: str = "mask"
    num_classes: int = Field(2, ge=2, description="classes including the background")
    loss: LossName = "dice_ce"
    use_skips: bool = Field(True, description="U-Net skip connections from the encoder")


def make_loss(loss: LossName) -> torch.nn.Module:
    """The MONAI loss (or cross-entropy) for logits ``[B, K, H, W]`` and targets ``[B, 1, H, W]``
    (``ce``: ``[B, H, W]``)."""
    from monai.losses import DiceCELoss, DiceLoss, GeneralizedDiceLoss  # monai is slow to import

    if loss == "dice_ce":
        return DiceCELoss(to_onehot_y=True, softmax=True)
    if loss == "dice":
        return DiceLoss(to_onehot_y=True, softmax=True)
    if loss == "generalized_dice":
        return GeneralizedDiceLoss(to_onehot_y=True, softmax=True)
    return torch.nn.CrossEntropyLoss()


class SegmentationTask(Task[torch.Tensor, torch.Tensor]):
    """Per-pixel classes. Target LongTensor ``[B, H, W]`` (0 = background); prediction logits
    ``[B, num_classes, H, W]``; :meth:`postprocess` gives the label map ``[B, H, W]``.

    Losses (MONAI): ``dice_ce`` (Dice + cross-entropy), ``dice``, ``generalized_dice`` (Sudre et
    al. 2017, as in the four-task chest CT model), ``ce``.
    """

    kind = "segmentation"
    dense = True
    Options = SegmentationOptions
    monitor = ("dice", "max")
    summary_metrics = ("dice", "iou")
    metric_names = ("dice", "iou")
    options: SegmentationOptions

    def __init__(self, name: str | None = None, options: SegmentationOptions | None = None, **values: Any) -> None:
        super().__init__(name, options, **values)
        self.loss_fn = make_loss(self.options.loss)

    @property
    def num_classes(self) -> int:
        return self.options.num_classes

    def build_head(self, feature_info: list[FeatureInfo], image_channels: int) -> None:
        self.head = UNetDecoder(feature_info, self.num_classes, use_skips=self.options.use_skips)

    def forward(self, features: list[torch.Tensor], image: torch.Tensor, context: Outputs,
                batch: Batch | None = None) -> torch.Tensor:
        return self.head(features, image.shape[2:])

    def compute_loss(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        target = target.long()
        if self.options.loss == "ce":
            return self.loss_fn(prediction, target)
        return self.loss_fn(prediction, target.unsqueeze(1))

    def postprocess(self, prediction: torch.Tensor) -> torch.Tensor:
        """Class index per pixel ``[B, H, W]``."""
        return prediction.argmax(dim=1)

    def merge_outputs(self, outputs: list[torch.Tensor]) -> torch.Tensor:
        """Test-time augmentation: per pixel/voxel, the mean of the transformed copies' class probabilities
        (outputs already mapped back onto the input's grid), returned as **log-probabilities**
        ``[B, num_classes, *S]``: their arg-max (:meth:`postprocess`, Dice, IoU) and softmax are those of
        the mean probabilities."""
        return mean_log_probabilities([out.float().log_softmax(dim=1).to(out.dtype) for out in outputs])

    def summarize(self, prediction: torch.Tensor, target: torch.Tensor) -> Summary:
        predicted = self.postprocess(prediction.detach())
        target = target.detach().long()
        dice = dice_per_image(predicted, target, self.num_classes).mean(dim=1)
        iou = iou_per_image(predicted, target, self.num_classes).mean(dim=1)
        return {"dice": dice.cpu().numpy(), "iou": iou.cpu().numpy()}

    def compute_metrics(self, summary: Summary, n_resamples: int = 1000, seed: int = 0) -> dict[str, Any]:
        return segmentation_metrics(summary["dice"], summary["iou"], n_resamples=n_resamples, seed=seed)

    # -- results for people ---------------------------------------------------------------
    def overlay(self, prediction: torch.Tensor, batch: Batch, index: int) -> Overlay:
        present = batch["present"].get(self.target)
        truth = batch["targets"][self.target][index].numpy() if present is not None and present[index] else None
        return Overlay(true_mask=truth, pred_mask=prediction[index].cpu().numpy())

    def write_prediction(self, prediction: torch.Tensor, sink: PredictionSink) -> dict[str, Any]:
        """The label map at the file's size (images: ``masks/<image>_<task>.png`` and one COCO box per
        connected component of the foreground; volumes: ``masks/<volume>_<task>.nii.gz`` on the file's grid)."""
        mask = sink.to_original(prediction[0])
        if sink.spatial_dims == 2:
            for box in boxes_from_mask(mask > 0):
                sink.add_box(box, 1, None, self.name)
        sink.overlays.append(Overlay(pred_mask=mask))
        return {"mask": sink.save_mask(mask, self.name, self.num_classes),
                "foreground_fraction": float((mask > 0).mean())}
