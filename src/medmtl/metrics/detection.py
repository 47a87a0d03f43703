"""Lesion detection metrics: greedy matching, FROC, TPR at false positives per image, and AP.

Inputs are per image: predicted boxes ``[N, 4]`` (x1, y1, x2, y2), their scores ``[N]`` and
labels ``[N]``, ground-truth boxes ``[M, 4]`` and labels ``[M]``. Images without ground truth
count as negatives: every detection on them is a false positive.

- **FROC** (lesion-level, as in the FT-MTL-Net paper): a detection is a true positive when its
  IoU with a not yet matched lesion is above ``iou_threshold`` (0.2 by default, strict ``>``);
  detections are matched greedily in order of decreasing score, so a second detection of the
  same lesion is a false positive. TPR = detected lesions / all lesions, FPI = false positives /
  images; the TPR at ``f`` FPI is the highest TPR reached with at most ``f`` FPI.
- **AP** follows COCO (``pycocotools``): per class, detections of all images sorted by score,
  a match needs IoU ≥ the threshold, precision made monotone and read at 101 recall points;
  the mean over classes that have ground truth.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from medmtl.metrics.bootstrap import bootstrap_indices, percentile_interval

DEFAULT_FPI = (0.5, 1.0, 2.0, 4.0)


def box_iou(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """IoU matrix ``[N, M]`` of boxes ``[N, 4]`` and ``[M, 4]`` (xyxy)."""
    first = np.asarray(first, dtype=np.float64).reshape(-1, 4)
    second = np.asarray(second, dtype=np.float64).reshape(-1, 4)
    area1 = (first[:, 2] - first[:, 0]) * (first[:, 3] - first[:, 1])
    area2 = (second[:, 2] - second[:, 0]) * (second[:, 3] - second[:, 1])
    left_top = np.maximum(first[:, None, :2], second[None, :, :2])
    right_bottom = np.minimum(first[:, None, 2:], second[None, :, 2:])
    wh = np.clip(right_bottom - left_top, 0, None)
    inter = wh[..., 0] * wh[..., 1]
    union = area1[:, None] + area2[None, :] - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(union > 0, inter / union, 0.0)


def match_detections(boxes: Any, scores: Any, gt_boxes: Any, iou_threshold: float = 0.2,
                     inclusive: bool = False) -> np.ndarray:
    """True-positive flag ``[N]`` of each detection after greedy one-to-one matching.

    Detections are visited in order of decreasing score; each takes the unmatched ground-truth
    box with the highest IoU, if that IoU is ``> iou_threshold`` (``>=`` with ``inclusive``).
    """
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    gt_boxes = np.asarray(gt_boxes, dtype=np.float64).reshape(-1, 4)
    is_tp = np.zeros(len(boxes), dtype=bool)
    if len(boxes) == 0 or len(gt_boxes) == 0:
        return is_tp
    ious = box_iou(boxes, gt_boxes)
    taken = np.zeros(len(gt_boxes), dtype=bool)
    for index in np.argsort(-scores, kind="mergesort"):
        candidates = np.where(taken, -1.0, ious[index])
        best = int(np.argmax(candidates))
        value = candidates[best]
        if value > iou_threshold or (inclusive and value >= iou_threshold and value >= 0):
            taken[best] = True
            is_tp[index] = True
    return is_tp


@dataclass(frozen=True)
class ImageMatches:
    """What FROC needs from one image: detection scores ``[N]``, TP flags ``[N]``, lesion count."""

    scores: np.ndarray
    is_tp: np.ndarray
    n_lesions: int


def image_matches(boxes: Any, scores: Any, gt_boxes: Any, iou_threshold: float = 0.2) -> ImageMatches:
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    flags = match_detections(boxes, scores, gt_boxes, iou_threshold)
    return ImageMatches(scores, flags, int(np.asarray(gt_boxes).reshape(-1, 4).shape[0]))


def froc_curve(matches: Sequence[ImageMatches]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(fpi, tpr, thresholds)``, one point per distinct score, from the highest threshold down.

    The curve starts at ``(0, 0)`` (threshold +inf). TPR is NaN when there is no lesion at all.
    """
    n_images = len(matches)
    n_lesions = sum(m.n_lesions for m in matches)
    if n_images == 0:
        return np.zeros(1), np.full(1, math.nan), np.full(1, math.inf)
    scores = np.concatenate([m.scores for m in matches])
    flags = np.concatenate([m.is_tp for m in matches])
    order = np.argsort(-scores, kind="mergesort")
    scores, flags = scores[order], flags[order]
    tp = np.cumsum(flags)
    fp = np.cumsum(~flags)
    # keep the last point of each run of equal scores: a threshold admits all of them at once
    last_of_run = np.r_[scores[1:] != scores[:-1], True] if len(scores) else np.zeros(0, bool)
    tp, fp, thresholds = tp[last_of_run], fp[last_of_run], scores[last_of_run]
    tpr = tp / n_lesions if n_lesions else np.full(len(tp), math.nan)
    return (np.r_[0.0, fp / n_images], np.r_[0.0 if n_lesions else math.nan, tpr], np.r_[math.inf, thresholds])


