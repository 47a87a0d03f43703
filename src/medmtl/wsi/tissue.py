"""Tissue detection: which parts of a slide hold tissue, on a low-resolution image.

Stained tissue is coloured while glass and background are white or grey, so the HSV saturation
separates them: ``"otsu_saturation"`` thresholds it with Otsu's method (floored at
``min_saturation`` so that an all-background slide, whose saturation is only noise, gives an
empty mask), ``"fixed_saturation"`` with a given ``threshold``. Optional morphological cleanup
closes small gaps, removes specks and fills holes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy import ndimage
from skimage.color import rgb2hsv
from skimage.filters import threshold_otsu
from skimage.morphology import disk, remove_small_objects

from medmtl.errors import ConfigError
from medmtl.wsi.slide import Slide

TissueMethod = Literal["otsu_saturation", "fixed_saturation"]
METHODS: tuple[str, ...] = ("otsu_saturation", "fixed_saturation")


@dataclass(frozen=True)
class TissueConfig:
    """How to find tissue.

    - ``method``: ``"otsu_saturation"`` or ``"fixed_saturation"``.
    - ``threshold``: saturation in [0, 1] above which a pixel is tissue (``fixed_saturation``).
    - ``min_saturation``: lower bound of the Otsu threshold (background noise stays background).
    - ``downsample``: level-0 pixels per mask pixel, about (32 at 0.5 µm/px: 16 µm mask pixels).
    - ``closing_radius``, ``opening_radius``: disk radii in mask pixels (0 = skip).
    - ``min_object_pixels``: tissue pieces smaller than this (mask pixels) are dropped.
    - ``fill_holes``: fill holes enclosed by tissue.
    """

    method: TissueMethod = "otsu_saturation"
    threshold: float | None = None
    min_saturation: float = 0.05
    downsample: float = 32.0
    closing_radius: int = 1
    opening_radius: int = 0
    min_object_pixels: int = 4
    fill_holes: bool = True

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ConfigError("tissue.method", f"must be one of {', '.join(METHODS)}, not {self.method!r}")
        if self.method == "fixed_saturation":
            if self.threshold is None or not 0.0 <= self.threshold <= 1.0:
                raise ConfigError("tissue.threshold", "fixed_saturation needs a threshold in [0, 1], "
                                                      f"not {self.threshold!r}")
        if not 0.0 <= self.min_saturation <= 1.0:
            raise ConfigError("tissue.min_saturation", f"must be in [0, 1], not {self.min_saturation!r}")
        if not self.downsample >= 1.0:
            raise ConfigError("tissue.downsample", f"must be at least 1, not {self.downsample!r}")
        for key in ("closing_radius", "opening_radius", "min_object_pixels"):
            value = getattr(self, key)
            if int(value) != value or value < 0:
                raise ConfigError(f"tissue.{key}", f"must be a non-negative whole number, not {value!r}")


@dataclass(frozen=True)
class TissueMask:
    """A tissue mask: ``mask`` is bool ``[H, W]``; one mask pixel covers ``downsample`` level-0
    pixels along each axis (mask pixel ``(r, c)`` starts at level-0 ``(c * downsample, r * downsample)``).
    ``threshold`` is the saturation threshold used."""

    mask: np.ndarray
    downsample: float
    threshold: float

    @property
    def tissue_fraction(self) -> float:
        """Fraction of mask pixels that are tissue."""
        return float(self.mask.mean()) if self.mask.size else 0.0


def saturation(rgb: np.ndarray) -> np.ndarray:
    """HSV saturation of ``[H, W, 3]`` uint8 RGB: float ``[H, W]`` in [0, 1]."""
    return rgb2hsv(np.asarray(rgb))[..., 1]


def tissue_mask_from_rgb(rgb: np.ndarray, config: TissueConfig = TissueConfig()) -> tuple[np.ndarray, float]:
    """``(mask, threshold)``: bool ``[H, W]`` tissue mask of ``[H, W, 3]`` uint8 RGB pixels."""
    sat = saturation(rgb)
    if config.method == "fixed_saturation":
        threshold = float(config.threshold)  # type: ignore[arg-type]
    elif sat.size and float(sat.max()) > float(sat.min()):
        threshold = max(float(threshold_otsu(sat)), config.min_saturation)
    else:  # constant image: nothing to separate
        threshold = max(float(sat.max()) if sat.size else 0.0, config.min_saturation)
    mask = sat > threshold
    return clean_mask(mask, config), threshold


def clean_mask(mask: np.ndarray, config: TissueConfig) -> np.ndarray:
    """Closing, opening, small-object removal and hole filling of a bool ``[H, W]`` mask."""
    if not mask.any():
        return mask
    if config.closing_radius:
        # pad so that the erosion half of the closing does not eat tissue touching the border
        pad = config.closing_radius
        padded = np.pad(mask, pad, mode="edge")
        mask = ndimage.binary_closing(padded, structure=disk(config.closing_radius))[pad:-pad, pad:-pad]
    if config.opening_radius:
        mask = ndimage.binary_opening(mask, structure=disk(config.opening_radius))
    if config.min_object_pixels > 1:
        mask = remove_small_objects(mask, max_size=config.min_object_pixels - 1)
    if config.fill_holes:
        mask = ndimage.binary_fill_holes(mask)
    return np.asarray(mask, dtype=bool)


def detect_tissue(slide: Slide, config: TissueConfig = TissueConfig()) -> TissueMask:
    """The tissue mask of a slide at about ``config.downsample`` (see :class:`TissueMask`)."""
    image, downsample = slide.read_downsampled(config.downsample)
    mask, threshold = tissue_mask_from_rgb(image, config)
    return TissueMask(mask=mask, downsample=downsample, threshold=threshold)
