"""Bounding boxes ``(x1, y1, x2, y2)`` in pixels: boxes from masks, and checks on boxes.

``x2``/``y2`` are exclusive (last pixel + 1). Every mask → boxes conversion of medmtl goes through
:func:`boxes_from_mask`: one box per 8-connected component.

- :func:`boxes_from_mask`: binary mask (numpy ``[H, W]``) → boxes ``[N, 4]``.
- :func:`boxes_from_label_map`: label map (numpy ``[H, W]``, 0 = background) → boxes and classes.
- :func:`box_targets_from_mask`: a sample's mask tensor → its ``boxes``/``box_labels`` tensors.
- :func:`check_boxes`: a :class:`DataError` for boxes outside the image or without area.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy import ndimage

from medmtl.errors import DataError

_EIGHT_CONNECTED = np.ones((3, 3), dtype=bool)


def boxes_from_mask(mask: np.ndarray, min_area: int = 1) -> np.ndarray:
    """One box per 8-connected component of ``mask`` ``[H, W]`` (nonzero = foreground): float32 ``[N, 4]``.

    A one-pixel component at (x, y) gives ``(x, y, x + 1, y + 1)``. Components smaller than
    ``min_area`` pixels are left out. Boxes come in the raster order of their components' first
    pixels.
    """
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"boxes_from_mask expects a 2D mask, got shape {mask.shape}")
    labels, count = ndimage.label(mask.astype(bool), structure=_EIGHT_CONNECTED)
    if count == 0:
        return np.zeros((0, 4), dtype=np.float32)
    areas = np.bincount(labels.ravel(), minlength=count + 1)[1:]
    boxes = []
    for index, found in enumerate(ndimage.find_objects(labels)):
        if found is None or areas[index] < min_area:
            continue
        rows, cols = found
        boxes.append((cols.start, rows.start, cols.stop, rows.stop))
    return np.asarray(boxes, dtype=np.float32).reshape(-1, 4)


def boxes_from_label_map(label_map: np.ndarray, min_area: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Boxes of every class of a label map ``[H, W]`` (0 = background, k > 0 = class k).

    Returns ``(boxes float32 [N, 4], labels int64 [N])``: each connected component of class ``k``
    gives one box with label ``k``; classes in increasing order, each in the order of
    :func:`boxes_from_mask`.
    """
    label_map = np.asarray(label_map)
    boxes, labels = [], []
    for value in np.unique(label_map):
        if value == 0:
            continue
        found = boxes_from_mask(label_map == value, min_area)
        boxes.append(found)
        labels.append(np.full(len(found), int(value), dtype=np.int64))
    if not boxes:
        return np.zeros((0, 4), dtype=np.float32), np.zeros((0,), dtype=np.int64)
    return np.concatenate(boxes), np.concatenate(labels)


def box_targets_from_mask(mask: torch.Tensor, previous_labels: torch.Tensor | None = None
                          ) -> tuple[torch.Tensor, torch.Tensor]:
    """A sample's ``boxes`` (float32 ``[N, 4]``) and ``box_labels`` (int64 ``[N]``) from its mask ``[H, W]``.

    Boxes and labels are those of :func:`boxes_from_label_map`, except when the mask is binary and
    the sample's boxes had all carried one label ``c`` (``previous_labels``, e.g. the image's class
    + 1, before an augmentation moved them): then every box keeps ``c``.
    """
    boxes, labels = boxes_from_label_map(mask.detach().cpu().numpy())
    boxes_t = torch.from_numpy(boxes)
    labels_t = torch.from_numpy(labels)
    if previous_labels is not None and len(previous_labels) and len(labels_t) and int(mask.max()) == 1:
        unique = torch.unique(previous_labels)
        if len(unique) == 1:
            labels_t = torch.full_like(labels_t, int(unique[0]))
    return boxes_t, labels_t


def check_boxes(boxes: torch.Tensor, height: int, width: int, source: str) -> None:
    """Raise :class:`DataError` naming ``source`` for boxes ``[N, 4]`` outside the ``height × width``
    image or with no area."""
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
