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
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from pydantic import Field, ValidationInfo, field_validator
from torch import nn

from medmtl.encoders.base import FeatureInfo
from medmtl.io_utils import atomic_write_text
from medmtl.metrics import classification_metrics, segmentation_metrics
from medmtl.metrics.detection import (DEFAULT_FPI, average_precision, fpi_metric_name, froc_curve, froc_metrics,
                                      image_matches)
from medmtl.tasks.base import Batch, Outputs, Summary, Task, TaskOptions
from medmtl.tasks.classification import roc_section
from medmtl.tasks.detection.targets import LabelSource, box_classes, build_targets
from medmtl.tasks.outputs import Overlay, PredictionSink

#: how the detector's loss parts are grouped under the paper's λ₁ (class), λ₂ (box), λ₃ (mask)
LOSS_GROUPS = {"rpn_objectness": "classification", "roi_class": "classification", "rpn_box": "box",
               "roi_box": "box", "mask": "mask"}


class DetectionOptions(TaskOptions):
    """Mask R-CNN-style detection; defaults sized for 128–256 px images on a CPU."""

    kind: Literal["detection"] = "detection"
    target: str = Field("boxes", description="sample key of the boxes [N, 4]; their classes are in "
                                             "'<target>_labels' ('box_labels' for 'boxes')")
    num_classes: int = Field(1, ge=1, description="lesion classes, without background")
    label_source: LabelSource = Field(
        "boxes", description="box classes from the boxes' own labels, or every box gets the image label + 1")
    label_key: str = Field("label", description="sample key of the image label (label_source: image_label)")
    mask_target: str = Field("mask", description="sample key of the semantic mask the mask head learns from")
    mask_head: bool = True
    feature_transfer: bool = Field(False, description="FT-MTL-Net: mask-weighted mask features feed the classifier")
    fpn_channels: int = Field(64, ge=8)
    min_reduction: int = Field(4, ge=1, description="smallest encoder stride the feature pyramid uses")
    anchor_scale: float = Field(4.0, gt=0, description="anchor size = anchor_scale × stride of each pyramid level")
    aspect_ratios: list[float] = Field(default_factory=lambda: [0.5, 1.0, 2.0])
    rpn_pre_nms_top_n: int = Field(300, ge=1)
    rpn_post_nms_top_n: int = Field(100, ge=1)
    rpn_batch_size: int = Field(128, ge=2)
    roi_batch_size: int = Field(64, ge=2)
    representation: int = Field(256, ge=8)
    mask_channels: int = Field(32, ge=8)
    score_thresh: float = Field(0.05, ge=0, lt=1)
    nms_thresh: float = Field(0.5, gt=0, le=1)
    detections_per_img: int = Field(20, ge=1)
    loss_weights: dict[str, float] = Field(default_factory=dict, validate_default=True, description="λ per part: classification, box, mask "
                                                                             "(default 1)")
    froc_iou: float = Field(0.2, ge=0, lt=1, description="IoU above which a detection hits a lesion (FROC)")
    fpi_levels: list[float] = Field(default_factory=lambda: list(DEFAULT_FPI))
    veto_class: int | None = Field(None, validate_default=True, description="class whose detections make an image positive; default the last")
    mask_score_thresh: float = Field(0.5, ge=0, le=1)
    detect_in_training: bool = False

    @field_validator("feature_transfer")
    @classmethod
    def _transfer_needs_masks(cls, transfer: bool, info: ValidationInfo) -> bool:
        if transfer and not info.data.get("mask_head", True):
            raise ValueError("feature_transfer needs mask_head: true (it weights the mask head's features by the "
                             "predicted masks)")
        return transfer

    @field_validator("loss_weights")
    @classmethod
    def _known_parts(cls, weights: dict[str, float]) -> dict[str, float]:
        allowed = sorted(set(LOSS_GROUPS.values()))
        unknown = sorted(set(weights) - set(allowed))
        if unknown:
            raise ValueError(f"loss_weights names unknown part(s) {unknown}; allowed: {allowed}")
        return {**{part: 1.0 for part in allowed}, **weights}

    @field_validator("veto_class")
    @classmethod
    def _veto_is_a_class(cls, veto: int | None, info: ValidationInfo) -> int:
        classes = info.data.get("num_classes", 1)
        veto = classes if veto is None else veto
        if not 1 <= veto <= classes:
            raise ValueError(f"veto_class must be in 1..{classes} (num_classes)")
        return veto


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
        """The detections of images ``rows`` (the loss parts stay those of the whole batch)."""
        pick = lambda items: None if items is None else [items[i] for i in rows]  # noqa: E731
        return Detections(pick(self.boxes), pick(self.scores), pick(self.labels), pick(self.masks),
                          self.image_scores[rows], self.losses)

    def __len__(self) -> int:
        return len(self.boxes)


