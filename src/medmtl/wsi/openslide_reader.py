"""Reading pyramidal whole-slide formats (.svs, .tif, .ndpi, .mrxs, ...) with OpenSlide."""

from __future__ import annotations

import functools
import math
import threading
from pathlib import Path
from types import ModuleType

import numpy as np

from medmtl.errors import DataError


@functools.cache
def load_openslide() -> tuple[ModuleType | None, str | None]:
    """``(openslide, None)``, imported at first use, or ``(None, why)`` when it cannot be imported
    (openslide-python/openslide-bin of the optional extra ``wsi`` missing or broken: then only the
    tifffile reader is left)."""
    try:
        import openslide
    except ImportError as exc:
        return None, str(exc)
    return openslide, None


#: bytes of decoded tiles kept by the cache that all handles of one slide share (OpenSlide's own default
#: is 32 MiB per handle)
SHARED_CACHE_BYTES = 64 << 20
_CACHE_LOCK = threading.Lock()


class OpenSlideUnavailable(Exception):
    """OpenSlide cannot open this file (unsupported format, or the library is not installed)."""


def rgba_to_rgb_on_white(rgba: np.ndarray) -> np.ndarray:
    """``[H, W, 4]`` uint8 RGBA (straight alpha) composited on white: ``[H, W, 3]`` uint8.

    OpenSlide returns alpha 0 outside the slide and in gaps between scanned regions.
    """
    alpha = rgba[..., 3:4].astype(np.uint16)
    if bool((alpha == 255).all()):
        return np.ascontiguousarray(rgba[..., :3])
    rgb = rgba[..., :3].astype(np.uint16)
    return ((rgb * alpha + 255 * (255 - alpha) + 127) // 255).astype(np.uint8)


def _mpp_from_properties(properties: dict[str, str]) -> float | None:
    """``openslide.mpp-x`` (µm/px at level 0) when present and a positive number."""
    for key in ("openslide.mpp-x", "openslide.mpp-y"):
        text = properties.get(key)
        if text is None:
            continue
        try:
            value = float(text)
        except ValueError:
            continue
        if math.isfinite(value) and value > 0:
            return value
    return None


class OpenSlideReader:
    """A slide open in OpenSlide; ``read`` gives RGB uint8 pixels."""

    backend = "openslide"

    def __init__(self, path: Path) -> None:
        openslide, import_error = load_openslide()
        if openslide is None:
            raise OpenSlideUnavailable(f"OpenSlide is not available ({import_error}; it comes with the optional "
                                       "extra 'wsi': pip install 'medmtl[wsi]')")
        self.path = path
        try:
            self._slide = openslide.OpenSlide(str(path))
        except openslide.OpenSlideUnsupportedFormatError:
            raise OpenSlideUnavailable("OpenSlide does not recognise the format") from None
        except Exception as exc:  # OpenSlideError for damaged files of a known format
            raise OpenSlideUnavailable(f"OpenSlide cannot open it: {exc}") from None
        self.level_dimensions: list[tuple[int, int]] = [tuple(map(int, d)) for d in self._slide.level_dimensions]
        self.level_downsamples: list[float] = [float(d) for d in self._slide.level_downsamples]
        self.properties: dict[str, str] = dict(self._slide.properties)
        self.metadata_mpp = _mpp_from_properties(self.properties)
        self.vendor = self.properties.get("openslide.vendor")
        self._cache: object | None = None

    def tile_size(self, level: int) -> tuple[int, int] | None:
        """The file's tile ``(width, height)`` at ``level`` (OpenSlide's ``openslide.level[L].tile-*``)."""
        try:
            size = (int(self.properties[f"openslide.level[{level}].tile-width"]),
                    int(self.properties[f"openslide.level[{level}].tile-height"]))
        except (KeyError, ValueError):
            return None
        return size if min(size) > 0 else None

    def reopen(self) -> OpenSlideReader:
        """Another handle on the file, sharing one tile cache with this one (OpenSlide ≥ 4; with an older
        library each handle keeps its own cache)."""
        openslide, _ = load_openslide()
        sibling = OpenSlideReader(self.path)
        if hasattr(openslide, "OpenSlideCache"):
            with _CACHE_LOCK:  # handles opened from several threads get one cache
                if self._cache is None:
                    self._cache = openslide.OpenSlideCache(SHARED_CACHE_BYTES)
                    self._slide.set_cache(self._cache)
            sibling._cache = self._cache
            sibling._slide.set_cache(self._cache)
        return sibling

    def read(self, x: int, y: int, level: int, width: int, height: int) -> np.ndarray:
        """``[height, width, 3]`` uint8 RGB; ``(x, y)`` is the top-left corner in level-0 pixels."""
        try:
            region = self._slide.read_region((x, y), level, (width, height))
        except Exception as exc:
            raise DataError(self.path, f"OpenSlide cannot read the region at ({x}, {y}), level {level}, "
                                       f"size {width}x{height}: {exc}") from None
        return rgba_to_rgb_on_white(np.asarray(region))

    def close(self) -> None:
        self._slide.close()
