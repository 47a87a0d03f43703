"""Augmentations of volumes, applied jointly to image and mask.

A volume sample (:mod:`medmtl.data.sample`) has ``"image"`` FloatTensor ``[C, D, H, W]`` =
``[C, z, y, x]`` in [0, 1] and optionally ``"mask"`` LongTensor ``[D, H, W]`` (0 = background);
scalar targets pass through untouched. Like the 2D transforms (:mod:`medmtl.data.transforms`),
these never change the input's tensors in place, and each random transform draws from the
``generator`` given to its constructor or call, else from torch's global RNG. A random transform
always makes the same draws whether or not it fires, so one seed gives one result.

Geometry:

- flips mirror x (``hflip``), y (``vflip``) or z (``zflip``); exact involutions;
- ``rot90`` turns the (y, x) plane by ``k`` x 90° from +x towards +y (clockwise on screen with y
  pointing down, as :func:`medmtl.data.transforms.rotate`); when ``H != W`` only ``k`` even
  (180°) keeps the shape, so only those are drawn;
- the affine rotates about the z axis through the volume centre by up to ``rotate_degrees`` (same
  sense as ``rot90``) and zooms isotropically by a factor in ``[1 - scale, 1 + scale]`` (> 1
  magnifies), in voxel units, so anisotropic shapes are rotated without shearing. The image is
  resampled trilinearly with ``"border"`` padding (voxels that come from outside the volume
  repeat its edge rather than inventing an intensity), the mask with nearest neighbour and zero
  (background) padding, through the same grid (``align_corners=False``).

Boxes are not defined for volumes: the geometric transforms raise a ``ValueError`` for a sample
with ``"boxes"``.

Options: ``zflip`` and ``scale`` of :class:`~medmtl.data.config.AugmentConfig` are 3D options
(the 2D :func:`~medmtl.data.transforms.build_transforms` ignores them); ``hed`` and
``elastic`` are 2D only and :func:`build_volume_transforms` rejects them.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import torch
import torch.nn.functional as F

from medmtl.data.sample import Sample, Transform
from medmtl.data.transforms import Compose, RandomIntensity, adjust_intensity, config_option, draw_uniform
from medmtl.errors import ConfigError

Axis = Literal["x", "y", "z"]
AXIS_DIMS = {"x": -1, "y": -2, "z": -3}  # the same negative dims index image [C, D, H, W] and mask [D, H, W]


def _check_volume(sample: Sample) -> None:
    image = sample["image"]
    if image.dim() != 4:
        raise ValueError(f"volume transforms need an image [C, D, H, W], got shape {tuple(image.shape)}")
    if "mask" in sample and tuple(sample["mask"].shape) != tuple(image.shape[1:]):
        raise ValueError(f"mask shape {tuple(sample['mask'].shape)} does not match image {tuple(image.shape)}")
    if "boxes" in sample:
        raise ValueError("volume transforms do not handle boxes (3D samples carry masks, not boxes)")


# ------------------------------------------------------------------------------------ flips, rot90
def flip3d(sample: Sample, axis: Axis) -> Sample:
    """Mirror along ``axis`` (``"x"``, ``"y"`` or ``"z"``), image and mask alike."""
    _check_volume(sample)
    dim = AXIS_DIMS[axis]
    out = dict(sample)
    out["image"] = sample["image"].flip(dim)
    if "mask" in sample:
        out["mask"] = sample["mask"].flip(dim)
    return out


def rot90_3d(sample: Sample, k: int) -> Sample:
    """Turn the (y, x) plane by ``k`` x 90° from +x towards +y; odd ``k`` needs ``H == W``."""
    _check_volume(sample)
    k %= 4
    height, width = sample["image"].shape[-2:]
    if k % 2 and height != width:
        raise ValueError(f"a 90° turn needs H == W, got H={height}, W={width}")
    if k == 0:
        return sample
    out = dict(sample)
    # torch.rot90 turns from its first dim towards its second: x -> y is dims (-1, -2).
    out["image"] = torch.rot90(sample["image"], k, dims=(-1, -2))
    if "mask" in sample:
        out["mask"] = torch.rot90(sample["mask"], k, dims=(-1, -2))
    return out


class RandomFlip3d(Transform):
    """Mirror along ``axis`` with probability ``p``."""

    random = True

    def __init__(self, axis: Axis, p: float = 0.5, generator: torch.Generator | None = None) -> None:
        super().__init__(generator)
        if axis not in AXIS_DIMS:
            raise ValueError(f"axis must be one of {sorted(AXIS_DIMS)}, got {axis!r}")
        self.axis = axis
        self.p = p

    def apply(self, sample: Sample, generator: torch.Generator | None) -> Sample:
        return flip3d(sample, self.axis) if draw_uniform(0, 1, generator) < self.p else sample


class RandomRot90(Transform):
    """Turn the (y, x) plane by a uniformly drawn multiple of 90° (of 180° when ``H != W``)."""

    random = True

    def __init__(self, generator: torch.Generator | None = None) -> None:
        super().__init__(generator)

    def apply(self, sample: Sample, generator: torch.Generator | None) -> Sample:
        k = int(torch.randint(0, 4, (), generator=generator))
        height, width = sample["image"].shape[-2:]
        if height != width:
            k = 2 * (k % 2)  # 0 or 2, each with probability 1/2
        return rot90_3d(sample, k)


# ------------------------------------------------------------------------------------------ affine
def affine_grid3d(shape: tuple[int, int, int], degrees: float, zoom: float) -> torch.Tensor:
    """Sampling grid ``[1, D, H, W, 3]`` (x, y, z normalised, ``align_corners=False``) of a rotation
    by ``degrees`` about the z axis and an isotropic ``zoom``, both about the volume centre."""
    depth, height, width = shape
    angle = math.radians(degrees)
    cos, sin = math.cos(angle) / zoom, math.sin(angle) / zoom
    # Output voxel q (voxel units, from the centre) samples the input at A^-1 q, A = zoom * R_z; in
    # normalised coordinates theta = N^-1 A^-1 N with N = diag(W/2, H/2, D/2) (as in 2D rotate).
    theta = torch.tensor([[cos, sin * height / width, 0.0, 0.0],
                          [-sin * width / height, cos, 0.0, 0.0],
                          [0.0, 0.0, 1.0 / zoom, 0.0]], dtype=torch.float32)
    return F.affine_grid(theta[None], [1, 1, depth, height, width], align_corners=False)


def affine3d(sample: Sample, degrees: float = 0.0, zoom: float = 1.0) -> Sample:
    """Rotate by ``degrees`` about the z axis (from +x towards +y) and zoom by ``zoom`` (> 1
    magnifies): image trilinear with border padding, mask nearest with background padding."""
    _check_volume(sample)
    if zoom <= 0:
        raise ValueError(f"zoom must be > 0, got {zoom}")
    if degrees % 360 == 0 and zoom == 1:
        return sample
    image = sample["image"]
    grid = affine_grid3d(tuple(image.shape[1:]), degrees, zoom).to(image.device)
    out = dict(sample)
    out["image"] = F.grid_sample(image[None].float(), grid, mode="bilinear", padding_mode="border",
                                 align_corners=False)[0].to(image.dtype)  # "bilinear" is trilinear on 5D input
    if "mask" in sample:
        mask = sample["mask"]
        out["mask"] = F.grid_sample(mask[None, None].float(), grid.to(mask.device), mode="nearest",
                                    padding_mode="zeros", align_corners=False)[0, 0].round().to(mask.dtype)
    return out


class RandomAffine3d(Transform):
    """Rotation about z by an angle in ``[-degrees, degrees]`` and a zoom in ``[1 - scale, 1 + scale]``
    (with probability ``p``)."""

    random = True

    def __init__(self, degrees: float = 0.0, scale: float = 0.0, p: float = 1.0,
                 generator: torch.Generator | None = None) -> None:
        super().__init__(generator)
        if not 0 <= scale < 1:
            raise ValueError(f"scale must lie in [0, 1), got {scale}")
        self.degrees = float(degrees)
        self.scale = float(scale)
        self.p = p

    def apply(self, sample: Sample, generator: torch.Generator | None) -> Sample:
        apply = draw_uniform(0, 1, generator) < self.p
        angle = draw_uniform(-self.degrees, self.degrees, generator)
        zoom = draw_uniform(1 - self.scale, 1 + self.scale, generator)
        return affine3d(sample, angle, zoom) if apply else sample


# ------------------------------------------------------------------------------------------- build
def build_volume_transforms(aug_config: Any, train: bool) -> Compose:
    """The augmentations of a volume split: the enabled ones when ``train``, else none.

    ``aug_config`` is an :class:`~medmtl.data.config.AugmentConfig`, a dict with its keys or
    ``None``. Order: x/y/z flips (p = 0.5 each), rot90, affine (``rotate_degrees``, ``scale``),
    intensity (:class:`~medmtl.data.transforms.RandomIntensity`, shape-agnostic). Asking for
    ``hed`` or ``elastic`` raises a :class:`~medmtl.errors.ConfigError`, in any split.
    """
    if float(config_option(aug_config, "hed", 0.0) or 0.0) > 0:
        raise ConfigError("data.augment.hed", "is 2D only")
    if config_option(aug_config, "elastic", False):
        raise ConfigError("data.augment.elastic", "is 2D only")
    if not train:
        return Compose([])
    transforms: list[Transform] = []
    for key, axis in (("hflip", "x"), ("vflip", "y"), ("zflip", "z")):
        if config_option(aug_config, key, False):
            transforms.append(RandomFlip3d(axis, 0.5))
    if config_option(aug_config, "rot90", False):
        transforms.append(RandomRot90())
    degrees = float(config_option(aug_config, "rotate_degrees", 0.0) or 0.0)
    scale = float(config_option(aug_config, "scale", 0.0) or 0.0)
    if degrees > 0 or scale > 0:
        transforms.append(RandomAffine3d(degrees, scale))
    strength = float(config_option(aug_config, "intensity", 0.0) or 0.0)
    if strength > 0:
        transforms.append(RandomIntensity(strength))
    return Compose(transforms)


__all__ = [
    "AXIS_DIMS", "RandomAffine3d", "RandomFlip3d", "RandomIntensity", "RandomRot90", "adjust_intensity",
    "affine3d", "affine_grid3d", "build_volume_transforms", "flip3d", "rot90_3d",
]
