"""Augmentations applied consistently to a sample's image, mask and boxes.

A transform (:class:`~medmtl.data.sample.Transform`) maps a sample dict (``"image"`` ``[C, H, W]`` float in [0, 1], optional ``"mask"``
``[H, W]`` long, ``"boxes"`` ``[N, 4]`` xyxy pixels, ``"box_labels"`` ``[N]``) to a new dict; the
input's tensors are never changed in place (datasets cache them).

Geometry: the image is resampled bilinearly and the mask with nearest neighbour through the same
sampling grid. Boxes follow exactly for flips and resizing; after a rotation or an elastic
deformation they are recomputed from the transformed mask when the sample has one (one box per
connected component; likewise after resizing), else a rotation maps the box corners and keeps
their bounds clipped to the image and resizing scales them. Boxes of zero area are dropped together with their labels.

Randomness: each random transform draws from the ``generator`` given to its constructor or call,
else from torch's global RNG (which Lightning and the DataLoader workers seed), so the same sample
with the same seed gives the same result.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F

from medmtl.data.boxes import box_targets_from_mask
from medmtl.data.sample import Sample, Transform
from medmtl.data.stain import RandomHEDJitter


def draw_uniform(low: float, high: float, generator: torch.Generator | None) -> float:
    """A uniform draw in [low, high) from ``generator`` (else torch's global RNG)."""
    return low + (high - low) * float(torch.rand((), generator=generator))


def _keep_nonempty_boxes(out: Sample, boxes: torch.Tensor) -> None:
    """Store ``boxes`` in ``out``, dropping zero-area ones and their labels."""
    keep = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
    out["boxes"] = boxes[keep]
    if "box_labels" in out:
        out["box_labels"] = out["box_labels"][keep]


def _recompute_boxes(out: Sample, original: Sample) -> None:
    """``out``'s boxes (and labels) from its transformed mask, in the dtypes of ``original``'s."""
    boxes, labels = box_targets_from_mask(out["mask"], original.get("box_labels"))
    out["boxes"] = boxes.to(original["boxes"].dtype)
    if "box_labels" in original:
        out["box_labels"] = labels.to(original["box_labels"].dtype)


class Compose(Transform):
    """Apply transforms in order (the generator, when given, is passed to each)."""

    def __init__(self, transforms: Sequence[Callable[..., Sample]], generator: torch.Generator | None = None) -> None:
        super().__init__(generator)
        self.transforms = list(transforms)

    def apply(self, sample: Sample, generator: torch.Generator | None) -> Sample:
        for transform in self.transforms:
            sample = transform(sample, generator) if isinstance(transform, Transform) else transform(sample)
        return sample

    def __len__(self) -> int:
        return len(self.transforms)


# ----------------------------------------------------------------------------------------- resize
class Resize(Transform):
    """Resize to ``size`` (int = square, or (height, width)): bilinear image, nearest mask; boxes are
    scaled (recomputed from the resized mask when there is one, so that they match it exactly)."""

    def __init__(self, size: int | tuple[int, int]) -> None:
        super().__init__()
        self.size = (size, size) if isinstance(size, int) else tuple(size)

    def apply(self, sample: Sample, generator: torch.Generator | None) -> Sample:
        return resize(sample, self.size)


def resize(sample: Sample, size: tuple[int, int]) -> Sample:
    image = sample["image"]
    height, width = image.shape[-2:]
    if (height, width) == tuple(size):
        return sample
    out = dict(sample)
    out["image"] = F.interpolate(image[None].float(), size=size, mode="bilinear", align_corners=False)[0]
    if "mask" in sample:
        out["mask"] = F.interpolate(sample["mask"][None, None].float(), size=size, mode="nearest")[0, 0].to(
            sample["mask"].dtype)
    if "boxes" in sample:
        if "mask" in sample:  # exact agreement with the resized mask
            _recompute_boxes(out, sample)
        else:
            scale = torch.tensor([size[1] / width, size[0] / height] * 2, dtype=sample["boxes"].dtype)
            _keep_nonempty_boxes(out, sample["boxes"] * scale)
    return out


# ------------------------------------------------------------------------------------------ flips
def _flip(sample: Sample, dim: int) -> Sample:
    """Mirror along image axis ``dim`` (-1: left-right, -2: top-bottom); boxes follow exactly."""
    out = dict(sample)
    size = sample["image"].shape[dim]
    out["image"] = sample["image"].flip(dim)
    if "mask" in sample:
        out["mask"] = sample["mask"].flip(dim)
    if "boxes" in sample:
        low, high = (0, 2) if dim == -1 else (1, 3)  # the box columns along that axis (x or y)
        boxes = sample["boxes"].clone()
        boxes[:, low], boxes[:, high] = size - sample["boxes"][:, high], size - sample["boxes"][:, low]
        out["boxes"] = boxes
    return out


def hflip(sample: Sample) -> Sample:
    """Mirror left-right."""
    return _flip(sample, -1)


def vflip(sample: Sample) -> Sample:
    """Mirror top-bottom."""
    return _flip(sample, -2)


class RandomHorizontalFlip(Transform):
    random = True

    def __init__(self, p: float = 0.5, generator: torch.Generator | None = None) -> None:
        super().__init__(generator)
        self.p = p

    def apply(self, sample: Sample, generator: torch.Generator | None) -> Sample:
        return hflip(sample) if draw_uniform(0, 1, generator) < self.p else sample


class RandomVerticalFlip(RandomHorizontalFlip):
    def apply(self, sample: Sample, generator: torch.Generator | None) -> Sample:
        return vflip(sample) if draw_uniform(0, 1, generator) < self.p else sample


# --------------------------------------------------------------------------- resampling on a grid
def _warp(sample: Sample, grid: torch.Tensor) -> Sample:
    """Resample image (bilinear) and mask (nearest) through ``grid`` ``[1, H, W, 2]``."""
    out = dict(sample)
    image = sample["image"]
    out["image"] = F.grid_sample(image[None].float(), grid.to(image.device), mode="bilinear",
                                 padding_mode="zeros", align_corners=False)[0].to(image.dtype)
    if "mask" in sample:
        mask = sample["mask"]
        out["mask"] = F.grid_sample(mask[None, None].float(), grid.to(mask.device), mode="nearest",
                                    padding_mode="zeros", align_corners=False)[0, 0].round().to(mask.dtype)
    return out


def rotate(sample: Sample, degrees: float) -> Sample:
    """Rotate about the image centre by ``degrees`` (positive = clockwise on screen, y pointing down)."""
    if degrees % 360 == 0:
        return sample
    image = sample["image"]
    height, width = image.shape[-2:]
    angle = math.radians(degrees)
    cos, sin = math.cos(angle), math.sin(angle)
    # Output pixel q (relative to the centre) samples the input at R^-1 q, with R = [[c, -s], [s, c]];
    # in normalised coordinates theta = D^-1 R^-1 D, D = diag(W/2, H/2).
    theta = torch.tensor([[cos, sin * height / width, 0.0],
                          [-sin * width / height, cos, 0.0]], dtype=torch.float32)
    grid = F.affine_grid(theta[None], [1, 1, height, width], align_corners=False)
    out = _warp(sample, grid)
    if "boxes" in sample:
        if "mask" in sample:
            _recompute_boxes(out, sample)
        else:
            boxes = sample["boxes"].float()
            cx, cy = width / 2, height / 2
            xs = boxes[:, [0, 2, 2, 0]] - cx
            ys = boxes[:, [1, 1, 3, 3]] - cy
            rx = cos * xs - sin * ys + cx
            ry = sin * xs + cos * ys + cy
            rotated = torch.stack([rx.min(1).values.clamp(0, width), ry.min(1).values.clamp(0, height),
                                   rx.max(1).values.clamp(0, width), ry.max(1).values.clamp(0, height)], dim=1)
            _keep_nonempty_boxes(out, rotated.to(sample["boxes"].dtype))
    return out


class RandomRotation(Transform):
    """Rotate by an angle drawn uniformly from ``[-degrees, degrees]`` (with probability ``p``)."""

    random = True

    def __init__(self, degrees: float, p: float = 1.0, generator: torch.Generator | None = None) -> None:
        super().__init__(generator)
        self.degrees = float(degrees)
        self.p = p

    def apply(self, sample: Sample, generator: torch.Generator | None) -> Sample:
        apply = draw_uniform(0, 1, generator) < self.p
        angle = draw_uniform(-self.degrees, self.degrees, generator)
        return rotate(sample, angle) if apply and self.degrees > 0 else sample


# ---------------------------------------------------------------------------------------- elastic
def elastic(sample: Sample, displacement: torch.Tensor) -> Sample:
    """Deform by a displacement field ``[2, H, W]`` (dx, dy in pixels), the same for image and mask."""
    image = sample["image"]
    height, width = image.shape[-2:]
    ys = (torch.arange(height, dtype=torch.float32) + 0.5) * 2 / height - 1
    xs = (torch.arange(width, dtype=torch.float32) + 0.5) * 2 / width - 1
    grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")
    grid = torch.stack([grid_x + displacement[0] * 2 / width, grid_y + displacement[1] * 2 / height], dim=-1)
    out = _warp(sample, grid[None])
    if "boxes" in sample and "mask" in sample:
        _recompute_boxes(out, sample)
    # Without a mask the boxes are kept: the displacement is a few pixels at most.
    return out


class RandomElastic(Transform):
    """Smooth random deformation: a ``control_points`` x ``control_points`` grid of random
    displacements (up to ``magnitude`` x image size) upsampled bicubically to the image."""

    random = True

    def __init__(self, magnitude: float = 0.03, control_points: int = 5, p: float = 0.5,
                 generator: torch.Generator | None = None) -> None:
        super().__init__(generator)
        self.magnitude = magnitude
        self.control_points = control_points
        self.p = p

    def apply(self, sample: Sample, generator: torch.Generator | None) -> Sample:
        apply = draw_uniform(0, 1, generator) < self.p
        coarse = torch.rand((1, 2, self.control_points, self.control_points), generator=generator) * 2 - 1
        if not apply or self.magnitude <= 0:
            return sample
        height, width = sample["image"].shape[-2:]
        field = F.interpolate(coarse, size=(height, width), mode="bicubic", align_corners=True)[0]
        field = field * self.magnitude * torch.tensor([width, height], dtype=torch.float32)[:, None, None]
        return elastic(sample, field)


# -------------------------------------------------------------------------------------- intensity
def adjust_intensity(image: torch.Tensor, brightness: float = 0.0, contrast: float = 1.0,
                     gamma: float = 1.0) -> torch.Tensor:
    """Gamma, then contrast about the mean, then brightness shift; clamped to [0, 1]."""
    image = image.clamp(0, 1) ** gamma
    mean = image.mean()
    return ((image - mean) * contrast + mean + brightness).clamp(0, 1)


class RandomIntensity(Transform):
    """Brightness shift in ``[-s, s]``, contrast factor in ``[1-s, 1+s]``, gamma in ``[e^-s, e^s]`` (image only)."""

    random = True

    def __init__(self, strength: float = 0.1, p: float = 1.0, generator: torch.Generator | None = None) -> None:
        super().__init__(generator)
        self.strength = float(strength)
        self.p = p

    def apply(self, sample: Sample, generator: torch.Generator | None) -> Sample:
        s = self.strength
        apply = draw_uniform(0, 1, generator) < self.p
        brightness = draw_uniform(-s, s, generator)
        contrast = draw_uniform(1 - s, 1 + s, generator)
        gamma = math.exp(draw_uniform(-s, s, generator))
        if not apply or s <= 0:
            return sample
        out = dict(sample)
        out["image"] = adjust_intensity(sample["image"], brightness, max(contrast, 0.0), gamma)
        return out


# ------------------------------------------------------------------------------------------ build
def config_option(config: Any, key: str, default: Any) -> Any:
    """``config.key`` (a pydantic model or a dict; None: ``default``)."""
    if config is None:
        return default
    if isinstance(config, dict):
        return config.get(key, default)
    return getattr(config, key, default)


def build_transforms(aug_config: Any, image_size: int | tuple[int, int] | None, train: bool) -> Compose:
    """The transforms of a split: resizing to ``image_size``, plus augmentation when ``train``.

    ``aug_config`` is an :class:`~medmtl.data.config.AugmentConfig`, a dict with the same keys
    (``hflip``, ``vflip``, ``rotate_degrees``, ``intensity``, ``hed``, ``elastic``) or ``None``.
    ``hed`` (H&E stain jitter) needs 3-channel images: the first sample with another number of
    channels raises a :class:`~medmtl.errors.ConfigError`.
    """
    transforms: list[Transform] = []
    if image_size is not None:
        transforms.append(Resize(image_size))
    if not train:
        return Compose(transforms)
    if config_option(aug_config, "hflip", False):
        transforms.append(RandomHorizontalFlip(0.5))
    if config_option(aug_config, "vflip", False):
        transforms.append(RandomVerticalFlip(0.5))
    degrees = float(config_option(aug_config, "rotate_degrees", 0.0) or 0.0)
    if degrees > 0:
        transforms.append(RandomRotation(degrees))
    if config_option(aug_config, "elastic", False):
        transforms.append(RandomElastic(magnitude=float(config_option(aug_config, "elastic_magnitude", 0.03)), p=0.5))
    hed = float(config_option(aug_config, "hed", 0.0) or 0.0)
    if hed > 0:
        transforms.append(RandomHEDJitter(hed))
    strength = float(config_option(aug_config, "intensity", 0.0) or 0.0)
    if strength > 0:
        transforms.append(RandomIntensity(strength))
    return Compose(transforms)


def describe(transform: Compose | None) -> list[str]:
    """Short names of the transforms in a pipeline (for logs)."""
    return [] if transform is None else [repr(t) for t in getattr(transform, "transforms", [transform])]


__all__ = [
    "Compose", "RandomElastic", "RandomHorizontalFlip", "RandomIntensity", "RandomRotation", "RandomVerticalFlip",
    "Resize", "Transform", "adjust_intensity", "build_transforms", "elastic", "hflip",
    "resize", "rotate", "vflip",
]