class DetectionTask(Task[Detections, list[dict[str, Any]]]):
    """Boxes (+ masks) of lesions with ``num_classes`` classes. Targets: ``boxes`` and ``box_labels``
    (or the image ``label`` with ``label_source="image_label"``), ``mask`` for the mask head.

    Metrics: ``ap50`` (COCO AP at IoU 0.5, mean over classes), ``ap50_lesion`` (class-agnostic),
    ``tpr_fpi_<f>`` (FROC: lesion TPR at ``f`` false positives per image, TP when IoU >
    ``froc_iou``) and ``froc_score`` (their mean), ``auc`` (image-level, malignant-veto score vs
    "has a ``veto_class`` lesion"; with ``label_source="image_label"`` over the images that have
    an image label, so lesion-free negatives count for FROC only) and, with a mask head,
    ``dice``/``iou`` of the union of the confident detections' masks, per image with a lesion.

    :meth:`select` pairs the detections of the labelled images with their ground truth (per image:
    ``boxes`` ``[N, 4]``, ``labels`` ``[N]``, ``image_positive``, optionally ``mask`` ``[H, W]``).
    """

    kind = "detection"
    #: boxes of flipped copies would have to be mapped back and merged (e.g. weighted box fusion): not done
    merge_outputs = None
    merge_refusal = "its boxes would need merging (e.g. weighted box fusion) across transformed images or models"
    spatial_dims = (2,)  # torchvision's RPN, RoIAlign and box coders are 2D
    Options = DetectionOptions
    monitor = ("froc_score", "max")
    options: DetectionOptions

    @property
    def num_classes(self) -> int:
        return self.options.num_classes

    @property
    def veto_class(self) -> int:
        return int(self.options.veto_class)

    @property
    def summary_metrics(self) -> tuple[str, ...]:  # type: ignore[override]
        return ("ap50", *(fpi_metric_name(level) for level in self.options.fpi_levels), "froc_score")

    @property
    def metric_names(self) -> tuple[str, ...]:
        """Those of :meth:`compute_metrics`: the image-level ones only when image labels have both
        classes, Dice/IoU only with a mask head."""
        image = ("auc", "accuracy", "balanced_accuracy")
        return ("ap50", "ap50_lesion", *(fpi_metric_name(level) for level in self.options.fpi_levels), "froc_score",
                *image, *(("dice", "iou") if self.options.mask_head else ()))

    @property
    def wants_boxes_from_masks(self) -> bool:
        return self.target == "boxes"

    def build_head(self, feature_info: list[FeatureInfo], image_channels: int) -> None:
        # torchvision's detection parts load on first use: configurations without detection stay light
        from medmtl.tasks.detection.neck import EncoderPyramid
        from medmtl.tasks.detection.roi_heads import LesionRoIHeads
        from medmtl.tasks.detection.rpn import ProposalNetwork

        o = self.options
        pyramid = EncoderPyramid(feature_info, o.fpn_channels, o.min_reduction, task_name=self.name)
        levels = [str(i) for i in range(len(pyramid.reductions) - 1)]  # RoIAlign skips the pooled level
        self.head = nn.ModuleDict({
            "pyramid": pyramid,
            "rpn": ProposalNetwork(o.fpn_channels, pyramid.reductions, o.anchor_scale, tuple(o.aspect_ratios),
                                   o.rpn_pre_nms_top_n, o.rpn_post_nms_top_n, o.rpn_batch_size),
            "roi_heads": LesionRoIHeads(o.fpn_channels, levels, o.num_classes, o.representation, o.mask_head,
                                        o.mask_channels, o.feature_transfer, o.roi_batch_size, o.score_thresh,
                                        o.nms_thresh, o.detections_per_img),
        })

    # -- forward ---------------------------------------------------------------------------
    def forward(self, features: list[torch.Tensor], image: torch.Tensor, context: Outputs,
                batch: Batch | None = None) -> Detections:
        """Detections for ``image [B, C, H, W]``; losses too when ``batch`` holds boxes."""
        o = self.options
        pyramid = self.head["pyramid"](features)
        maps = list(pyramid.values())
        targets = {} if batch is None else build_targets(batch, o.num_classes, o.label_source, o.label_key,
                                                         self.target, o.mask_target if o.mask_head else None,
                                                         self.name)
        proposals, losses = self.head["rpn"].propose(image, maps, targets)
        shape = (int(image.shape[-2]), int(image.shape[-1]))
        roi_heads = self.head["roi_heads"]
        if targets:
            rows = sorted(targets)
            subset = type(pyramid)((k, v[rows]) for k, v in pyramid.items())
            losses.update(roi_heads.losses(subset, [proposals[i] for i in rows], [shape] * len(rows),
                                           [targets[i] for i in rows]))
        if self.training and not o.detect_in_training:
            empty = [image.new_zeros((0, 4))] * len(image)
            return Detections(empty, [image.new_zeros(0)] * len(image), [image.new_zeros(0, dtype=torch.long)] * len(image),
                              None, image.new_zeros(len(image)), losses)
        found = roi_heads.detect(pyramid, proposals, [shape] * len(image))
        veto = self.veto_class
        image_scores = torch.stack([
            (s[l == veto].max() if bool((l == veto).any()) else s.new_zeros(()))
            for s, l in zip(found.scores, found.labels)
        ]) if len(image) else image.new_zeros(0)
        return Detections(found.boxes, found.scores, found.labels, found.masks, image_scores, losses)

    # -- loss ------------------------------------------------------------------------------
    def compute_loss(self, prediction: Detections, target: list[dict[str, Any]]) -> torch.Tensor:
        """λ-weighted sum of the RPN, RoI and mask losses that :meth:`forward` computed for the
        labelled images (proposal sampling needs the targets, so the parts come from the forward)."""
        if not prediction.losses:
            raise RuntimeError(f"task '{self.name}': detection losses are computed in forward(); call the model "
                               "with the batch: model(batch['image'], batch)")
        weights = self.options.loss_weights
        return torch.stack([weights[LOSS_GROUPS[k]] * v for k, v in prediction.losses.items()]).sum()

    def loss_parts(self, prediction: Detections) -> dict[str, torch.Tensor]:
        return dict(prediction.losses)

    # -- evaluation ------------------------------------------------------------------------
    def select(self, prediction: Detections, batch: Batch) -> tuple[Detections, list[dict[str, Any]]] | None:
        present = self.labelled(batch)
        if not bool(present.any()):
            return None
        o = self.options
        rows = torch.nonzero(present).flatten().tolist()
        mask_present = batch["present"].get(o.mask_target)
        truth = []
        for row in rows:
            item = {"boxes": batch["targets"][self.target][row].reshape(-1, 4).cpu().numpy()}
            item["labels"] = box_classes(batch, row, len(item["boxes"]), o.label_source, o.label_key,
                                         self.target, self.name).cpu().numpy()
            item["image_positive"] = self._image_positive(batch, row, item["labels"])
            if mask_present is not None and bool(mask_present[row]):
                item["mask"] = (batch["targets"][o.mask_target][row] > 0).cpu().numpy()
            truth.append(item)
        return prediction.rows(rows), truth

    def _image_positive(self, batch: Batch, row: int, labels: np.ndarray) -> int:
        """1/0: does the image show a ``veto_class`` lesion; -1 (left out of the image AUC) when
        the classes come from an image label the image does not have (BUSI's normal images)."""
        if self.options.label_source == "image_label":
            present = batch["present"].get(self.options.label_key)
            if present is None or not bool(present[row]):
                return -1
        return int((labels == self.veto_class).any())

    def summarize(self, prediction: Detections, target: list[dict[str, Any]]) -> Summary:
        """Per image (object arrays): detections, class-agnostic lesion detections, ground truth;
        float arrays: malignant-veto score, "has a veto-class lesion", Dice and IoU (NaN when
        there is no mask head, no mask or no lesion)."""
        from torchvision.ops import nms

        n = len(target)
        out = {key: np.empty(n, dtype=object) for key in
               ("boxes", "scores", "labels", "lesion_boxes", "lesion_scores", "gt_boxes", "gt_labels")}
        out["image_score"] = prediction.image_scores.detach().cpu().numpy().astype(np.float64)
        out["image_positive"] = np.array([t["image_positive"] for t in target], dtype=np.int64)
        out["dice"] = np.full(n, math.nan)
        out["iou"] = np.full(n, math.nan)
        for i, truth in enumerate(target):
            boxes, scores = prediction.boxes[i].detach().cpu(), prediction.scores[i].detach().cpu()
            out["boxes"][i], out["scores"][i] = boxes.numpy(), scores.numpy()
            out["labels"][i] = prediction.labels[i].detach().cpu().numpy()
            keep = nms(boxes, scores, self.options.nms_thresh)
            out["lesion_boxes"][i], out["lesion_scores"][i] = boxes[keep].numpy(), scores[keep].numpy()
            out["gt_boxes"][i], out["gt_labels"][i] = truth["boxes"], truth["labels"]
            if prediction.masks is not None and "mask" in truth and truth["mask"].any():
                out["dice"][i], out["iou"][i] = _overlap(self._union_mask(prediction, i).cpu().numpy(), truth["mask"])
        return out

    def _union_mask(self, prediction: Detections, index: int) -> torch.Tensor:
        """Bool ``[H, W]``: the union of the confident detections' masks of image ``index``."""
        masks, scores = prediction.masks[index], prediction.scores[index]
        confident = masks[scores >= self.options.mask_score_thresh]
        if confident.shape[0] == 0:
            return torch.zeros(masks.shape[-2:], dtype=torch.bool)
        return (confident >= 0.5).any(dim=0)

    def _lesion_matches(self, summary: Summary) -> list[Any]:
        return [image_matches(b, s, g, self.options.froc_iou)
                for b, s, g in zip(summary["lesion_boxes"], summary["lesion_scores"], summary["gt_boxes"])]

    def compute_metrics(self, summary: Summary, n_resamples: int = 1000, seed: int = 0) -> dict[str, Any]:
        result: dict[str, Any] = {"n": int(len(summary["gt_boxes"]))}
        result["ap50"] = average_precision(summary["boxes"], summary["scores"], summary["labels"],
                                           summary["gt_boxes"], summary["gt_labels"], 0.5)
        ones = [np.ones(len(s), dtype=np.int64) for s in summary["lesion_scores"]]
        gt_ones = [np.ones(len(g), dtype=np.int64) for g in summary["gt_boxes"]]
        result["ap50_lesion"] = average_precision(summary["lesion_boxes"], summary["lesion_scores"], ones,
                                                  summary["gt_boxes"], gt_ones, 0.5)
        result.update(froc_metrics(self._lesion_matches(summary), self.options.fpi_levels, n_resamples, seed))
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

    # -- results for people ---------------------------------------------------------------
    def report_figures(self, summary: Summary, out_dir: Path, split: str) -> list[str]:
        """FROC curve of the lesion detections (``froc_<task>.png/.csv``) and ROC of the image-level
        (malignant-veto) score."""
        import pandas as pd

        from medmtl.report.plots import plot_froc  # matplotlib only when a report is written

        sections = []
        fpi, tpr, _ = froc_curve(self._lesion_matches(summary))
        atomic_write_text(out_dir / f"froc_{self.name}.csv", pd.DataFrame({"fpi": fpi, "tpr": tpr}).to_csv(index=False))
        png = plot_froc({self.name: (fpi, tpr)}, out_dir / f"froc_{self.name}.png",
                        title=f"FROC — {self.name} ({split})")
        if png:
            sections.append(f"## FROC — {self.name}\n\n![FROC {self.name}]({png.name})")
        known = summary["image_positive"] >= 0
        score = summary["image_score"][known]
        sections += roc_section(self.name, summary["image_positive"][known], np.stack([1 - score, score], axis=1),
                                out_dir, f"ROC — {self.name}, image level ({split})",
                                f"ROC — {self.name} (image level)")
        return sections

    def write_prediction(self, prediction: Detections, sink: PredictionSink) -> dict[str, Any]:
        """Detections in the file's pixels (COCO boxes too), the image-level probability and, with a
        mask head, the union of the confident masks as ``masks/<image>_<task>.png``."""
        boxes = (prediction.boxes[0].cpu() * sink.box_scale()).numpy()
        scores = prediction.scores[0].cpu().numpy()
        labels = prediction.labels[0].cpu().numpy()
        sink.categories.update({k: f"class {k}" for k in range(2, self.num_classes + 1)})
        detections = []
        for box, score, label in zip(boxes, scores, labels):
            detections.append({"bbox": [float(box[0]), float(box[1]), float(box[2] - box[0]), float(box[3] - box[1])],
                               "score": float(score), "label": int(label)})
            sink.add_box(box, int(label), float(score), self.name)
        probability = float(prediction.image_scores[0])
        entry: dict[str, Any] = {"image_probability": probability, "veto_class": self.veto_class,
                                 "detections": detections}
        confident = scores >= self.options.mask_score_thresh
        layer = Overlay(boxes=boxes[confident], scores=scores[confident], labels=labels[confident],
                        caption=f"{self.name}: p(class {self.veto_class}) = {probability:.2f}")
        if prediction.masks is not None:
            mask = sink.to_original(self._union_mask(prediction, 0).long())
            entry["mask"] = sink.save_mask(mask, self.name, 2)
            layer.pred_mask = mask
        sink.overlays.append(layer)
        return entry


def _overlap(predicted: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    intersection = float(np.logical_and(predicted, truth).sum())
    total = float(predicted.sum() + truth.sum())
    union = total - intersection
    return (2 * intersection / total if total else math.nan, intersection / union if union else math.nan)


