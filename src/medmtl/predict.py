"""Run a trained model on image files and write its predictions to a folder.

Writes:

- ``predictions.json``: per image, class probabilities, regression values, risk scores, and for a
  detection task the image-level probability (malignant veto) and its detections;
- ``masks/<image>_<task>.png``: label maps of segmentation tasks and the union of a detection
  task's confident masks, at the original image size;
- ``boxes.json``: COCO-style (``images``, ``annotations`` with ``bbox`` = x, y, w, h in original
  pixels, ``score`` and ``category_id``; ``categories``) — a detection task's detections, and for a
  segmentation task one box per connected component of its mask;
- ``overlays/<image>.png``: the image with the predicted boxes, mask outline and class probabilities.

For a slide-level model (``data.kind: grid``) the inputs are grid stores (``<slide>.zarr``) and
``predictions.json`` holds the class probabilities, values and risk score of each slide.
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
from medmtl.report.plots import plot_prediction
from medmtl.tasks import ClassificationTask, DetectionTask, ReconstructionTask, SegmentationTask
from medmtl.tasks.detection import Detections


@torch.no_grad()
def predict_files(config: RunConfig, model: MultiTaskModel, images: list[Path], out_dir: Path,
                  overlays: bool = True) -> dict[str, Any]:
    for folder in ("masks", *(("overlays",) if overlays else ())):
        (out_dir / folder).mkdir(parents=True, exist_ok=True)
    size = config.data.image_size
    results: dict[str, Any] = {}
    coco_images: list[dict] = []
    annotations: list[dict] = []
    categories = {1: "lesion"}
    grids = config.data.kind == "grid"
    for image_id, path in enumerate(progress(images, description="predicting")):
        if grids:  # a compressed slide: its centred grid_size × grid_size window, like evaluation
            entry = _predict_grid(config, model, path)
            results[str(path)] = entry
            continue
        array = read_image(path, config.data.channels)
        height, width = array.shape[-2:]
        tensor = F.interpolate(torch.from_numpy(array)[None], size=(size, size), mode="bilinear", align_corners=False)
        predictions = model.predict(tensor)
        coco_images.append({"id": image_id, "file_name": str(path), "height": height, "width": width})
        entry: dict[str, Any] = {}
        drawn: dict[str, Any] = {"boxes": None, "scores": None, "labels": None, "mask": None, "caption": []}
        for name, task in model.tasks.items():
            value = predictions[name]
            if isinstance(task, ReconstructionTask):
                continue
            if isinstance(task, SegmentationTask):
                mask = _resize_label_map(value[0], height, width)
                entry[name] = {"mask": _save_mask(mask, out_dir, path, name, task.num_classes),
                               "foreground_fraction": float((mask > 0).mean())}
                for box in boxes_from_mask(mask > 0):
                    annotations.append(_annotation(len(annotations), image_id, box, 1, None, name))
                drawn["mask"] = mask if drawn["mask"] is None else drawn["mask"]
            elif isinstance(task, DetectionTask):
                entry[name] = _detection_entry(task, value, out_dir, path, name, (height, width), size,
                                               image_id, annotations, drawn)
                categories.update({k: f"class {k}" for k in range(2, task.num_classes + 1)})
            else:
                entry[name] = value[0].tolist()
                if isinstance(task, ClassificationTask):
                    drawn["caption"].append(f"{name}: " + ", ".join(f"{p:.2f}" for p in value[0].tolist()))
        results[str(path)] = entry
        if overlays:
            plot_prediction(_display(array), out_dir / "overlays" / f"{path.stem}.png", drawn["boxes"],
                            drawn["scores"], drawn["labels"], drawn["mask"], "\n".join(drawn["caption"]))
    atomic_write_json(out_dir / "predictions.json", results)
    atomic_write_json(out_dir / "boxes.json", {"images": coco_images, "annotations": annotations,
                                                "categories": [{"id": k, "name": v} for k, v in categories.items()]})
    return results


def _predict_grid(config: RunConfig, model: MultiTaskModel, path: Path) -> dict[str, Any]:
    from medmtl.data.grid import GridDataset
    from medmtl.data.records import Record

    dataset = GridDataset([Record(path.name, image_path=path)], config.data.channels, config.data.grid_size)
    predictions = model.predict(dataset[0]["image"][None])
    return {name: predictions[name][0].tolist() for name, task in model.tasks.items()
            if not isinstance(task, ReconstructionTask)}


def _detection_entry(task: DetectionTask, value: Detections, out_dir: Path, path: Path, name: str,
                     original: tuple[int, int], size: int, image_id: int, annotations: list[dict],
                     drawn: dict[str, Any]) -> dict[str, Any]:
    height, width = original
    scale = torch.tensor([width / size, height / size, width / size, height / size])
    boxes = (value.boxes[0].cpu() * scale).numpy()
    scores = value.scores[0].cpu().numpy()
    labels = value.labels[0].cpu().numpy()
    detections = [{"bbox": [float(b[0]), float(b[1]), float(b[2] - b[0]), float(b[3] - b[1])], "score": float(s),
                   "label": int(k)} for b, s, k in zip(boxes, scores, labels)]
    for box, score, label in zip(boxes, scores, labels):
        annotations.append(_annotation(len(annotations), image_id, box, int(label), float(score), name))
    entry: dict[str, Any] = {"image_probability": float(value.image_scores[0]), "veto_class": task.veto_class,
                             "detections": detections}
    if value.masks is not None:
        confident = value.masks[0][value.scores[0] >= task.mask_score_thresh]
        union = (confident >= 0.5).any(dim=0) if len(confident) else torch.zeros((size, size), dtype=torch.bool)
        mask = _resize_label_map(union.long(), height, width)
        entry["mask"] = _save_mask(mask, out_dir, path, name, 2)
        drawn["mask"] = mask
    confident = scores >= task.mask_score_thresh
    drawn.update(boxes=boxes[confident], scores=scores[confident], labels=labels[confident])
    drawn["caption"].append(f"{name}: p(class {task.veto_class}) = {float(value.image_scores[0]):.2f}")
    return entry


def _annotation(index: int, image_id: int, box: Any, category: int, score: float | None, task: str) -> dict[str, Any]:
    x1, y1, x2, y2 = (float(v) for v in box)
    item = {"id": index, "image_id": image_id, "category_id": category, "bbox": [x1, y1, x2 - x1, y2 - y1],
            "area": (x2 - x1) * (y2 - y1), "source_task": task}
    if score is not None:
        item["score"] = score
    return item


def _save_mask(mask: np.ndarray, out_dir: Path, path: Path, name: str, num_classes: int) -> str:
    mask_path = out_dir / "masks" / f"{path.stem}_{name}.png"
    scale = 255 // max(1, num_classes - 1)
    Image.fromarray((mask * scale).astype(np.uint8)).save(mask_path)
    return str(mask_path.relative_to(out_dir))


def _display(array: np.ndarray) -> np.ndarray:
    low, high = float(array.min()), float(array.max())
    return (array - low) / (high - low) if high > low else np.zeros_like(array)


def _resize_label_map(mask: torch.Tensor, height: int, width: int) -> np.ndarray:
    resized = F.interpolate(mask[None, None].float(), size=(height, width), mode="nearest")
    return resized[0, 0].long().numpy()
