"""A dataset of records that yields sample dicts with whatever targets each record has."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence

import numpy as np
import torch

from medmtl.data.boxes import box_targets_from_mask, check_boxes
from medmtl.data.image_io import array_to_chw, image_size, read_image, read_mask
from medmtl.data.record_dataset import RecordDataset
from medmtl.data.records import Record
from medmtl.data.sample import Sample
from medmtl.data.transforms import resize
from medmtl.data.volume_io import is_volume_path
from medmtl.errors import DataError


def _check_not_volume(record: Record) -> None:
    """A :class:`DataError` when a record of a 2D dataset is a volume (by file ending or array shape)."""
    hint = "this is a 2D model: set model.spatial_dims: 3 (and a data.volume section) to train on volumes"
    if record.image_path is not None and is_volume_path(record.image_path):
        raise DataError(record.image_path, f"is a volume file (NIfTI, NRRD or MetaImage); {hint}")
    for path in record.mask_paths:
        if is_volume_path(path):
            raise DataError(path, f"mask is a volume file (NIfTI, NRRD or MetaImage); {hint}")
    if record.image_array is not None:
        shape = np.shape(record.image_array)
        if len(shape) == 4 or (len(shape) == 3 and shape[-1] not in (1, 2, 3, 4)):
            raise DataError(record.source, f"image array of shape {tuple(shape)} holds a volume ([D, H, W] or "
                                           f"[C, D, H, W]), not a 2D image [H, W] / [H, W, C]; {hint}")


def _size_text(shape: Sequence[int]) -> str:
    height, width = shape[-2:]
    return f"{width}x{height} (width x height)"


class MultiTaskDataset(RecordDataset):
    """Samples of ``records``: ``"image"`` ``[channels, H, W]`` in [0, 1] (``image_size``: an int for
    square images or ``(H, W)``), ``"name"``
    and the targets each record has (``label``, ``mask``, ``boxes``/``box_labels``, ``value``,
    ``survival``; see :mod:`medmtl.data.collate`).

    Images are decoded, checked against their masks (a mask whose size differs from its image's is a
    :class:`DataError` naming the mask file and both sizes) and resized (bilinear image, nearest
    mask). With ``boxes_from_masks`` (for a detection task) a sample with a mask also gets
    ``boxes``/``box_labels`` from the resized mask, one box per connected component with its class
    (:func:`~medmtl.data.boxes.box_targets_from_mask`); without it, only records that give boxes
    and no mask have boxes (scaled with the image). With ``cache_images`` the
    decoded, resized tensors are kept in memory, so epochs after the first decode nothing. The
    ``transform`` (augmentation) runs on every access, after the cache. Returned tensors are fresh
    copies: changing them does not change the cache.

    Volumes (a NIfTI/NRRD/MHA file, an in-memory ``[D, H, W]`` array) are a :class:`DataError`
    saying to set ``model.spatial_dims: 3`` (:class:`~medmtl.data.volume_dataset.VolumeDataset`).
    """

    spatial_dims = 2

    def __init__(self, records: Sequence[Record], channels: int = 1, image_size: int | Sequence[int] = 128,
                 transform: Callable[[Sample], Sample] | None = None, cache_images: bool = True,
                 boxes_from_masks: bool = False) -> None:
        if channels not in (1, 3):
            raise ValueError(f"channels must be 1 or 3, got {channels}")
        shape = (int(image_size),) * 2 if isinstance(image_size, (int, np.integer)) else tuple(map(int, image_size))
        if len(shape) != 2 or min(shape) < 1:
            raise ValueError(f"image_size must be a positive int or (height, width), got {image_size}")
        self.records = list(records)
        for record in self.records:
            _check_not_volume(record)
        self.channels = channels
        #: ``(height, width)`` of the samples; ``image_size``: an int for square images, else the pair
        self.image_shape: tuple[int, int] = shape
        self.image_size = shape[0] if shape[0] == shape[1] else shape
        self.transform = transform
        self.cache_images = cache_images
        self.boxes_from_masks = boxes_from_masks
        self._cache: dict[int, Sample] = {}

    def __repr__(self) -> str:
        return (f"MultiTaskDataset({len(self)} samples, channels={self.channels}, image_size={self.image_size}, "
                f"targets={self.available_targets()})")

    # ------------------------------------------------------------------------------ no decoding
    def available_targets(self) -> dict[str, int]:
        """How many samples have each target key (from the records; decodes nothing)."""
        counts: Counter[str] = Counter()
        for record in self.records:
            counts.update(record.available_targets(self.boxes_from_masks))
        return dict(sorted(counts.items()))

    def source_size(self, index: int) -> tuple[int, int]:
        """``(height, width)`` of sample ``index``'s image as stored, before resizing (reads the header only)."""
        record = self.records[index]
        if record.image_path is not None:
            return image_size(record.image_path)
        return tuple(np.asarray(record.image_array).shape[:2])

    # --------------------------------------------------------------------------------- decoding
    def _decode(self, record: Record) -> Sample:
        """Image, mask and boxes at ``image_size`` (what the cache holds)."""
        if record.image_path is not None:
            image = read_image(record.image_path, self.channels)
        else:
            image = array_to_chw(record.image_array, self.channels, record.source)
        base: Sample = {"image": torch.from_numpy(np.ascontiguousarray(image))}
        mask = self._decode_mask(record, image.shape)
        if mask is not None:
            base["mask"] = torch.from_numpy(mask.astype(np.int64))
        elif record.targets.get("boxes") is not None:  # boxes given without a mask: scaled with the image
            boxes = np.asarray(record.targets["boxes"], dtype=np.float32).reshape(-1, 4)
            labels = record.targets.get("box_labels")
            labels = np.ones(len(boxes), dtype=np.int64) if labels is None else np.asarray(labels, dtype=np.int64)
            check_boxes(torch.from_numpy(boxes), image.shape[-2], image.shape[-1], record.source)
            base["boxes"] = torch.from_numpy(boxes)
            base["box_labels"] = torch.from_numpy(labels.reshape(-1))
        base = resize(base, self.image_shape)
        if "mask" in base and self.boxes_from_masks:
            base["boxes"], base["box_labels"] = box_targets_from_mask(base["mask"])
        return base

    def _decode_mask(self, record: Record, image_shape: Sequence[int]) -> np.ndarray | None:
        height, width = image_shape[-2:]
        if record.mask_paths:
            merged = np.zeros((height, width), dtype=bool)
            for path in record.mask_paths:
                mask = read_mask(path)
                if mask.shape != (height, width):
                    raise DataError(path, f"mask size {_size_text(mask.shape)} differs from the size "
                                          f"{_size_text((height, width))} of its image {record.source}")
                merged |= mask
            if record.expects_lesion and not merged.any():
                raise DataError(record.mask_paths[0], f"mask has no foreground, but image {record.source} is "
                                                      "labelled as showing a lesion; fix or remove the annotation")
            return merged.astype(np.int64)
        if record.mask_array is not None:
            mask = np.asarray(record.mask_array)
            if mask.ndim != 2 or mask.shape != (height, width):
                raise DataError(record.source, f"mask size {_size_text(mask.shape)} differs from the image size "
                                               f"{_size_text((height, width))}")
            if mask.dtype == np.bool_:
                return mask.astype(np.int64)
            if mask.min() < 0:
                raise DataError(record.source, "mask holds negative class indices")
            return mask.astype(np.int64)
        return None

    def _base(self, index: int) -> Sample:
        cached = self._cache.get(index)
        if cached is not None:
            return cached
        base = self._decode(self.records[index])
        if self.cache_images:
            self._cache[index] = base
        return base

    def __getitem__(self, index: int) -> Sample:
        record = self.records[index]
        base = self._base(index)
        sample: Sample = {key: value.clone() for key, value in base.items()}
        sample["name"] = record.name
        sample.update(target_tensors(record))
        if self.transform is not None:
            sample = self.transform(sample)
        return sample

    def clear_cache(self) -> None:
        self._cache.clear()


def target_tensors(record: Record) -> Sample:
    """The record's non-image targets as tensors (``label``, ``survival``, values…)."""
    out: Sample = {}
    for key, value in record.targets.items():
        if value is None:
            continue
        if key == "label":
            out[key] = torch.tensor(int(value), dtype=torch.long)
        elif key == "survival":
            time, event = value
            out[key] = torch.tensor([float(time), float(event)], dtype=torch.float32)
        elif key in ("boxes", "box_labels"):
            continue  # decoded (and resized) with the image
        else:
            array = np.asarray(value)
            dtype = torch.long if np.issubdtype(array.dtype, np.integer) and key != "value" else torch.float32
            out[key] = torch.as_tensor(array).to(dtype)
    return out