def tpr_at_fpi(fpi: np.ndarray, tpr: np.ndarray, levels: Sequence[float] = DEFAULT_FPI) -> dict[float, float]:
    """Highest TPR reached with at most ``level`` false positives per image, for each level."""
    out = {}
    for level in levels:
        allowed = tpr[fpi <= level + 1e-12]
        out[float(level)] = float(np.max(allowed)) if allowed.size and np.isfinite(allowed).any() else math.nan
    return out


def froc_metrics(matches: Sequence[ImageMatches], levels: Sequence[float] = DEFAULT_FPI, n_resamples: int = 1000,
                 seed: int = 0) -> dict[str, Any]:
    """``tpr_fpi_<f>`` (+ ``_ci95`` from an image-level bootstrap) and their mean ``froc_score``."""
    fpi, tpr = froc_curve(matches)[:2]
    point = tpr_at_fpi(fpi, tpr, levels)
    result: dict[str, Any] = {}
    for level, value in point.items():
        result[fpi_metric_name(level)] = value
    result["froc_score"] = float(np.mean(list(point.values()))) if point else math.nan
    if n_resamples <= 0 or not matches:
        for level in point:
            result[f"{fpi_metric_name(level)}_ci95"] = [math.nan, math.nan]
        return result
    resampled = np.full((n_resamples, len(levels)), math.nan)
    for r, rows in enumerate(bootstrap_indices(len(matches), n_resamples, seed)):
        curve = froc_curve([matches[i] for i in rows])
        resampled[r] = list(tpr_at_fpi(curve[0], curve[1], levels).values())
    for column, level in enumerate(point):
        result[f"{fpi_metric_name(level)}_ci95"] = list(percentile_interval(resampled[:, column], n_resamples))
    return result


def fpi_metric_name(level: float) -> str:
    """The metric name of the lesion TPR at ``level`` false positives per image: ``tpr_fpi_0.5``."""
    return f"tpr_fpi_{level:g}"


def average_precision(pred_boxes: Sequence[Any], pred_scores: Sequence[Any], pred_labels: Sequence[Any],
                      gt_boxes: Sequence[Any], gt_labels: Sequence[Any], iou_threshold: float = 0.5,
                      max_detections: int = 100) -> float:
    """COCO-style AP at one IoU threshold, averaged over the classes that have ground truth.

    Each argument is a sequence with one entry per image. NaN when there is no ground truth.
    """
    classes = sorted({int(c) for labels in gt_labels for c in np.asarray(labels).reshape(-1)})
    if not classes:
        return math.nan
    values = []
    for cls in classes:
        scores_all, flags_all, n_gt = [], [], 0
        for boxes, scores, labels, gboxes, glabels in zip(pred_boxes, pred_scores, pred_labels, gt_boxes, gt_labels):
            labels = np.asarray(labels).reshape(-1)
            glabels = np.asarray(glabels).reshape(-1)
            boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)[labels == cls]
            scores = np.asarray(scores, dtype=np.float64).reshape(-1)[labels == cls]
            keep = np.argsort(-scores, kind="mergesort")[:max_detections]
            boxes, scores = boxes[keep], scores[keep]
            gboxes = np.asarray(gboxes, dtype=np.float64).reshape(-1, 4)[glabels == cls]
            n_gt += len(gboxes)
            scores_all.append(scores)
            flags_all.append(match_detections(boxes, scores, gboxes, iou_threshold, inclusive=True))
        if n_gt == 0:
            continue
        values.append(_interpolated_ap(np.concatenate(scores_all), np.concatenate(flags_all), n_gt))
    return float(np.mean(values)) if values else math.nan


def _interpolated_ap(scores: np.ndarray, flags: np.ndarray, n_gt: int) -> float:
    if len(scores) == 0:
        return 0.0
    order = np.argsort(-scores, kind="mergesort")
    flags = flags[order]
    tp = np.cumsum(flags)
    fp = np.cumsum(~flags)
    recall = tp / n_gt
    precision = tp / np.maximum(tp + fp, np.finfo(np.float64).eps)
    precision = np.maximum.accumulate(precision[::-1])[::-1]
    recall_points = np.linspace(0.0, 1.0, 101)
    index = np.searchsorted(recall, recall_points, side="left")
    sampled = np.where(index < len(precision), precision[np.minimum(index, len(precision) - 1)], 0.0)
    return float(np.mean(sampled))
