"""Reading plain (not OpenSlide-readable) TIFFs with tifffile, one tile or strip at a time.

A region read decodes only the tiles/strips it overlaps, so a large plain TIFF is never loaded
whole. Pyramid levels are the ones tifffile finds for the first series (reduced-resolution pages
or SubIFDs); a plain TIFF has one level.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from medmtl.errors import DataError
from medmtl.extras import require
from medmtl.wsi.openslide_reader import rgba_to_rgb_on_white

if TYPE_CHECKING:
    import tifffile

_MICRONS_PER_UNIT = {2: 25400.0, 3: 10000.0}  # TIFF ResolutionUnit: 2 = inch, 3 = centimetre
_APERIO_MPP = re.compile(r"\|\s*MPP\s*=\s*([0-9.eE+-]+)")
_SUPPORTED_PHOTOMETRIC = {"MINISBLACK", "MINISWHITE", "RGB"}
# Resolution tags outside this µm/px range are writers' defaults (1 or 72 dpi), not a microscope's.
PLAUSIBLE_MPP = (0.01, 100.0)


class TiffUnavailable(Exception):
    """tifffile cannot read this file as an image (not a TIFF, or an unsupported layout)."""


def mpp_from_tiff_page(page: tifffile.TiffPage) -> float | None:
    """µm/px from an Aperio ``MPP = ...`` description or the X resolution tags (inch or cm).

    ``None`` when neither gives a value in :data:`PLAUSIBLE_MPP` (many writers store 1 or 72 dpi).
    """
    match = _APERIO_MPP.search(page.description or "")
    if match:
        try:
            value = float(match.group(1))
        except ValueError:
            value = math.nan
        if math.isfinite(value) and value > 0:
            return value
    unit = int(page.resolutionunit)
    x_resolution = float(page.resolution[0])
    if unit in _MICRONS_PER_UNIT and math.isfinite(x_resolution) and x_resolution > 0:
        value = _MICRONS_PER_UNIT[unit] / x_resolution
        if PLAUSIBLE_MPP[0] <= value <= PLAUSIBLE_MPP[1]:
            return value
    return None


class _Level:
    """One pyramid level: a TIFF page and the grid of its tiles or strips."""

    def __init__(self, page: tifffile.TiffPage) -> None:
        self.page = page
        self.height, self.width = int(page.imagelength), int(page.imagewidth)
        if page.is_tiled:
            self.segment_height, self.segment_width = int(page.tilelength), int(page.tilewidth)
        else:
            self.segment_height, self.segment_width = min(int(page.rowsperstrip), self.height), self.width
        self.rows = math.ceil(self.height / self.segment_height)
        self.cols = math.ceil(self.width / self.segment_width)
        # tifffile gives enums for known tag values and plain ints otherwise
        photometric = getattr(page.photometric, "name", str(page.photometric))
        if photometric not in _SUPPORTED_PHOTOMETRIC:
            raise TiffUnavailable(f"colour model {photometric} is not supported (grey or RGB only)")
        self.inverted = photometric == "MINISWHITE"
        if int(page.planarconfig) != 1 and page.samplesperpixel > 1:
            raise TiffUnavailable("separate colour planes (PlanarConfiguration 2) are not supported")
        if page.dtype is None or page.dtype.kind not in "ub":
            raise TiffUnavailable(f"sample type {page.dtype} is not supported (unsigned integers only)")
        if int(page.imagedepth) != 1:
            raise TiffUnavailable("volumetric (ImageDepth > 1) pages are not supported")

    def _to_rgb(self, pixels: np.ndarray) -> np.ndarray:
        """Decoded ``[h, w, samples]`` pixels as ``[h, w, 3]`` uint8 RGB."""
        if pixels.dtype == np.bool_:
            pixels = pixels.astype(np.uint8) * 255
        elif pixels.dtype.itemsize > 1:  # keep the top 8 bits
            pixels = (pixels >> (8 * pixels.dtype.itemsize - 8)).astype(np.uint8)
        samples = pixels.shape[-1]
        if self.inverted:
            pixels = 255 - pixels
        if samples in (1, 2):  # grey (+ alpha, dropped)
            return np.repeat(pixels[..., :1], 3, axis=-1)
        if samples == 4:
            return rgba_to_rgb_on_white(pixels)
        return pixels[..., :3]

    def read(self, fh: tifffile.FileHandle, x: int, y: int, width: int, height: int) -> np.ndarray:
        """``[height, width, 3]`` uint8 of this level from level pixel ``(x, y)``; white outside."""
        out = np.full((height, width, 3), 255, dtype=np.uint8)
        x0, y0 = max(x, 0), max(y, 0)
        x1, y1 = min(x + width, self.width), min(y + height, self.height)
        if x0 >= x1 or y0 >= y1:
            return out
        rows = range(y0 // self.segment_height, (y1 - 1) // self.segment_height + 1)
        cols = range(x0 // self.segment_width, (x1 - 1) // self.segment_width + 1)
        indices = [r * self.cols + c for r in rows for c in cols]
        offsets = [self.page.dataoffsets[i] for i in indices]
        counts = [self.page.databytecounts[i] for i in indices]
        decode = self.page.decode
        for data, index in fh.read_segments(offsets, counts, indices=indices, sort=True, flat=True):
            if data is None:  # sparse file: a missing tile reads as background
                continue
            segment = decode(data, index, jpegtables=self.page.jpegtables, jpegheader=self.page.jpegheader,
                             _fullsize=self.page.is_tiled)[0]
            if segment is None:
                continue
            segment = segment.reshape(segment.shape[-3:])  # [depth=1, h, w, s] -> [h, w, s]
            top, left = (index // self.cols) * self.segment_height, (index % self.cols) * self.segment_width
            sy0, sy1 = max(y0, top), min(y1, top + segment.shape[0])
            sx0, sx1 = max(x0, left), min(x1, left + segment.shape[1])
            if sy0 >= sy1 or sx0 >= sx1:
                continue
            out[sy0 - y:sy1 - y, sx0 - x:sx1 - x] = self._to_rgb(segment[sy0 - top:sy1 - top, sx0 - left:sx1 - left])
        return out


class TiffReader:
    """A TIFF open in tifffile; ``read`` gives RGB uint8 pixels like :class:`OpenSlideReader`."""

    backend = "tifffile"

    def __init__(self, path: Path) -> None:
        tifffile = require("tifffile", feature="reading whole-slide images")
        self.path = path
        try:
            self._tif = tifffile.TiffFile(path)
        except Exception as exc:  # TiffFileError, struct.error, ValueError, ...
            raise TiffUnavailable(f"not a TIFF file ({exc})") from None
        try:
            self._levels = self._find_levels()
            self._levels[0].read(self._tif.filehandle, 0, 0, 1, 1)  # fails early on a missing codec
        except TiffUnavailable:
            self._tif.close()
            raise
        except Exception as exc:
            self._tif.close()
            raise TiffUnavailable(f"tifffile cannot decode it: {exc}") from None
        base = self._levels[0]
        self.level_dimensions: list[tuple[int, int]] = [(lv.width, lv.height) for lv in self._levels]
        self.level_downsamples: list[float] = [
            (base.width / lv.width + base.height / lv.height) / 2.0 for lv in self._levels]
        self.metadata_mpp = mpp_from_tiff_page(base.page)
        self.properties: dict[str, str] = {}
        self.vendor = None

    def _find_levels(self) -> list[_Level]:
        if not self._tif.series:
            raise TiffUnavailable("the TIFF holds no image")
        tifffile = require("tifffile", feature="reading whole-slide images")
        levels: list[_Level] = []
        for series_level in self._tif.series[0].levels:
            page = series_level.keyframe
            if not isinstance(page, tifffile.TiffPage) or page.shape is None:
                continue
            level = _Level(page)
            if levels and (level.width >= levels[-1].width or level.height >= levels[-1].height):
                continue  # not a smaller copy of the image above it
            levels.append(level)
        if not levels or 0 in (levels[0].width, levels[0].height):
            raise TiffUnavailable("the TIFF holds no 2D image")
        return levels

    def tile_size(self, level: int) -> tuple[int, int]:
        """``(width, height)`` of the tiles (or strips) of ``level``."""
        return self._levels[level].segment_width, self._levels[level].segment_height

    def reopen(self) -> TiffReader:
        """Another handle on the file (tifffile's file handle is not shared between threads)."""
        return TiffReader(self.path)

    def read(self, x: int, y: int, level: int, width: int, height: int) -> np.ndarray:
        """``[height, width, 3]`` uint8 RGB; ``(x, y)`` is the top-left corner in level-0 pixels."""
        downsample = self.level_downsamples[level]
        try:
            return self._levels[level].read(self._tif.filehandle, int(x // downsample), int(y // downsample),
                                            width, height)
        except Exception as exc:
            raise DataError(self.path, f"tifffile cannot read the region at ({x}, {y}), level {level}, "
                                       f"size {width}x{height}: {exc}") from None

    def close(self) -> None:
        self._tif.close()
