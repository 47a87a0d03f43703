"""Per-image Dice / IoU against MONAI's compute_dice / compute_iou (ignore_empty=False)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from monai.metrics import compute_dice, compute_iou

from medmtl.metrics import dice_per_image, iou_per_image, segmentation_metrics


def _one_hot(mask: torch.Tensor, num_classes: int) -> torch.Tensor:
    """``[B, *spatial]`` → ``[B, C, *spatial]`` float."""
    return F.one_hot(mask, num_classes).movedim(-1, 1).float()


def _masks(shape: tuple[int, ...], num_classes: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    target = torch.randint(0, num_classes, shape, generator=g)
    pred = torch.where(torch.rand(shape, generator=g) < 0.7, target, torch.randint(0, num_classes, shape, generator=g))
    # Empty cases: image 0 has no foreground anywhere; in image 1 class 1 is absent from the target
    # but predicted; in image 2 class 1 is absent from both.
    pred[0] = 0
    target[0] = 0
    target[1][target[1] == 1] = 0
    pred[1].view(-1)[:3] = 1
    target[2][target[2] == 1] = 0
    pred[2][pred[2] == 1] = 0
    return pred, target


@pytest.mark.parametrize("shape", [(5, 16, 16), (4, 6, 8, 8)], ids=["2d", "3d"])
@pytest.mark.parametrize("num_classes", [2, 4])
@pytest.mark.parametrize("include_background", [False, True])
def test_matches_monai(shape: tuple[int, ...], num_classes: int, include_background: bool) -> None:
    pred, target = _masks(shape, num_classes, seed=num_classes + len(shape))
    kwargs = {"include_background": include_background, "ignore_empty": False}
    ref_dice = compute_dice(_one_hot(pred, num_classes), _one_hot(target, num_classes), **kwargs)
    ref_iou = compute_iou(_one_hot(pred, num_classes), _one_hot(target, num_classes), **kwargs)
    dice = dice_per_image(pred, target, num_classes, include_background=include_background)
    iou = iou_per_image(pred, target, num_classes, include_background=include_background)
    expected_c = num_classes if include_background else num_classes - 1
    assert dice.shape == iou.shape == (shape[0], expected_c)
    assert dice.dtype == torch.float32
    torch.testing.assert_close(dice, ref_dice.float(), atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(iou, ref_iou.float(), atol=1e-6, rtol=1e-6)


def test_empty_conventions() -> None:
    target = torch.zeros(2, 4, 4, dtype=torch.long)
    pred = torch.zeros(2, 4, 4, dtype=torch.long)
    pred[1, 0, 0] = 1
    assert dice_per_image(pred, target, 2).flatten().tolist() == [1.0, 0.0]
    assert iou_per_image(pred, target, 2).flatten().tolist() == [1.0, 0.0]


def test_known_values_and_numpy_input() -> None:
    target = np.zeros((1, 4, 4), dtype=np.int64)
    target[0, :2, :2] = 1  # 4 pixels
    pred = np.zeros((1, 4, 4), dtype=np.int64)
    pred[0, :2, :] = 1  # 8 pixels, 4 overlap
    assert dice_per_image(pred, target, 2).item() == pytest.approx(2 * 4 / 12)
    assert iou_per_image(pred, target, 2).item() == pytest.approx(4 / 8)


def test_bad_inputs_raise() -> None:
    a = torch.zeros(2, 4, 4, dtype=torch.long)
    with pytest.raises(ValueError, match="same shape"):
        dice_per_image(a, a[:, :3], 2)
    with pytest.raises(ValueError, match="class indices"):
        dice_per_image(a + 2, a, 2)
    with pytest.raises(ValueError):
        iou_per_image(a[0, 0], a[0, 0], 2)


def test_segmentation_metrics_summary() -> None:
    rng = np.random.default_rng(0)
    dice = rng.uniform(0.5, 1.0, 40)
    iou = dice / (2 - dice)
    out = segmentation_metrics(dice, iou, n_resamples=200, seed=1)
    assert set(out) == {"dice", "dice_ci95", "iou", "iou_ci95", "n"}
    assert out["n"] == 40
    assert out["dice"] == pytest.approx(dice.mean())
    assert out["iou"] == pytest.approx(iou.mean())
    assert out["dice_ci95"][0] < out["dice"] < out["dice_ci95"][1]
    assert out["iou_ci95"][0] < out["iou"] < out["iou_ci95"][1]
    per_class = np.stack([dice, dice ** 2], axis=1)  # [N, C'] is averaged over classes first
    out2 = segmentation_metrics(per_class, per_class, n_resamples=50)
    assert out2["dice"] == pytest.approx(per_class.mean(axis=1).mean())
    empty = segmentation_metrics(np.array([]), np.array([]), n_resamples=10)
    assert empty["n"] == 0 and math.isnan(empty["dice"])
