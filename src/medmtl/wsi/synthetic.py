"""Synthetic labelled whole-slide images: pyramidal tiled TIFFs that OpenSlide opens.

Each pyramid level is its own TIFF page (levels after the first marked NewSubfileType = reduced
image), tiled and deflate (zlib) compressed, which is what OpenSlide's generic-tiff driver reads
as a multi-level slide; levels written as SubIFDs, or without the reduced-image flag, are not
seen by OpenSlide. µm/px is stored in the TIFF resolution tags (pixels per centimetre, unit
centimetre), which OpenSlide 4 reports as ``openslide.mpp-x``/``mpp-y``. Tiles are rendered
one at a time from a procedural scene (:mod:`medmtl.wsi.scene`) and streamed to tifffile, so a
40,000 x 40,000 slide is written without ever holding a level in memory.

Content: pink tissue blobs with purple nuclei on white; the slide ``label`` sets the density of
large dark "tumour" nuclei (0 = few, 1 = many) and ``value`` is that density (tumour nuclei per
10,000 µm² of tissue), a continuous regression target.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from medmtl.errors import ConfigError
from medmtl.extras import require
from medmtl.io_utils import atomic_write_text
from medmtl.progress import progress
from medmtl.wsi.levels import check_mpp
from medmtl.wsi.scene import SlideScene, make_scene

COMPRESSIONS = ("zlib", "none")  # JPEG would need the imagecodecs package
ZLIB_LEVEL = 3  # about 3x faster than the default 6 for 5 % larger files
_BIGTIFF_BYTES = 2**31  # classic TIFF offsets are 32-bit; switch to BigTIFF well before that
# tifffile collects this many bytes of raw tiles before compressing them in threads (default 512 MB)
_ENCODE_BUFFER_BYTES = 16 * 2**20


@dataclass(frozen=True)
class SyntheticSlideInfo:
    """What was written: file, level-0 size, ``label``, ``value`` (tumour nuclei per 10,000 µm² of
    tissue), µm/px at level 0, seed, ``level_dimensions`` ``(width, height)`` and nominal
    ``level_downsamples`` of the pyramid, and the slide's ``tissue_fraction``."""

    path: Path
    width: int
    height: int
    label: int
    value: float
    mpp: float
    seed: int
    level_dimensions: tuple[tuple[int, int], ...]
    level_downsamples: tuple[float, ...]
    tissue_fraction: float


def pyramid_levels(width: int, height: int, tile: int, levels: int | None = None,
                   level_factor: int = 2) -> list[tuple[int, int, float]]:
    """``(width, height, downsample)`` of each level; by default levels are added while the next
    one is still at least one tile on its shorter side."""
    result = [(width, height, 1.0)]
    while levels is None or len(result) < levels:
        downsample = float(level_factor ** len(result))
        w, h = math.ceil(width / downsample), math.ceil(height / downsample)
        if levels is None and min(w, h) < tile:
            break
        if min(w, h) < 1:
            break
        result.append((w, h, downsample))
    return result


def level_tiles(scene: SlideScene, width: int, height: int, downsample: float, tile: int) -> Iterator[np.ndarray]:
    """The tiles of one level in row-major order, rendered one at a time: uint8 ``[<=tile, <=tile, 3]``."""
    for top in range(0, height, tile):
        for left in range(0, width, tile):
            yield scene.render(left, top, min(tile, width - left), min(tile, height - top), downsample)


def _check_args(width: int, height: int, label: int, tile: int, levels: int | None, level_factor: int,
                compression: str) -> None:
    for key, value in (("width", width), ("height", height)):
        if not isinstance(value, (int, np.integer)) or value < 1:
            raise ConfigError(key, f"must be a positive whole number of pixels, not {value!r}")
    if label not in (0, 1):
        raise ConfigError("label", f"must be 0 or 1, not {label!r}")
    if not isinstance(tile, (int, np.integer)) or tile < 16 or tile % 16:
        raise ConfigError("tile", f"must be a multiple of 16 (TIFF tiles), not {tile!r}")
    if levels is not None and (not isinstance(levels, (int, np.integer)) or levels < 1):
        raise ConfigError("levels", f"must be a positive whole number or None, not {levels!r}")
    if not isinstance(level_factor, (int, np.integer)) or level_factor < 2:
        raise ConfigError("level_factor", f"must be a whole number of at least 2, not {level_factor!r}")
    if compression not in COMPRESSIONS:
        raise ConfigError("compression", f"must be one of {', '.join(COMPRESSIONS)}, not {compression!r}")


