"""Ordinary images (PNG, JPEG, BMP, a TIFF neither OpenSlide nor tifffile reads) as one-level slides.

Histology data sets often ship fields of view as plain images (GlaS: 775×522 JPEGs at about
0.62 µm/px). :class:`ImageReader` decodes such a file once with Pillow and serves regions from
memory like the slide readers do, so tissue detection, tiling, patch extraction and compression
treat it as a slide with a single level. An ordinary image's resolution tags (JPEG/PNG/TIFF dpi)
are writers' defaults far more often than a microscope's, so only a value in
:data:`~medmtl.wsi.tiff_reader.PLAUSIBLE_MPP` is taken; otherwise the µm/px comes from
``--slide-mpp`` or a per-image ``mpp`` column (:func:`medmtl.wsi.patches.read_slide_list`).
"""

from __future__ import annotations

import copy
import warnings
from pathlib import Path

import numpy as np
from PIL import Image

from medmtl.wsi.openslide_reader import rgba_to_rgb_on_white
from medmtl.wsi.tiff_reader import PLAUSIBLE_MPP

#: suffixes tried with Pillow first (OpenSlide and tifffile do not read them)
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp"})


class ImageUnavailable(Exception):
    """Pillow cannot read this file as an image."""


def _to_rgb(image: Image.Image) -> np.ndarray:
    """Any Pillow image as ``[H, W, 3]`` uint8 RGB: transparency composited on white, 16-bit grey
    reduced to its top 8 bits."""
    if image.mode.startswith("I;16"):
        grey = (np.asarray(image, dtype=np.uint16) >> 8).astype(np.uint8)
        return np.repeat(grey[..., None], 3, axis=-1)
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        return rgba_to_rgb_on_white(np.asarray(image.convert("RGBA")))
    return np.ascontiguousarray(np.asarray(image.convert("RGB")))


def _mpp_from_dpi(image: Image.Image) -> float | None:
    dpi = image.info.get("dpi")
    try:
        value = 25400.0 / float(dpi[0]) if dpi else None
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    return value if value is not None and PLAUSIBLE_MPP[0] <= value <= PLAUSIBLE_MPP[1] else None


class ImageReader:
    """An ordinary image decoded into memory; ``read`` gives RGB uint8 pixels like the slide readers."""

    backend = "pillow"

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                with Image.open(path) as image:
                    image.load()
                    self._pixels = _to_rgb(image)
                    self.metadata_mpp = _mpp_from_dpi(image)
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise ImageUnavailable("it is too large to decode whole as an ordinary image; store it as a tiled, "
                                   "pyramidal TIFF") from None
        except Exception as exc:  # UnidentifiedImageError, OSError of a truncated file, ...
            raise ImageUnavailable(f"Pillow cannot read it ({exc})") from None
        height, width = self._pixels.shape[:2]
        self.level_dimensions: list[tuple[int, int]] = [(width, height)]
        self.level_downsamples: list[float] = [1.0]
        self.properties: dict[str, str] = {}
        self.vendor = None

    def tile_size(self, level: int) -> None:
        return None  # decoded whole when opened: no unit to align reads on

    def reopen(self) -> ImageReader:
        """A reader over the same decoded pixels (read-only: safe to share between threads)."""
        sibling = copy.copy(self)
        sibling.level_dimensions, sibling.level_downsamples = list(self.level_dimensions), [1.0]
        return sibling

    def read(self, x: int, y: int, level: int, width: int, height: int) -> np.ndarray:
        """``[height, width, 3]`` uint8 RGB from level-0 ``(x, y)``; white outside the image."""
        out = np.full((height, width, 3), 255, dtype=np.uint8)
        image_height, image_width = self._pixels.shape[:2]
        x0, y0 = max(x, 0), max(y, 0)
        x1, y1 = min(x + width, image_width), min(y + height, image_height)
        if x0 < x1 and y0 < y1:
            out[y0 - y:y1 - y, x0 - x:x1 - x] = self._pixels[y0:y1, x0:x1]
        return out

    def close(self) -> None:
        self._pixels = np.empty((0, 0, 3), np.uint8)
