"""What tasks hand to the report and to prediction files: overlay layers and a prediction sink.

These types carry no knowledge of task kinds; each task fills them in
(:meth:`~medmtl.tasks.base.Task.overlay`, :meth:`~medmtl.tasks.base.Task.write_prediction`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image


@dataclass
class Overlay:
    """One task's layer of a picture of one image: masks ``[H, W]`` (label maps), boxes ``[N, 4]``
    xyxy with scores ``[N]`` and labels ``[N]``, and a caption line — any of them may be missing."""

    true_mask: np.ndarray | None = None
    pred_mask: np.ndarray | None = None
    boxes: np.ndarray | None = None
    scores: np.ndarray | None = None
    labels: np.ndarray | None = None
    caption: str = ""


def merge_overlays(layers: list[Overlay]) -> Overlay:
    """One picture from several tasks' layers: the first mask and boxes given win, captions are joined."""
    merged = Overlay()
    for layer in layers:
        for key in ("true_mask", "pred_mask"):
            if getattr(merged, key) is None and getattr(layer, key) is not None:
                setattr(merged, key, getattr(layer, key))
        if merged.boxes is None and layer.boxes is not None:
            merged.boxes, merged.scores, merged.labels = layer.boxes, layer.scores, layer.labels
    merged.caption = "\n".join(layer.caption for layer in layers if layer.caption)
    return merged


@dataclass
class PredictionSink:
    """Where one image's predictions go.

    ``input_size`` ``(h, w)``: what the model saw; ``original_size`` ``(H, W)``: the file's size
    (None for inputs without one, e.g. slide grids), which masks and boxes are mapped back to.
    ``annotations`` and ``categories`` are shared by all images (COCO ``boxes.json``); ``overlays``
    collects this image's picture layers.
    """

    out_dir: Path
    stem: str
    image_id: int
    input_size: tuple[int, int]
    original_size: tuple[int, int] | None
    annotations: list[dict[str, Any]] = field(default_factory=list)
    categories: dict[int, str] = field(default_factory=lambda: {1: "lesion"})
    overlays: list[Overlay] = field(default_factory=list)

    #: 2 for images; :class:`VolumePredictionSink` says 3 (no boxes, masks as NIfTI)
    spatial_dims = 2

    @property
    def output_size(self) -> tuple[int, int]:
        return self.original_size or self.input_size

    def to_original(self, label_map: torch.Tensor) -> np.ndarray:
        """A label map ``[h, w]`` at the model's size as int64 ``[H, W]`` at the file's (nearest)."""
        resized = F.interpolate(label_map[None, None].float(), size=self.output_size, mode="nearest")
        return resized[0, 0].long().cpu().numpy()

    def box_scale(self) -> torch.Tensor:
        """``[4]`` factors taking xyxy boxes from the model's pixels to the file's."""
        (h, w), (height, width) = self.input_size, self.output_size
        return torch.tensor([width / w, height / h, width / w, height / h])

    def save_mask(self, mask: np.ndarray, task: str, num_classes: int) -> str:
        """Write ``masks/<stem>_<task>.png`` (classes spread over 0..255); returns its path relative to ``out_dir``."""
        path = self.out_dir / "masks" / f"{self.stem}_{task}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        scale = 255 // max(1, num_classes - 1)
        Image.fromarray((mask * scale).astype(np.uint8)).save(path)
        return str(path.relative_to(self.out_dir))

    def add_box(self, box: Any, category: int, score: float | None, task: str) -> None:
        """A COCO annotation (``bbox`` = x, y, w, h in the file's pixels) for ``boxes.json``."""
        x1, y1, x2, y2 = (float(v) for v in box)
        item: dict[str, Any] = {"id": len(self.annotations), "image_id": self.image_id, "category_id": category,
                                "bbox": [x1, y1, x2 - x1, y2 - y1], "area": (x2 - x1) * (y2 - y1),
                                "source_task": task}
        if score is not None:
            item["score"] = score
        self.annotations.append(item)


@dataclass
class VolumePredictionSink(PredictionSink):
    """Where one volume's predictions go: label maps ``[D, H, W]`` at the model's grid are mapped back
    onto the input file's grid by ``restore`` (nearest neighbour, exactly the file's spacing, origin
    and direction) and written as ``masks/<stem>_<task>.nii.gz`` by ``write`` (the caller supplies both,
    so this module needs no image library). Volumes have no COCO boxes."""

    restore: Callable[[np.ndarray], np.ndarray] | None = None
    write: Callable[[np.ndarray, Path], None] | None = None

    spatial_dims = 3

    def to_original(self, label_map: torch.Tensor) -> np.ndarray:
        """``[D, H, W]`` at the model's grid as int64 on the file's grid ``[Z, Y, X]``."""
        array = label_map.long().cpu().numpy()
        return array if self.restore is None else self.restore(array).astype(np.int64)

    def save_mask(self, mask: np.ndarray, task: str, num_classes: int) -> str:
        """Write ``masks/<stem>_<task>.nii.gz`` (class indices); returns its path relative to ``out_dir``."""
        path = self.out_dir / "masks" / f"{self.stem}_{task}.nii.gz"
        path.parent.mkdir(parents=True, exist_ok=True)
        if self.write is None:
            raise RuntimeError("VolumePredictionSink needs a write function to save masks")
        self.write(mask.astype(np.uint8 if num_classes <= 256 else np.int32), path)
        return str(path.relative_to(self.out_dir))

    def add_box(self, box: Any, category: int, score: float | None, task: str) -> None:
        raise TypeError("volumes have no 2D boxes")
