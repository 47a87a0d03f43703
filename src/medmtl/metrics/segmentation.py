"""Per-image Dice and IoU of label masks, and their bootstrap summary.

Convention for a class absent from the target: 1.0 when it is also absent from the prediction,
0.0 when it is predicted. This equals MONAI's ``compute_dice`` / ``compute_iou`` with
``ignore_empty=False``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from medmtl.metrics.bootstrap import as_numpy, batched_mean, bootstrap_ci, undefined_metrics

__all__ = ["dice_per_image", "iou_per_image", "segmentation_metrics"]


def _as_label_tensor(mask: Any, name: str) -> torch.Tensor:
    tensor = mask if isinstance(mask, torch.Tensor) else torch.as_tensor(np.asarray(mask))
    if tensor.is_floating_point():
        if not torch.equal(tensor, tensor.round()):
            raise ValueError(f"{name} must hold integer class indices, got non-integral values")
    elif tensor.dtype == torch.bool:
        pass
    elif tensor.is_complex():
        raise ValueError(f"{name} must hold integer class indices, got dtype {tensor.dtype}")
    return tensor.detach().long()


def _overlap_counts(pred: Any, target: Any, num_classes: int,
                    include_background: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per image and class: intersection, predicted count and target count, each ``[B, C']``."""
    pred = _as_label_tensor(pred, "pred")
    target = _as_label_tensor(target, "target").to(pred.device)
    if pred.shape != target.shape:
        raise ValueError(f"pred and target must have the same shape, got {tuple(pred.shape)} and {tuple(target.shape)}")
    if pred.dim() < 2:
        raise ValueError(f"masks must be [B, H, W] or [B, D, H, W], got shape {tuple(pred.shape)}")
    if num_classes < 1 or (num_classes < 2 and not include_background):
        raise ValueError(f"num_classes must be >= 2 without the background class, got {num_classes}")
    for name, mask in (("pred", pred), ("target", target)):
        if mask.numel() and (int(mask.min()) < 0 or int(mask.max()) >= num_classes):
            raise ValueError(f"{name} values must be class indices in [0, {num_classes}), "
                             f"got range [{int(mask.min())}, {int(mask.max())}]")
    batch = pred.shape[0]
    pred = pred.reshape(batch, -1)
    target = target.reshape(batch, -1)
    first = 0 if include_background else 1
    inter, p_sum, t_sum = [], [], []
    for c in range(first, num_classes):
        p = pred == c
        t = target == c
        inter.append((p & t).sum(dim=1))
        p_sum.append(p.sum(dim=1))
        t_sum.append(t.sum(dim=1))
    return (torch.stack(inter, 1).double(), torch.stack(p_sum, 1).double(), torch.stack(t_sum, 1).double())


def dice_per_image(pred: Any, target: Any, num_classes: int, include_background: bool = False) -> torch.Tensor:
    """Dice coefficient per image and class.

    Args:
        pred: ``[B, H, W]`` or ``[B, D, H, W]`` int class indices (predicted).
        target: same shape, ground-truth class indices.
        num_classes: number of classes ``C`` including the background class 0.
        include_background: keep class 0.

    Returns:
        float32 tensor ``[B, C']`` with ``C' = C - 1`` (or ``C`` with the background), on the
        device of ``pred``. A class absent from the target scores 1.0 when also absent from the
        prediction and 0.0 otherwise.
    """
    inter, p_sum, t_sum = _overlap_counts(pred, target, num_classes, include_background)
    denom = p_sum + t_sum
    dice = torch.where(denom > 0, 2.0 * inter / denom.clamp_min(1.0), torch.ones_like(denom))
    return dice.float()


def iou_per_image(pred: Any, target: Any, num_classes: int, include_background: bool = False) -> torch.Tensor:
    """Intersection over union (Jaccard index) per image and class.

    Args and conventions as :func:`dice_per_image`; returns float32 ``[B, C']``.
    """
    inter, p_sum, t_sum = _overlap_counts(pred, target, num_classes, include_background)
    union = p_sum + t_sum - inter
    iou = torch.where(union > 0, inter / union.clamp_min(1.0), torch.ones_like(union))
    return iou.float()


def _per_image(values: Any, name: str) -> np.ndarray:
    array = as_numpy(values).astype(np.float64)
    if array.ndim == 2:
        array = array.mean(axis=1)
    if array.ndim != 1:
        raise ValueError(f"{name} must be [N] (or [N, C'] per class), got shape {array.shape}")
    return array


def segmentation_metrics(dice_values: Any, iou_values: Any, n_resamples: int = 1000, seed: int = 0) -> dict[str, Any]:
    """Mean Dice and IoU over images with 95 % bootstrap intervals.

    Args:
        dice_values: ``[N]`` per-image Dice already averaged over the foreground classes, or
            ``[N, C']`` per class (averaged over classes here).
        iou_values: same for IoU.
        n_resamples: bootstrap resamples.
        seed: bootstrap seed.

    Returns:
        ``{"dice", "dice_ci95": [lo, hi], "iou", "iou_ci95": [lo, hi], "n"}`` (NaN when N == 0).
    """
    dice = _per_image(dice_values, "dice_values")
    iou = _per_image(iou_values, "iou_values")
    if dice.shape != iou.shape:
        raise ValueError(f"dice_values and iou_values must have the same length, got {dice.shape[0]} and {iou.shape[0]}")
    n = int(dice.shape[0])
    if n == 0:
        return undefined_metrics("dice", "iou")
    return {
        "dice": float(dice.mean()),
        "dice_ci95": list(bootstrap_ci(batched_mean, dice, n_resamples=n_resamples, seed=seed, vectorized=True)),
        "iou": float(iou.mean()),
        "iou_ci95": list(bootstrap_ci(batched_mean, iou, n_resamples=n_resamples, seed=seed, vectorized=True)),
        "n": n,
    }