def make_synthetic_slide(path: str | Path, width: int, height: int, label: int, seed: int, mpp: float = 0.5,
                         tile: int = 256, levels: int | None = None, level_factor: int = 2,
                         n_blobs: int | None = None, tumour_density: float | None = None,
                         compression: str = "zlib", show_progress: bool = False,
                         maxworkers: int = 1) -> SyntheticSlideInfo:
    """Write a pyramidal tiled TIFF of a synthetic H&E-like slide (see the module docstring).

    ``levels`` (default: down to about one tile) levels, each ``level_factor`` times smaller than
    the one before. ``n_blobs=0`` gives an all-background slide. ``maxworkers`` threads compress
    tiles (tifffile then buffers about 16 MB of tiles; with 1, one tile at a time). The file is
    written under a temporary name and renamed when complete.
    """
    _check_args(width, height, label, tile, levels, level_factor, compression)
    mpp = check_mpp(mpp)
    tifffile = require("tifffile", feature="writing synthetic whole-slide images")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    scene = make_scene(int(width), int(height), int(label), int(seed), mpp, n_blobs, tumour_density)
    pyramid = pyramid_levels(int(width), int(height), int(tile), levels, int(level_factor))
    description = (f"medmtl synthetic slide; label={scene.label}; tumour_density={scene.tumour_density:.6f}; "
                   f"seed={scene.seed}; mpp={mpp}")
    bigtiff = sum(w * h * 3 for w, h, _ in pyramid) >= _BIGTIFF_BYTES
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with tifffile.TiffWriter(temporary, bigtiff=bigtiff) as writer:
            for index, (w, h, downsample) in enumerate(pyramid):
                tiles: Iterator[np.ndarray] = level_tiles(scene, w, h, downsample, tile)
                if show_progress:
                    count = math.ceil(w / tile) * math.ceil(h / tile)
                    tiles = progress(tiles, description=f"{path.name} level {index}", total=count)
                pixels_per_cm = 1e4 / (mpp * downsample)
                writer.write(
                    tiles, shape=(h, w, 3), dtype=np.uint8, tile=(tile, tile), photometric="rgb",
                    compression=None if compression == "none" else compression,
                    compressionargs={"level": ZLIB_LEVEL} if compression == "zlib" else None,
                    maxworkers=maxworkers, buffersize=_ENCODE_BUFFER_BYTES,
                    resolution=(pixels_per_cm, pixels_per_cm), resolutionunit="CENTIMETER",
                    subfiletype=1 if index else 0,
                    description=description if index == 0 else None,
                    # no tifffile JSON description: a second ImageDescription tag would confuse readers
                    metadata=None, software="medmtl")
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return SyntheticSlideInfo(path=path, width=int(width), height=int(height), label=scene.label,
                              value=scene.tumour_density, mpp=mpp, seed=int(seed),
                              level_dimensions=tuple((w, h) for w, h, _ in pyramid),
                              level_downsamples=tuple(d for _, _, d in pyramid),
                              tissue_fraction=scene.tissue_fraction())


def make_synthetic_dataset(folder: str | Path, n_slides: int, width: int = 4096, height: int = 3072,
                           seed: int = 0, mpp: float = 0.5, tile: int = 256, csv_name: str = "labels.csv",
                           show_progress: bool = True) -> Path:
    """Write ``n_slides`` synthetic slides (labels balanced, in random order) and a CSV of them.

    The CSV (``folder/csv_name``) has the columns ``image`` (file name, relative to the CSV's
    folder as :func:`medmtl.data.read_manifest` expects), ``label`` (0/1) and ``value`` (tumour
    nuclei per 10,000 µm² of tissue). Slide ``i`` uses seed ``seed * 100003 + i``. Returns the
    CSV's path.
    """
    if not isinstance(n_slides, (int, np.integer)) or n_slides < 1:
        raise ConfigError("n_slides", f"must be a positive whole number, not {n_slides!r}")
    folder = Path(folder)
    rng = np.random.default_rng([seed, 2])
    labels = rng.permutation(np.arange(n_slides) % 2)
    lines = ["image,label,value"]
    indices = range(n_slides)
    for i in progress(indices, description="synthetic slides") if show_progress else indices:
        name = f"slide_{i:04d}.tif"
        info = make_synthetic_slide(folder / name, width, height, int(labels[i]), seed * 100003 + i, mpp, tile)
        lines.append(f"{name},{info.label},{info.value:.6f}")
    csv_path = folder / csv_name
    atomic_write_text(csv_path, "\n".join(lines) + "\n")
    return csv_path
