"""A whole-slide image: pyramid levels, µm/px, region reads and thumbnails.

:func:`open_slide` tries OpenSlide first (pyramidal .svs, .tif, .ndpi, .mrxs, ...), falls back
to tifffile for plain TIFFs that OpenSlide refuses (for example untiled RGB TIFFs) and, for a
TIFF, then to Pillow; ordinary images (PNG, JPEG, BMP…) go to Pillow directly (:mod:`medmtl.wsi.image_reader`:
one level, decoded into memory). Any other file is a :class:`~medmtl.errors.DataError` that names
it and says why.

Coordinates follow OpenSlide: ``x, y`` of a region are level-0 pixels, its ``width, height``
pixels of the level read. Pixels come back as ``[H, W, 3]`` uint8 RGB; areas outside the slide
(or transparent in it) are white.
"""

from __future__ import annotations

import math
from pathlib import Path
from types import TracebackType

import numpy as np
from PIL import Image

from medmtl.errors import ConfigError, DataError
from medmtl.wsi.image_reader import IMAGE_SUFFIXES, ImageReader, ImageUnavailable
from medmtl.wsi.levels import check_mpp, level_for_downsample, level_to_level0
from medmtl.wsi.openslide_reader import OpenSlideReader, OpenSlideUnavailable
from medmtl.wsi.tiff_reader import TiffReader, TiffUnavailable

# Rows of a level read at once when shrinking a whole level (bounds memory for huge levels).
_BAND_PIXELS = 8_000_000


