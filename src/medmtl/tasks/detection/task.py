"""Lesion detection (Mask R-CNN style) on the shared encoder, and FT-MTL-Net's variant of it.

Pipeline: encoder maps → FPN (:class:`EncoderPyramid`) → RPN (:class:`ProposalNetwork`) →
RoIAlign → box/class heads and an optional per-class mask head (:class:`LesionRoIHeads`). All
pieces are torchvision's; images are used at the configured size (no 800 px resize).

The model passes the batch to this task, so one forward gives both the losses (for the images
that have boxes, in training *and* evaluation mode) and the detections (in evaluation mode, and in
training mode when ``detect_in_training``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn
from torchvision.ops import nms

from medmtl.encoders.base import FeatureInfo
from medmtl.errors import ConfigError
from medmtl.metrics import classification_metrics, segmentation_metrics
from medmtl.metrics.detection import DEFAULT_FPI, average_precision, froc_metrics, image_matches
from medmtl.tasks.base import Outputs, Task
from medmtl.tasks.detection.neck import EncoderPyramid
from medmtl.tasks.detection.roi_heads import LesionRoIHeads
from medmtl.tasks.detection.rpn import ProposalNetwork
from medmtl.tasks.detection.targets import LabelSource, box_classes, build_targets

#: how the detector's loss parts are grouped under the paper's λ₁ (class), λ₂ (box), λ₃ (mask)
LOSS_GROUPS = {"rpn_objectness": "classification", "roi_class": "classification", "rpn_box": "box",
               "roi_box": "box", "mask": "mask"}


@dataclass
class Detections:
    """Output of :class:`DetectionTask` for a batch of ``B`` images.

    ``boxes[i]`` ``[N_i, 4]`` (xyxy pixels), ``scores[i]`` ``[N_i]``, ``labels[i]`` ``[N_i]``
    (1..K), ``masks[i]`` ``[N_i, H, W]`` probabilities (with a mask head), ``image_scores`` ``[B]``
    (malignant-veto: the highest score of a ``veto_class`` detection, 0 without one) and the loss
    parts of the labelled images (empty without targets).
    """

    boxes: list[torch.Tensor]
    scores: list[torch.Tensor]
    labels: list[torch.Tensor]
    masks: list[torch.Tensor] | None
    image_scores: torch.Tensor
    losses: dict[str, torch.Tensor] = field(default_factory=dict)

    def rows(self, rows: list[int]) -> Detections:
        pick = lambda items: None if items is None else [items[i] for i in rows]  # noqa: E731
        return Detections(pick(self.boxes), pick(self.scores), pick(self.labels), pick(self.masks),
                          self.image_scores[rows], self.losses)

    def __len__(self) -> int:
        return len(self.boxes)


class DetectionTask(Task):
    """Boxes (+ masks) of lesions with ``num_classes`` classes. Targets: ``boxes`` and ``box_labels``
    (or the image ``label`` with ``label_source="image_label"``), ``mask`` for the mask head.

    Metrics: ``ap50`` (COCO AP at IoU 0.5, mean over classes), ``ap50_lesion`` (class-agnostic),
    ``tpr_fpi_<f>`` (FROC: lesion TPR at ``f`` false positives per image, TP when IoU >
    ``froc_iou``) and ``froc_score`` (their mean), ``auc`` (image-level, malignant-veto score vs
    "has a ``veto_class`` lesion"; with ``label_source="image_label"`` over the images that have
    an image label, so lesion-free negatives count for FROC only) and, with a mask head,
    ``dice``/``iou`` of the union of the
    confident detections' masks, per image with a lesion.
    """

    kind = "detection"
    monitor = ("froc_score", "max")
    uses_batch: ClassVar[bool] = True

    def __init__(self, name: str = "detection", num_classes: int = 1, target_key: str = "boxes",
                 label_source: LabelSource = "boxes", label_key: str = "label", mask_head: bool = True,
                 feature_transfer: bool = False, fpn_channels: int = 64, min_reduction: int = 4,
                 anchor_scale: float = 4.0, aspect_ratios: tuple[float, ...] = (0.5, 1.0, 2.0),
                 rpn_pre_nms_top_n: int = 300, rpn_post_nms_top_n: int = 100, rpn_batch_size: int = 128,
                 roi_batch_size: int = 64, representation: int = 256, mask_channels: int = 32,
                 score_thresh: float = 0.05, nms_thresh: float = 0.5, detections_per_img: int = 20,
                 loss_weights: dict[str, float] | None = None, froc_iou: float = 0.2,
                 fpi_levels: tuple[float, ...] = DEFAULT_FPI, veto_class: int | None = None,
                 mask_score_thresh: float = 0.5, detect_in_training: bool = False,
                 consumes: tuple[str, ...] = ()) -> None:
        super().__init__(name, target_key, consumes)
        if num_classes < 1:
            raise ConfigError(f"tasks.{name}.num_classes", "must be at least 1 (lesion classes, without background)")
        if feature_transfer and not mask_head:
            raise ConfigError(f"tasks.{name}.feature_transfer", "needs mask_head: true (it weights the mask "
                                                                "head's features by the predicted masks)")
        weights = {"classification": 1.0, "box": 1.0, "mask": 1.0, **(loss_weights or {})}
        unknown = sorted(set(weights) - set(LOSS_GROUPS.values()))
        if unknown:
            raise ConfigError(f"tasks.{name}.loss_weights", f"unknown part(s) {unknown}; allowed: "
                                                            f"{sorted(set(LOSS_GROUPS.values()))}")
        self.loss_weights = weights
        self.num_classes = num_classes
        self.label_source = label_source
        self.label_key = label_key
        self.veto_class = num_classes if veto_class is None else veto_class
        if not 1 <= self.veto_class <= num_classes:
            raise ConfigError(f"tasks.{name}.veto_class", f"must be in 1..{num_classes}")
        self.froc_iou = froc_iou
        self.fpi_levels = tuple(fpi_levels)
        self.mask_score_thresh = mask_score_thresh
        self.detect_in_training = detect_in_training
        self._options = dict(mask_head=mask_head, feature_transfer=feature_transfer, fpn_channels=fpn_channels,
                             min_reduction=min_reduction, anchor_scale=anchor_scale, aspect_ratios=aspect_ratios,
                             rpn_pre_nms_top_n=rpn_pre_nms_top_n, rpn_post_nms_top_n=rpn_post_nms_top_n,
                             rpn_batch_size=rpn_batch_size, roi_batch_size=roi_batch_size,
                             representation=representation, mask_channels=mask_channels,
                             score_thresh=score_thresh, nms_thresh=nms_thresh, detections_per_img=detections_per_img)

    @property
    def has_mask_head(self) -> bool:
        return bool(self._options["mask_head"])

    def build_head(self, feature_info: list[FeatureInfo], image_channels: int) -> None:
        o = self._options
        pyramid = EncoderPyramid(feature_info, o["fpn_channels"], o["min_reduction"], task_name=self.name)
        levels = [str(i) for i in range(len(pyramid.reductions) - 1)]  # RoIAlign skips the pooled level
        self.head = nn.ModuleDict({
            "pyramid": pyramid,
            "rpn": ProposalNetwork(o["fpn_channels"], pyramid.reductions, o["anchor_scale"], tuple(o["aspect_ratios"]),
                                   o["rpn_pre_nms_top_n"], o["rpn_post_nms_top_n"], o["rpn_batch_size"]),
            "roi_heads": LesionRoIHeads(o["fpn_channels"], levels, self.num_classes, o["representation"],
                                        o["mask_head"], o["mask_channels"], o["feature_transfer"],
                                        o["roi_batch_size"], o["score_thresh"], o["nms_thresh"],
                                        o["detections_per_img"]),
        })

    # -- forward ---------------------------------------------------------------------------
    def forward(self, features: list[torch.Tensor], image: torch.Tensor, context: Outputs,
                batch: dict[str, Any] | None = None) -> Detections:
        """Detections for ``image [B, C, H, W]``; losses too when ``batch`` holds boxes."""
        pyramid = self.head["pyramid"](features)
        maps = list(pyramid.values())
        targets = {} if batch is None else build_targets(batch, self.num_classes, self.label_source,
                                                         self.label_key, self.target_key, self.has_mask_head,
                                                         self.name)
        proposals, losses = self.head["rpn"].propose(image, maps, targets)
        shape = (int(image.shape[-2]), int(image.shape[-1]))
        roi_heads: LesionRoIHeads = self.head["roi_heads"]
        if targets:
            rows = sorted(targets)
            subset = type(pyramid)((k, v[rows]) for k, v in pyramid.items())
            losses.update(roi_heads.losses(subset, [proposals[i] for i in rows], [shape] * len(rows),
                                           [targets[i] for i in rows]))
        if self.training and not self.detect_in_training:
            empty = [image.new_zeros((0, 4))] * len(image)
            return Detections(empty, [image.new_zeros(0)] * len(image), [image.new_zeros(0, dtype=torch.long)] * len(image),
                              None, image.new_zeros(len(image)), losses)
        found = roi_heads.detect(pyramid, proposals, [shape] * len(image))
        image_scores = torch.stack([
            (s[l == self.veto_class].max() if bool((l == self.veto_class).any()) else s.new_zeros(()))
            for s, l in zip(found.scores, found.labels)
        ]) if len(image) else image.new_zeros(0)
        return Detections(found.boxes, found.scores, found.labels, found.masks, image_scores, losses)

    # -- loss ------------------------------------------------------------------------------
    def loss(self, prediction: Detections, batch: dict[str, Any]) -> torch.Tensor | None:
        if not prediction.losses:
            return None
        return torch.stack([self.loss_weights[LOSS_GROUPS[k]] * v for k, v in prediction.losses.items()]).sum()

    def compute_loss(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError("detection losses come from forward(); use DetectionTask.loss")

    # -- evaluation ------------------------------------------------------------------------
    def select(self, prediction: Detections, batch: dict[str, Any]) -> tuple[Detections, list[dict]] | None:
        present = batch["present"].get(self.target_key)
        if present is None or not bool(present.any()):
            return None
        rows = torch.nonzero(present).flatten().tolist()
        truth = []
        for row in rows:
            item = {"boxes": batch["targets"][self.target_key][row].reshape(-1, 4).cpu().numpy()}
            item["labels"] = box_classes(batch, row, len(item["boxes"]), self.label_source, self.label_key,
                                         self.target_key, self.name).cpu().numpy()
            item["image_positive"] = self._image_positive(batch, row, item["labels"])
            mask_present = batch["present"].get("mask")
            if mask_present is not None and bool(mask_present[row]):
                item["mask"] = (batch["targets"]["mask"][row] > 0).cpu().numpy()
            truth.append(item)
        return prediction.rows(rows), truth

    def _image_positive(self, batch: dict[str, Any], row: int, labels: np.ndarray) -> int:
        """1/0: does the image show a ``veto_class`` lesion; -1 (left out of the image AUC) when
        the classes come from an image label the image does not have (BUSI's normal images)."""
        if self.label_source == "image_label":
            present = batch["present"].get(self.label_key)
            if present is None or not bool(present[row]):
                return -1
        return int((labels == self.veto_class).any())

    def summarize(self, prediction: Detections, target: list[dict]) -> dict[str, np.ndarray]:
        """Per image (object arrays): detections, class-agnostic lesion detections, ground truth;
        float arrays: malignant-veto score, "has a veto-class lesion", Dice and IoU (NaN when
        there is no mask head, no mask or no lesion)."""
        n = len(target)
        out = {key: np.empty(n, dtype=object) for key in
               ("boxes", "scores", "labels", "lesion_boxes", "lesion_scores", "gt_boxes", "gt_labels")}
        out["image_score"] = prediction.image_scores.detach().cpu().numpy().astype(np.float64)
        out["image_positive"] = np.array([t["image_positive"] for t in target], dtype=np.int64)
        out["dice"] = np.full(n, math.nan)
        out["iou"] = np.full(n, math.nan)
        nms_thresh = self._options["nms_thresh"]
        for i, truth in enumerate(target):
            boxes, scores = prediction.boxes[i].detach().cpu(), prediction.scores[i].detach().cpu()
            out["boxes"][i], out["scores"][i] = boxes.numpy(), scores.numpy()
            out["labels"][i] = prediction.labels[i].detach().cpu().numpy()
            keep = nms(boxes, scores, nms_thresh)
            out["lesion_boxes"][i], out["lesion_scores"][i] = boxes[keep].numpy(), scores[keep].numpy()
            out["gt_boxes"][i], out["gt_labels"][i] = truth["boxes"], truth["labels"]
            if prediction.masks is not None and "mask" in truth and truth["mask"].any():
                out["dice"][i], out["iou"][i] = _overlap(self._union_mask(prediction, i), truth["mask"])
        return out

    def _union_mask(self, prediction: Detections, index: int) -> np.ndarray:
        masks, scores = prediction.masks[index], prediction.scores[index]
        confident = masks[scores >= self.mask_score_thresh]
        if confident.shape[0] == 0:
            return np.zeros(masks.shape[-2:], dtype=bool)
        return (confident >= 0.5).any(dim=0).cpu().numpy()

    def compute_metrics(self, summary: dict[str, np.ndarray], n_resamples: int = 1000, seed: int = 0) -> dict[str, Any]:
        result: dict[str, Any] = {"n": int(len(summary["gt_boxes"]))}
        result["ap50"] = average_precision(summary["boxes"], summary["scores"], summary["labels"],
                                           summary["gt_boxes"], summary["gt_labels"], 0.5)
        ones = [np.ones(len(s), dtype=np.int64) for s in summary["lesion_scores"]]
        gt_ones = [np.ones(len(g), dtype=np.int64) for g in summary["gt_boxes"]]
        result["ap50_lesion"] = average_precision(summary["lesion_boxes"], summary["lesion_scores"], ones,
                                                  summary["gt_boxes"], gt_ones, 0.5)
        matches = [image_matches(b, s, g, self.froc_iou)
                   for b, s, g in zip(summary["lesion_boxes"], summary["lesion_scores"], summary["gt_boxes"])]
        result.update(froc_metrics(matches, self.fpi_levels, n_resamples, seed))
        known = summary["image_positive"] >= 0
        positive = summary["image_positive"][known].astype(np.int64)
        if 0 < positive.sum() < len(positive):
            score = summary["image_score"][known]
            image = classification_metrics(positive, np.stack([1 - score, score], axis=1), n_resamples, seed)
            result.update({k: image[k] for k in ("auc", "auc_ci95", "accuracy", "balanced_accuracy")})
        finite = np.isfinite(summary["dice"])
        if finite.any():
            overlap = segmentation_metrics(summary["dice"][finite], summary["iou"][finite], n_resamples, seed)
            result.update({k: v for k, v in overlap.items() if k != "n"})
        return result

    def postprocess(self, prediction: Detections) -> Detections:
        return prediction


def _overlap(predicted: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    intersection = float(np.logical_and(predicted, truth).sum())
    total = float(predicted.sum() + truth.sum())
    union = total - intersection
    return (2 * intersection / total if total else math.nan, intersection / union if union else math.nan)


