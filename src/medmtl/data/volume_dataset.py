"""A dataset of volume records (``model.spatial_dims: 3``): samples ``[C, D, H, W]`` with whatever
targets each record has.

- File records (NIfTI, NRRD, MHA/MHD; :mod:`medmtl.data.volume_io`) are oriented, resampled,
  cropped/padded and normalised by :func:`~medmtl.data.volume_preprocess.preprocess_volume`
  following ``volume`` (``data.volume``; its defaults when None).
- In-memory records (``Record.image_array`` ``[D, H, W]`` or ``[C, D, H, W]``, ``mask_array``
  ``[D, H, W]``: MedMNIST-3D archives, 3D phantoms) have no header: they are scaled to [0, 1] like
  2D arrays (uint8 / 255, uint16 / 65535, floats within [0, 1] kept, else min-max), then, with a
  ``volume`` section, cropped/padded (with 0) to ``image_shape`` around the array's centre (or the
  mask's, ``crop: mask``; ``crop: none`` keeps the array), without one resized to ``image_shape``
  (trilinear image, nearest mask). Spacing, orientation and intensity settings do not apply to them.

Training random crops: with ``train`` and ``volume.crop_jitter`` = ``j`` > 0 the cached volume is
``image_shape + 2j`` voxels per axis and every access cuts a random ``image_shape`` crop of it
(offsets from torch's global RNG, as the 2D transforms draw), so the crop centre moves by up to
``j`` voxels per axis; evaluation crops are central.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from medmtl.data.config import VolumeConfig
from medmtl.data.dataset import target_tensors
from medmtl.data.image_io import LUMA, _scale_to_unit
from medmtl.data.record_dataset import RecordDataset
from medmtl.data.records import BOX_TARGETS, Record
from medmtl.data.sample import Sample
from medmtl.data.volume_io import (
    VolumeGeometry,
    check_same_grid,
    read_label_volume,
    read_volume,
    read_volume_info,
)
from medmtl.data.volume_preprocess import preprocess_volume
from medmtl.errors import DataError

Shape3 = tuple[int, int, int]


def _shape3(image_shape: int | Sequence[int]) -> Shape3:
    shape = (int(image_shape),) * 3 if isinstance(image_shape, int) else tuple(int(v) for v in image_shape)
    if len(shape) != 3 or min(shape) < 1:
        raise ValueError(f"image_shape must be an int or (D, H, W) of positive sizes, got {image_shape}")
    return shape  # type: ignore[return-value]


def _text(shape: Sequence[int]) -> str:
    return "x".join(str(v) for v in shape)


def crop_or_pad(array: np.ndarray, start: Sequence[int], size: Sequence[int], value: float = 0) -> np.ndarray:
    """The box ``[start, start + size)`` of ``array``'s last three axes (``[..., z, y, x]``); parts
    outside the array are ``value``."""
    out = np.full((*array.shape[:-3], *size), value, dtype=array.dtype)
    src, dst = [], []
    for begin, length, extent in zip(start, size, array.shape[-3:]):
        low, high = max(begin, 0), min(begin + length, extent)
        if high <= low:
            return out
        src.append(slice(low, high))
        dst.append(slice(low - begin, high - begin))
    out[(..., *dst)] = array[(..., *src)]
    return out


class VolumeDataset(RecordDataset):
    """Samples of volume ``records``: ``"image"`` FloatTensor ``[channels, D, H, W]`` (= ``[C, z, y, x]``),
    ``"name"``, ``"mask"`` LongTensor ``[D, H, W]`` where the record has one, and its other targets
    (``label``, ``value``, ``survival``; boxes are 2D only). See the module docstring for the
    preprocessing. A mask file on another voxel grid than its image, or an empty mask where the
    record expects a lesion, is a :class:`DataError` naming the file(s).

    :meth:`geometry` gives the original grid and the grid of the (evaluation) sample, for mapping a
    prediction back with :func:`~medmtl.data.volume_io.resample_to_reference`. With
    ``cache_images`` the preprocessed volumes are kept in memory; ``transform`` runs on every access.
    """

    spatial_dims = 3

    def __init__(self, records: Sequence[Record], channels: int = 1, image_shape: int | Sequence[int] = (64, 64, 64),
                 volume: VolumeConfig | None = None, transform: Callable[[Sample], Sample] | None = None,
                 cache_images: bool = True, train: bool = False) -> None:
        if channels < 1:
            raise ValueError(f"channels must be positive, got {channels}")
        self.records = list(records)
        self.channels = int(channels)
        self.image_shape = _shape3(image_shape)
        self.volume = volume
        self.transform = transform
        self.cache_images = cache_images
        self.train = train
        crops = volume is not None and volume.crop != "none"
        self.margin = int(volume.crop_jitter) if crops and train else 0
        self._cache: dict[int, Sample] = {}
        self._grids: dict[int, tuple[VolumeGeometry | None, VolumeGeometry]] = {}

    def __repr__(self) -> str:
        return (f"VolumeDataset({len(self)} samples, channels={self.channels}, image_shape={self.image_shape}, "
                f"train={self.train}, targets={self.available_targets()})")

    # ------------------------------------------------------------------------------ no decoding
    def available_targets(self) -> dict[str, int]:
        """How many samples have each target key (from the records; decodes nothing)."""
        counts: Counter[str] = Counter()
        for record in self.records:
            counts.update(record.available_targets() - BOX_TARGETS)
        return dict(sorted(counts.items()))

    def source_size(self, index: int) -> Shape3:
        """``(z, y, x)`` size of sample ``index``'s volume as stored (a file's header only is read)."""
        record = self.records[index]
        if record.image_path is not None:
            return read_volume_info(record.image_path).shape
        return tuple(np.asarray(record.image_array).shape[-3:])  # type: ignore[return-value]

    def geometry(self, index: int) -> tuple[VolumeGeometry | None, VolumeGeometry]:
        """``(original, sample grid)`` of sample ``index``: the file's grid (None for in-memory
        arrays) and the grid of the evaluation sample ``[D, H, W]`` (its central crop when training
        crops are random). For in-memory arrays the sample grid is in the array's voxel frame
        (``VolumeGeometry.from_shape(source_size)``). Decodes the volume unless it was decoded before."""
        if index not in self._grids:
            self._base(index)
        return self._grids[index]

    # --------------------------------------------------------------------------------- decoding
    def _read_mask(self, record: Record, geometry: VolumeGeometry) -> np.ndarray | None:
        if record.mask_paths:
            merged = None
            for path in record.mask_paths:
                labels, mask_geometry = read_label_volume(path)
                check_same_grid(geometry, mask_geometry, record.source, path)
                merged = labels if merged is None else ((merged > 0) | (labels > 0)).astype(np.int64)
            return merged
        if record.mask_array is not None:
            return self._mask_array(record, geometry.shape)
        return None

    def _mask_array(self, record: Record, shape: Sequence[int]) -> np.ndarray:
        mask = np.asarray(record.mask_array)
        if mask.shape != tuple(shape):
            raise DataError(record.source, f"mask array of shape {tuple(mask.shape)} differs from the image's "
                                           f"{tuple(shape)} (z, y, x)")
        if mask.size and mask.dtype != np.bool_ and mask.min() < 0:
            raise DataError(record.source, "mask holds negative class indices")
        return mask.astype(np.int64)

    def _check_lesion(self, record: Record, mask: np.ndarray | None) -> None:
        if record.expects_lesion and mask is not None and not mask.any():
            where = record.mask_paths[0] if record.mask_paths else record.source
            raise DataError(where, f"mask has no foreground, but image {record.source} is labelled as showing a "
                                   "lesion; fix or remove the annotation")

    def _decode_file(self, record: Record) -> tuple[np.ndarray, np.ndarray | None, VolumeGeometry, VolumeGeometry]:
        image, geometry = read_volume(record.image_path, channels=self.channels)
        mask = self._read_mask(record, geometry)
        self._check_lesion(record, mask)
        done = preprocess_volume(image, geometry, self.volume or VolumeConfig(), self.image_shape, mask,
                                 margin=self.margin)
        return done.image, done.mask, geometry, done.geometry

    def _array_channels(self, record: Record) -> np.ndarray:
        """The in-memory image as float32 ``[channels, D, H, W]`` in [0, 1]."""
        array = np.asarray(record.image_array)
        if array.ndim == 2:
            raise DataError(record.source, f"2D image (shape {tuple(array.shape)}) given to a 3D model "
                                           "(model.spatial_dims: 3); set model.spatial_dims: 2 for 2D images")
        if array.ndim not in (3, 4):
            raise DataError(record.source, f"image array has shape {tuple(array.shape)}; expected a volume "
                                           "[D, H, W] or [C, D, H, W]")
        if array.ndim == 3:
            array = array[None]
        unit = _scale_to_unit(array[None], record.source)[0]
        found = unit.shape[0]
        if found == 1 and self.channels != 1:
            unit = np.repeat(unit, self.channels, axis=0)
        elif found == 3 and self.channels == 1:
            unit = np.tensordot(LUMA, unit, axes=1)[None]
        elif found != self.channels:
            raise DataError(record.source, f"image array has {found} channels (shape {tuple(array.shape)}, "
                                           f"[C, D, H, W]), but channels is {self.channels}")
        return np.clip(unit, 0.0, 1.0).astype(np.float32, copy=False)

    def _decode_array(self, record: Record) -> tuple[np.ndarray, np.ndarray | None, VolumeGeometry]:
        image = self._array_channels(record)
        shape = image.shape[1:]
        mask = self._mask_array(record, shape) if record.mask_array is not None else None
        self._check_lesion(record, mask)
        if self.volume is None:  # no header, no volume section: resized like 2D images
            scale = np.asarray(shape, dtype=np.float64) / np.asarray(self.image_shape)
            tensor = torch.from_numpy(image)[None]
            image = F.interpolate(tensor, size=self.image_shape, mode="trilinear", align_corners=False)[0].numpy()
            if mask is not None:
                mask = F.interpolate(torch.from_numpy(mask)[None, None].float(), size=self.image_shape,
                                     mode="nearest")[0, 0].long().numpy()
            grid = VolumeGeometry.from_shape(self.image_shape, spacing=tuple(scale[::-1]),
                                             origin=tuple((scale / 2 - 0.5)[::-1]))
            return image, mask, grid
        if self.volume.crop == "none":
            return image, mask, VolumeGeometry.from_shape(shape)
        middle = (np.asarray(shape, dtype=np.float64) - 1) / 2
        if self.volume.crop == "mask" and mask is not None and mask.any():
            found = np.nonzero(mask > 0)
            middle = np.array([(axis.min() + axis.max()) / 2 for axis in found])
        size = np.asarray(self.image_shape) + 2 * self.margin
        start = np.round(middle - (size - 1) / 2).astype(int)
        image = crop_or_pad(image, start, size, 0.0)
        if mask is not None:
            mask = crop_or_pad(mask, start, size, 0)
        return image, mask, VolumeGeometry.from_shape(size, origin=tuple(start[::-1].astype(float)))

    def _decode(self, index: int) -> Sample:
        record = self.records[index]
        original = None
        if record.image_path is not None:
            image, mask, original, grid = self._decode_file(record)
        else:
            image, mask, grid = self._decode_array(record)
        if self.margin:  # the evaluation grid: the central crop
            shift = grid.matrix @ (np.asarray(grid.spacing) * self.margin)
            grid = VolumeGeometry(tuple(np.asarray(grid.size) - 2 * self.margin), grid.spacing,
                                  tuple(np.asarray(grid.origin) + shift), grid.direction)
        self._grids[index] = (original, grid)
        base: Sample = {"image": torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))}
        if mask is not None:
            base["mask"] = torch.from_numpy(np.ascontiguousarray(mask, dtype=np.int64))
        return base

    def _base(self, index: int) -> Sample:
        cached = self._cache.get(index)
        if cached is not None:
            return cached
        base = self._decode(index)
        if self.cache_images:
            self._cache[index] = base
        return base

    def _random_crop(self, base: Sample) -> Sample:
        """A random ``image_shape`` crop of the (larger) cached volume and mask (torch's global RNG)."""
        extents = base["image"].shape[1:]
        offsets = [int(torch.randint(0, extent - size + 1, ())) for extent, size in zip(extents, self.image_shape)]
        box = tuple(slice(o, o + s) for o, s in zip(offsets, self.image_shape))
        out = {"image": base["image"][(slice(None), *box)].clone()}
        if "mask" in base:
            out["mask"] = base["mask"][box].clone()
        return out

    def __getitem__(self, index: int) -> Sample:
        record = self.records[index]
        base = self._base(index)
        if self.margin:
            sample: Sample = self._random_crop(base)
        else:
            sample = {key: value.clone() for key, value in base.items()}
        sample["name"] = record.name
        sample.update(target_tensors(record))
        if self.transform is not None:
            sample = self.transform(sample)
        return sample

    def clear_cache(self) -> None:
        self._cache.clear()
