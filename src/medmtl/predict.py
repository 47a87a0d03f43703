"""Run a trained model on input files and write its predictions to a folder.

Inputs go through the same preprocessing as the run's evaluation data (:func:`medmtl.data.build.
inference_dataset`: image files are read, converted to the run's channels and resized like the
training images; a slide-level model's grid stores are centre-cropped like its validation grids).
Each task writes its own entries and files (``Task.write_prediction``); this module only
collects them:

- ``predictions.json``: per input, each task's entry (class probabilities, regression values, risk
  scores, a segmentation's mask file, a detection task's image-level probability and detections…);
- ``masks/<image>_<task>.png``: label maps at the original image size;
- ``boxes.json``: COCO-style (``images``, ``annotations`` with ``bbox`` = x, y, w, h in original
  pixels, ``score`` and ``category_id``; ``categories``);
- ``overlays/<image>.png``: the image with what the tasks drew on it (boxes, mask outline, captions).

Volumes (``model.spatial_dims: 3``; NIfTI, NRRD, MHA inputs) go through the run's volume
preprocessing; a volume larger than the training size is predicted with a sliding window
(:func:`medmtl.sliding_window.sliding_window_predict`: dense heads stitched with Gaussian weights,
per-volume heads averaged over the windows). Masks are written as ``masks/<volume>_<task>.nii.gz``
on exactly the input's grid (spacing, origin, direction), the overlay shows three orthogonal
slices through the predicted lesion, and there are no COCO boxes.

``model`` is a :class:`~medmtl.model.MultiTaskModel` or an exported model that behaves like one
(:class:`medmtl.exported.OnnxRuntimeModel`, ``medmtl predict --backend onnxruntime``): both go
through the code below, so they write the same files.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from medmtl.config import RunConfig
from medmtl.data.build import inference_dataset
from medmtl.io_utils import atomic_write_json
from medmtl.model import MultiTaskModel
from medmtl.progress import progress
from medmtl.tasks.outputs import PredictionSink, VolumePredictionSink, merge_overlays


@torch.no_grad()
def predict_files(config: RunConfig, model: MultiTaskModel, inputs: list[Path], out_dir: Path,
                  overlays: bool = True, window: tuple[int, ...] | None = None, overlap: float = 0.25) -> dict[str, Any]:
    """Predict every input and write the files above; returns the contents of ``predictions.json``.

    Volumes larger than ``window`` (default: the training size, ``data.image_size``) are predicted by a
    sliding window of that size whose neighbours overlap by the fraction ``overlap``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    dataset = inference_dataset(config.data, inputs)
    results: dict[str, Any] = {}
    coco_images: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    categories = {1: "lesion"}
    model.eval()
    volumes = getattr(dataset, "spatial_dims", 2) == 3
    for index, path in enumerate(progress(inputs, description="predicting")):
        image = dataset[index]["image"][None]
        if volumes:
            sink = _volume_sink(dataset, index, out_dir, Path(path), image)
            predictions = _predict_volume(model, image, window or config.data.image_shape, overlap)
        else:
            original = dataset.source_size(index)
            sink = PredictionSink(out_dir, Path(path).stem, index, tuple(image.shape[-2:]), original, annotations,
                                  categories)
            predictions = model.predict(image)
        entry = {}
        for name, task in model.tasks.items():
            value = task.write_prediction(predictions[name], sink)
            if value is not None:
                entry[name] = value
        results[str(path)] = entry
        if volumes:
            if overlays:
                _draw_volume(path, config, sink, out_dir / "overlays" / f"{sink.stem}.png")
        elif original is not None:
            coco_images.append({"id": index, "file_name": str(path), "height": original[0], "width": original[1]})
            if overlays:
                _draw(path, config, sink, out_dir / "overlays" / f"{Path(path).stem}.png")
    atomic_write_json(out_dir / "predictions.json", results)
    atomic_write_json(out_dir / "boxes.json", {"images": coco_images, "annotations": annotations,
                                                "categories": [{"id": k, "name": v} for k, v in categories.items()]})
    return results


def _volume_sink(dataset: Any, index: int, out_dir: Path, path: Path, image: torch.Tensor) -> VolumePredictionSink:
    """The sink of one volume: masks are resampled from the model's grid onto the file's and written there."""
    from medmtl.data.volume_io import resample_to_reference, volume_stem, write_volume

    original, grid = dataset.geometry(index)
    return VolumePredictionSink(out_dir, volume_stem(path), index, tuple(image.shape[2:]), dataset.source_size(index),
                                restore=lambda array: resample_to_reference(array, grid, original),
                                write=lambda array, target: write_volume(array, original, target))


def _predict_volume(model: MultiTaskModel, image: torch.Tensor, roi_size: tuple[int, ...],
                    overlap: float = 0.25) -> dict[str, Any]:
    """Postprocessed predictions of one volume ``[1, C, D, H, W]``: one pass when it is no larger than
    the window ``roi_size``, else a sliding window of that size."""
    from medmtl.sliding_window import predict_volume

    return predict_volume(model, image, roi_size, overlap=overlap, whole_volume_voxels=int(np.prod(roi_size)))


def _draw_volume(path: Path, config: RunConfig, sink: VolumePredictionSink, out_png: Path) -> None:
    """Three orthogonal slices of the input volume (on its own grid) through the predicted lesion."""
    from medmtl.data.volume_io import read_volume
    from medmtl.report.plots import plot_volume_overlays

    volume, _ = read_volume(path)
    layer = merge_overlays(sink.overlays)
    low, high = np.percentile(volume, [0.5, 99.5])
    shown = np.clip((volume - low) / (high - low), 0, 1) if high > low else np.zeros_like(volume)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    plot_volume_overlays(shown[None, None], [None], [layer.pred_mask], [layer.caption], out_png)


def _draw(path: Path, config: RunConfig, sink: PredictionSink, out_png: Path) -> None:
    """The input at its own size with the tasks' layers (the file read as the model's channels)."""
    from medmtl.data.image_io import read_image
    from medmtl.report.plots import plot_prediction  # matplotlib only when drawing

    layer = merge_overlays(sink.overlays)
    plot_prediction(_display(read_image(path, config.data.channels)), out_png, layer.boxes, layer.scores,
                    layer.labels, layer.pred_mask, layer.caption)


def _display(array: np.ndarray) -> np.ndarray:
    low, high = float(array.min()), float(array.max())
    return (array - low) / (high - low) if high > low else np.zeros_like(array)