class Slide:
    """An open whole-slide image (use :func:`open_slide`; close it or use ``with``).

    ``mpp`` is the µm per pixel at level 0: the ``mpp=`` given to :func:`open_slide` when given
    (it overrides the file), else the file's metadata (OpenSlide's ``openslide.mpp-x``, or for the
    tifffile fallback an Aperio ``MPP =`` description or the TIFF resolution tags), else ``None``.
    """

    def __init__(self, path: Path, reader: OpenSlideReader | TiffReader | ImageReader, mpp: float | None = None) -> None:
        self.path = path
        self._reader = reader
        self.backend: str = reader.backend
        self.properties: dict[str, str] = reader.properties
        self.vendor: str | None = reader.vendor
        self.metadata_mpp: float | None = reader.metadata_mpp
        self.mpp: float | None = mpp if mpp is not None else reader.metadata_mpp
        self.mpp_source: str | None = "argument" if mpp is not None else ("metadata" if self.mpp else None)
        self._closed = False

    # --- geometry -------------------------------------------------------------------------
    @property
    def level_count(self) -> int:
        return len(self._reader.level_dimensions)

    @property
    def level_dimensions(self) -> list[tuple[int, int]]:
        """``(width, height)`` of each level, level 0 (full resolution) first."""
        return list(self._reader.level_dimensions)

    @property
    def level_downsamples(self) -> list[float]:
        """Level-0 pixels per level pixel, ``1.0`` for level 0."""
        return list(self._reader.level_downsamples)

    @property
    def dimensions(self) -> tuple[int, int]:
        """``(width, height)`` of level 0."""
        return self._reader.level_dimensions[0]

    def level_mpp(self, level: int) -> float:
        """µm/px of ``level`` (needs :attr:`mpp`)."""
        self._check_level(level)
        return self._require_mpp() * self.level_downsamples[level]

    def level_for_mpp(self, target_mpp: float, tolerance: float = 0.1) -> tuple[int, float]:
        """``(level, extra)``: read ``level`` and shrink it by ``extra`` to get ``target_mpp``.

        ``tolerance`` is relative: a level within 10 % of the target is used as is (``extra`` is
        then exactly 1.0). Raises :class:`DataError` when the slide has no µm/px (pass ``mpp=`` to
        :func:`open_slide`) or when ``target_mpp`` is finer than level 0 beyond the tolerance.
        """
        target = check_mpp(target_mpp, "target_mpp")
        if not (math.isfinite(tolerance) and tolerance >= 0):
            raise ConfigError("tolerance", f"must be a non-negative number, not {tolerance!r}")
        mpp = self._require_mpp()
        if mpp > target * (1.0 + tolerance):
            raise DataError(self.path, f"{target:g} µm/px is not available: level 0 has {mpp:g} µm/px "
                                       f"(finest), and the tolerance is {tolerance:.0%}")
        return level_for_downsample(self.level_downsamples, target / mpp, tolerance)

    def tile_size(self, level: int) -> tuple[int, int] | None:
        """``(width, height)`` of the unit the file is decoded in at ``level`` (a tile; a strip for a
        striped TIFF), or None when it has none (an ordinary image, decoded whole when opened)."""
        self._check_level(level)
        return self._reader.tile_size(level)

    # --- pixels ---------------------------------------------------------------------------
    def read_region(self, x: int, y: int, level: int, width: int, height: int) -> np.ndarray:
        """``[height, width, 3]`` uint8 RGB of ``level``, top-left corner at level-0 ``(x, y)``."""
        self._check_open()
        self._check_level(level)
        if int(width) != width or int(height) != height or width < 1 or height < 1:
            raise DataError(self.path, f"region size must be positive whole pixels, not {width}x{height}")
        return self._reader.read(int(x), int(y), level, int(width), int(height))

    def read_level_region(self, level: int, x: int, y: int, width: int, height: int) -> np.ndarray:
        """Like :meth:`read_region` but with ``(x, y)`` in pixels of ``level`` itself."""
        self._check_level(level)
        downsample = self.level_downsamples[level]
        return self.read_region(level_to_level0(x, downsample), level_to_level0(y, downsample), level, width, height)

    def read_downsampled(self, downsample: float) -> tuple[np.ndarray, float]:
        """The whole slide shrunk about ``downsample`` times: ``([H, W, 3] uint8, exact downsample)``.

        Reads the coarsest level not coarser than ``downsample`` and averages blocks of
        ``k x k`` of its pixels (``k`` a whole number) band by band, so a single-level slide is
        never held in memory whole. The exact downsample is level-0 pixels per output pixel
        (``level_downsample * k``); the last row/column of blocks may be partial (the mean of the
        pixels it has).
        """
        self._check_open()
        if not (math.isfinite(downsample) and downsample > 0):
            raise ConfigError("downsample", f"must be a positive number, not {downsample!r}")
        level, extra = level_for_downsample(self.level_downsamples, max(float(downsample), 1.0))
        # a hair of slack so that 32 / 2.0005 (a level downsample just above 2) still gives 16
        factor = max(1, int(math.floor(extra * 1.005)))
        width, height = self.level_dimensions[level]
        if factor == 1:
            return self.read_level_region(level, 0, 0, width, height), self.level_downsamples[level]
        out = np.empty((math.ceil(height / factor), math.ceil(width / factor), 3), dtype=np.uint8)
        band = max(factor, (_BAND_PIXELS // width) // factor * factor)
        for top in range(0, height, band):
            rows = min(band, height - top)
            pixels = self.read_level_region(level, 0, top, width, rows)
            out[top // factor:(top + rows + factor - 1) // factor] = _block_mean(pixels, factor)
        return out, self.level_downsamples[level] * factor

    def thumbnail(self, max_size: int) -> np.ndarray:
        """The whole slide as ``[H, W, 3]`` uint8 RGB with its longer side ``max_size`` pixels.

        The aspect ratio is kept; a slide smaller than ``max_size`` is not enlarged.
        """
        if int(max_size) != max_size or max_size < 1:
            raise ConfigError("max_size", f"must be a positive whole number of pixels, not {max_size!r}")
        width, height = self.dimensions
        scale = min(1.0, max_size / max(width, height))
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        image, _ = self.read_downsampled(1.0 / scale)
        if (image.shape[1], image.shape[0]) == size:
            return image
        return np.asarray(Image.fromarray(image).resize(size, Image.Resampling.LANCZOS))

    # --- life cycle -----------------------------------------------------------------------
    def reopen(self) -> Slide:
        """Another handle on the same file, for another reading thread, sharing what can be shared: an
        ordinary image's decoded pixels, OpenSlide's tile cache (tiles one thread decoded serve the
        others). The µm/px is this handle's."""
        self._check_open()
        return Slide(self.path, self._reader.reopen(), self.mpp if self.mpp_source == "argument" else None)

    def close(self) -> None:
        if not self._closed:
            self._reader.close()
            self._closed = True

    def __enter__(self) -> Slide:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.close()

    def __repr__(self) -> str:
        mpp = f"{self.mpp:g} µm/px" if self.mpp else "no µm/px"
        return (f"Slide('{self.path}', {self.backend}, {self.dimensions[0]}x{self.dimensions[1]}, "
                f"{self.level_count} levels, {mpp})")

    # --- checks ---------------------------------------------------------------------------
    def _check_open(self) -> None:
        if self._closed:
            raise DataError(self.path, "slide is closed")

    def _check_level(self, level: int) -> None:
        if not isinstance(level, (int, np.integer)) or not 0 <= level < self.level_count:
            raise DataError(self.path, f"level {level!r} does not exist; the slide has levels 0 to "
                                       f"{self.level_count - 1}")

    def _require_mpp(self) -> float:
        if self.mpp is None:
            raise DataError(self.path, "has no µm/px (mpp) metadata: give it with --slide-mpp (e.g. 0.5 for a 20x "
                                       "scan), an 'mpp' column in the slide CSV, or open_slide(path, mpp=...)")
        return self.mpp


def _block_mean(pixels: np.ndarray, factor: int) -> np.ndarray:
    """``[H, W, 3]`` uint8 averaged over ``factor x factor`` blocks: ``[ceil(H / f), ceil(W / f), 3]``; a
    partial block at the bottom or right edge averages the pixels it has. Pillow's ``reduce`` (C, about
    7× faster than a NumPy block mean on a 6-megapixel level: it sets the pace of tissue detection on
    single-level slides)."""
    return np.asarray(Image.fromarray(np.ascontiguousarray(pixels)).reduce(factor))


def open_slide(path: str | Path, mpp: float | None = None) -> Slide:
    """Open a whole-slide image with OpenSlide, or with tifffile when OpenSlide refuses a TIFF.

    ``mpp`` (µm per level-0 pixel) overrides the file's metadata; give it for slides without one.
    Raises :class:`DataError` naming the file when it is missing or no reader can open it.
    """
    path = Path(path)
    if mpp is not None:
        mpp = check_mpp(mpp)
    if not path.exists():
        raise DataError(path, "file does not exist")
    if path.is_dir():
        raise DataError(path, "is a folder, not a slide file")
    if path.suffix.lower() in IMAGE_SUFFIXES:
        try:
            return Slide(path, ImageReader(path), mpp)
        except ImageUnavailable as exc:
            raise DataError(path, f"cannot be read as an image: {exc}") from None
    try:
        return Slide(path, OpenSlideReader(path), mpp)
    except OpenSlideUnavailable as exc:
        openslide_reason = str(exc)
    try:
        return Slide(path, TiffReader(path), mpp)
    except TiffUnavailable as exc:
        tiff_reason = str(exc)
    if path.suffix.lower() in (".tif", ".tiff"):  # e.g. a JPEG-compressed layout tifffile has no codec for
        try:
            return Slide(path, ImageReader(path), mpp)
        except ImageUnavailable as exc:
            tiff_reason += f"; nor can Pillow as an ordinary image: {exc}"
    raise DataError(path, f"cannot be read as a whole-slide image: {openslide_reason}, and tifffile "
                          f"cannot read it either: {tiff_reason}")
