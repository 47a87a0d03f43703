"""Checks on bounding boxes (x1, y1, x2, y2 in pixels)."""

from __future__ import annotations

import torch

from medmtl.errors import DataError


def check_boxes(boxes: torch.Tensor, height: int, width: int, source: str) -> None:
    """Raise :class:`DataError` naming ``source`` for boxes outside the image or with no area."""
    if boxes.numel() == 0:
        return
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise DataError(source, f"boxes must have shape [N, 4] (x1, y1, x2, y2), got {list(boxes.shape)}")
    if not torch.isfinite(boxes).all():
        raise DataError(source, "a box holds NaN or infinity")
    flat = (boxes[:, 2] <= boxes[:, 0]) | (boxes[:, 3] <= boxes[:, 1])
    if flat.any():
        raise DataError(source, f"box {boxes[flat][0].tolist()} has zero or negative area (need x2 > x1, y2 > y1)")
    outside = (boxes[:, 0] < 0) | (boxes[:, 1] < 0) | (boxes[:, 2] > width) | (boxes[:, 3] > height)
    if outside.any():
        raise DataError(source, f"box {boxes[outside][0].tolist()} lies (partly) outside the {width}×{height} image")
