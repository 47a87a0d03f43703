"""Preprocessing of volumes (``data.volume``, :class:`~medmtl.data.config.VolumeConfig`), with
SimpleITK as the geometry engine, jointly for an image and its mask.

1. Orientation: both are reoriented to ``orientation`` (``sitk.DICOMOrient``: a lossless
   permutation/flip of the axes; ``None`` keeps the file's).
2. One resampling of each onto the target grid (image linear, mask nearest neighbour): voxel
   size ``spacing`` (``None``: the file's), the oriented direction, and

   - ``crop: center`` / ``crop: mask``: ``shape`` ``(D, H, W)`` voxels (plus ``margin`` on both
     sides of every axis, room for random training crops), centred on the volume's centre, or on
     the centre of the mask's foreground bounding box (``mask``, when there is a mask with
     foreground; else the volume centre). A crop larger than the volume is padded;
   - ``crop: none``: the whole volume at the target spacing (as many voxels as cover its extent).

   Along axes whose spacing is unchanged the grid is aligned with the input's voxels (by less
   than half a voxel), so that a crop there is exact.

   Voxels outside the volume get ``pad_value`` (in the file's units; default: the window's low end
   for ``intensity: window``, else the volume's minimum).
3. Intensity, with statistics of the whole (oriented, not resampled) volume, per channel:
   ``window`` clips to ``window`` and scales to [0, 1]; ``minmax`` maps the 0.5 and 99.5
   percentiles to 0 and 1 (clipped); ``zscore`` subtracts the mean and divides by the standard
   deviation; ``none`` keeps the values.

Arrays are ``[C, z, y, x]`` (image) and ``[z, y, x]`` (mask); the returned
:class:`PreprocessedVolume` carries the :class:`~medmtl.data.volume_io.VolumeGeometry` of the output
grid, so that a prediction on it maps back onto the input's grid with
:func:`~medmtl.data.volume_io.resample_to_reference`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from medmtl.data.config import VolumeConfig
from medmtl.data.volume_io import VolumeGeometry, array_to_sitk, sitk_module

MINMAX_PERCENTILES = (0.5, 99.5)


@dataclass
class PreprocessedVolume:
    """``image`` float32 ``[C, z, y, x]``, ``mask`` int64 ``[z, y, x]`` (or None), both on ``geometry``."""

    image: np.ndarray
    mask: np.ndarray | None
    geometry: VolumeGeometry


def foreground_center(mask: np.ndarray, geometry: VolumeGeometry) -> np.ndarray | None:
    """Physical centre (mm, ``(x, y, z)``) of the bounding box of ``mask > 0`` (``[z, y, x]``); None if empty."""
    found = np.nonzero(np.asarray(mask) > 0)
    if not found[0].size:
        return None
    low = np.array([axis.min() for axis in found], dtype=np.float64)
    high = np.array([axis.max() for axis in found], dtype=np.float64)
    return geometry.index_to_physical(((low + high) / 2)[::-1])  # (z, y, x) -> (x, y, z)


def target_grid(geometry: VolumeGeometry, config: VolumeConfig, shape: tuple[int, int, int] | None,
                center: np.ndarray | None = None, margin: int = 0) -> VolumeGeometry:
    """The output grid for a volume on ``geometry`` (already oriented): see the module docstring.

    ``shape`` ``(D, H, W)`` (with ``margin`` voxels more on each side) is used unless ``config.crop``
    is ``"none"``; ``center`` (mm) defaults to the volume's centre. Along axes whose spacing is kept
    the grid is moved by less than half a voxel onto the input's voxels, so cropping there does not
    interpolate.
    """
    spacing = np.asarray(config.spacing if config.spacing is not None else geometry.spacing, dtype=np.float64)
    if config.crop == "none" or shape is None:
        extent = np.asarray(geometry.size) * np.asarray(geometry.spacing)
        size = np.maximum(1, np.round(extent / spacing)).astype(int)
    else:
        size = np.asarray(tuple(shape)[::-1], dtype=int) + 2 * int(margin)  # (D, H, W) -> (x, y, z)
    middle = geometry.center() if center is None else np.asarray(center, dtype=np.float64)
    origin = middle - geometry.matrix @ (spacing * (size - 1) / 2)
    # along axes whose spacing is kept, put the voxels on the input's voxel centres: a pure crop
    index = geometry.matrix.T @ (origin - np.asarray(geometry.origin)) / np.asarray(geometry.spacing)
    kept = np.isclose(spacing, geometry.spacing, rtol=1e-6, atol=0)
    index[kept] = np.round(index[kept])
    origin = geometry.index_to_physical(index)
    return VolumeGeometry(tuple(size), tuple(spacing), tuple(origin), geometry.direction)


def _resample(image, grid: VolumeGeometry, linear: bool, default: float):
    sitk = sitk_module()
    if linear:
        image = sitk.Cast(image, sitk.sitkFloat32)
    return sitk.Resample(image, grid.size, sitk.Transform(), sitk.sitkLinear if linear else sitk.sitkNearestNeighbor,
                         grid.origin, grid.spacing, grid.direction, float(default), image.GetPixelID())


def intensity(values: np.ndarray, reference: np.ndarray, config: VolumeConfig) -> np.ndarray:
    """``values`` (one channel, any shape) after ``config.intensity``, with statistics of ``reference``
    (the channel's whole volume), as float32."""
    values = values.astype(np.float32, copy=False)
    if config.intensity == "none":
        return values
    if config.intensity == "window":
        low, high = config.window
    elif config.intensity == "minmax":
        low, high = (float(v) for v in np.percentile(reference, MINMAX_PERCENTILES))
    else:  # zscore
        mean, std = float(reference.mean()), float(reference.std())
        return ((values - mean) / (std if std > 0 else 1.0)).astype(np.float32)
    if high <= low:  # a constant volume
        return np.zeros_like(values)
    return np.clip((values - low) / (high - low), 0.0, 1.0).astype(np.float32)


def pad_value(reference: np.ndarray, config: VolumeConfig) -> float:
    """The value of voxels outside the volume, in the file's units (see :class:`VolumeConfig`)."""
    if config.pad_value is not None:
        return float(config.pad_value)
    if config.intensity == "window":
        return float(config.window[0])
    return float(reference.min()) if reference.size else 0.0


def preprocess_volume(image: np.ndarray, geometry: VolumeGeometry, config: VolumeConfig,
                      shape: tuple[int, int, int] | None, mask: np.ndarray | None = None,
                      margin: int = 0) -> PreprocessedVolume:
    """``image`` ``[z, y, x]`` or ``[C, z, y, x]`` and ``mask`` ``[z, y, x]`` (on ``geometry``, the
    file's grid) oriented, resampled once onto the target grid and intensity-normalised.

    ``shape`` is ``(D, H, W)`` = ``data.image_shape``; ``margin`` voxels are added on each side of
    every axis (random training crops of ``shape`` are then cut from the result). See the module
    docstring for the steps.
    """
    sitk = sitk_module()
    channels = np.asarray(image)
    if channels.ndim == 3:
        channels = channels[None]
    images = [array_to_sitk(channel, geometry) for channel in channels]
    mask_image = array_to_sitk(np.asarray(mask), geometry) if mask is not None else None
    if config.orientation is not None:
        images = [sitk.DICOMOrient(item, config.orientation) for item in images]
        if mask_image is not None:
            mask_image = sitk.DICOMOrient(mask_image, config.orientation)
    oriented = VolumeGeometry.from_sitk(images[0])
    center = None
    if config.crop == "mask" and mask_image is not None:
        center = foreground_center(sitk.GetArrayViewFromImage(mask_image), oriented)
    grid = target_grid(oriented, config, shape, center, margin if config.crop != "none" else 0)
    out = []
    for item in images:
        reference = sitk.GetArrayViewFromImage(item)
        resampled = sitk.GetArrayFromImage(_resample(item, grid, True, pad_value(reference, config)))
        out.append(intensity(resampled, reference, config))
    out_mask = None
    if mask_image is not None:
        out_mask = sitk.GetArrayFromImage(_resample(mask_image, grid, False, 0)).astype(np.int64)
    return PreprocessedVolume(np.stack(out).astype(np.float32, copy=False), out_mask, grid)
