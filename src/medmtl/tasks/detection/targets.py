"""Detection targets from a batch: boxes, lesion classes and per-instance masks."""

from __future__ import annotations

from typing import Any, Literal

import torch

from medmtl.data.boxes import check_boxes
from medmtl.errors import DataError

LabelSource = Literal["boxes", "image_label"]


def instance_masks(semantic: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
    """``[N, H, W]`` uint8: the foreground of ``semantic [H, W]`` inside each box.

    Boxes come from connected components of the mask, so each box holds its own component (and
    at most pieces of touching neighbours, which RoIAlign crops to the box anyway).
    """
    foreground = semantic > 0
    masks = torch.zeros((len(boxes), *semantic.shape), dtype=torch.uint8, device=semantic.device)
    for i, (x1, y1, x2, y2) in enumerate(boxes.tolist()):
        rows = slice(max(0, int(y1)), int(-(-y2 // 1)))
        cols = slice(max(0, int(x1)), int(-(-x2 // 1)))
        masks[i, rows, cols] = foreground[rows, cols]
    return masks


def build_targets(batch: dict[str, Any], num_classes: int, label_source: LabelSource = "boxes",
                  label_key: str = "label", box_key: str = "boxes", mask_key: str | None = "mask",
                  task_name: str = "detection") -> dict[int, dict[str, torch.Tensor]]:
    """``{row: {"boxes" [N, 4], "labels" [N] in 1..num_classes, "masks" [N, H, W]?}}`` for the
    rows of ``batch`` that have boxes (an image with zero boxes is a negative). Instance masks come
    from the semantic mask under ``mask_key`` (None: no masks), where the row has one.

    ``label_source="image_label"`` gives every box of an image the class ``label + 1`` of the
    image (BUSI: benign → 1, malignant → 2); ``"boxes"`` keeps the per-box labels.
    """
    present = batch["present"].get(box_key)
    if present is None:
        return {}
    height, width = batch["image"].shape[-2:]
    device = batch["image"].device
    targets: dict[int, dict[str, torch.Tensor]] = {}
    for row in torch.nonzero(present).flatten().tolist():
        name = f"sample '{batch['name'][row]}'"
        boxes = batch["targets"][box_key][row].to(device=device, dtype=torch.float32).reshape(-1, 4)
        check_boxes(boxes, height, width, name)
        labels = box_classes(batch, row, len(boxes), label_source, label_key, box_key, task_name)
        if labels.numel() and (labels.min() < 1 or labels.max() > num_classes):
            raise DataError(name, f"box class {int(labels.max() if labels.max() > num_classes else labels.min())} "
                                  f"is outside 1..{num_classes} (tasks.{task_name}.num_classes)")
        target = {"boxes": boxes, "labels": labels.to(device)}
        mask_present = batch["present"].get(mask_key) if mask_key is not None else None
        if mask_present is not None and bool(mask_present[row]):
            target["masks"] = instance_masks(batch["targets"][mask_key][row].to(device), boxes)
        targets[row] = target
    return targets


def box_classes(batch: dict[str, Any], row: int, count: int, label_source: LabelSource, label_key: str = "label",
                box_key: str = "boxes", task_name: str = "detection") -> torch.Tensor:
    """Classes ``[count]`` (long) of the ``count`` boxes of ``batch`` row ``row``: the image label + 1
    with ``label_source="image_label"``, else the boxes' own labels (1 when there are none)."""
    name = f"sample '{batch['name'][row]}'"
    if label_source == "image_label":
        present = batch["present"].get(label_key)
        if present is None or not bool(present[row]):
            if count == 0:
                return torch.zeros(0, dtype=torch.long)
            raise DataError(name, f"has lesion boxes but no '{label_key}', which tasks.{task_name}.label_source="
                                  "'image_label' needs to give the boxes a class")
        return torch.full((count,), int(batch["targets"][label_key][row]) + 1, dtype=torch.long)
    labels_key = "box_labels" if box_key == "boxes" else f"{box_key}_labels"
    labels = batch["targets"].get(labels_key)
    if labels is None:
        return torch.ones(count, dtype=torch.long)
    return labels[row].long().reshape(-1)
