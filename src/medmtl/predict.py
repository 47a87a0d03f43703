"""Run a trained model on image files and write its predictions to a folder.

Writes ``predictions.json`` (per image: class probabilities, regression values, risk scores),
``masks/<image>_<task>.png`` (label maps at the original image size) and ``boxes.json``
(COCO-style boxes of the predicted lesions, one per connected component of each mask).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from medmtl.config import RunConfig
from medmtl.data.image_io import boxes_from_mask, read_image
from medmtl.io_utils import atomic_write_json
from medmtl.model import MultiTaskModel
from medmtl.progress import progress
from medmtl.tasks import ReconstructionTask, SegmentationTask


@torch.no_grad()
def predict_files(config: RunConfig, model: MultiTaskModel, images: list[Path], out_dir: Path) -> dict[str, Any]:
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "masks").mkdir(exist_ok=True)
    size = config.data.image_size
    results: dict[str, Any] = {}
    coco_images, coco_annotations = [], []
    for image_id, path in enumerate(progress(images, description="predicting")):
        array = read_image(path, config.data.channels)
        height, width = array.shape[-2:]
        tensor = F.interpolate(torch.from_numpy(array)[None], size=(size, size), mode="bilinear", align_corners=False)
        predictions = model.predict(tensor)
        entry: dict[str, Any] = {}
        coco_images.append({"id": image_id, "file_name": str(path), "height": height, "width": width})
        for name, task in model.tasks.items():
            value = predictions[name]
            if isinstance(task, ReconstructionTask):
                continue
            if isinstance(task, SegmentationTask):
                mask = _resize_label_map(value[0], height, width)
                mask_path = out_dir / "masks" / f"{path.stem}_{name}.png"
                scale = 255 // max(1, task.num_classes - 1)
                Image.fromarray((mask * scale).astype(np.uint8)).save(mask_path)
                entry[name] = {"mask": str(mask_path.relative_to(out_dir)),
                               "foreground_fraction": float((mask > 0).mean())}
                for box in boxes_from_mask(mask > 0):
                    x1, y1, x2, y2 = (float(v) for v in box)
                    coco_annotations.append({"id": len(coco_annotations), "image_id": image_id, "category_id": 1,
                                             "bbox": [x1, y1, x2 - x1, y2 - y1], "area": (x2 - x1) * (y2 - y1),
                                             "source_task": name})
            else:
                entry[name] = value[0].tolist()
        results[str(path)] = entry
    atomic_write_json(out_dir / "predictions.json", results)
    atomic_write_json(out_dir / "boxes.json", {"images": coco_images, "annotations": coco_annotations,
                                                "categories": [{"id": 1, "name": "lesion"}]})
    return results


def _resize_label_map(mask: torch.Tensor, height: int, width: int) -> np.ndarray:
    resized = F.interpolate(mask[None, None].float(), size=(height, width), mode="nearest")
    return resized[0, 0].long().numpy()
