"""Patches sampled from the tissue of slides, as PNG files and a manifest for patch-encoder training.

Neural Image Compression (Tellez et al. 2020) trains its patch encoder on patches of the slides
(at 0.5 µm/px in the paper) before compressing them. :func:`extract_patches` draws up to
``patches_per_slide`` tissue patches per slide, at random without replacement, and writes

- ``out_dir/<slide stem>/<row>_<col>.png``: uint8 RGB, ``patch_size`` square; ``row, col`` is the
  patch's position in the slide's grid of non-overlapping patches (:func:`~medmtl.wsi.tile_slide`);
- ``out_dir/<slide stem>/<row>_<col>_mask.png``: the same patch of the slide's mask (input CSV
  column ``mask``: a label image of the slide's size, e.g. GlaS's gland masks), resampled by
  nearest neighbour;
- ``out_dir/patches.csv``: ``image`` (the PNG, relative to ``out_dir``), ``slide`` (the slide's
  stem, for splits that keep a slide's patches together), ``mask`` (when the input has masks) and
  the slide-level targets of the input CSV copied onto each of its patches (weak labels), which
  :func:`medmtl.data.read_manifest` reads.

An input CSV's ``mpp`` column gives each slide's level-0 µm/px (ordinary images such as PNG or
JPEG fields of view have none in the file); it wins over ``slide_mpp``, which wins over the file.

Each slide's draw is a fixed function of ``seed`` and its stem (a permutation of its tissue
patches, of which the first ``patches_per_slide`` are taken), so a re-run picks the same patches,
skips the PNG files already written (each is written atomically), and a larger
``patches_per_slide`` extends the earlier draw.
"""

from __future__ import annotations

import contextlib
import csv
import io
import logging
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from medmtl.errors import ConfigError, DataError
from medmtl.io_utils import atomic_write_bytes, atomic_write_text
from medmtl.progress import progress
from medmtl.tables import read_csv_table
from medmtl.wsi.levels import check_mpp
from medmtl.wsi.slide import Slide, open_slide
from medmtl.wsi.tiling import TileGrid, read_tile, tile_slide
from medmtl.wsi.tissue import TissueConfig, detect_tissue

log = logging.getLogger(__name__)

MANIFEST_NAME = "patches.csv"
_OWN_COLUMNS = ("image", "slide")
#: input CSV columns that describe the slide itself, not targets to copy onto its patches
_SLIDE_COLUMNS = ("image", "mask", "mpp")


@dataclass(frozen=True)
class SlideEntry:
    """One input slide: its file, the manifest row it came from (1-based; 0 for a list), its target
    cells as written (``column -> text``), its mask file and its level-0 µm/px when the CSV gives them."""

    path: Path
    row: int = 0
    targets: dict[str, str] = field(default_factory=dict)
    mask: Path | None = None
    mpp: float | None = None

    @property
    def stem(self) -> str:
        return self.path.stem


def read_slide_list(slides: str | Path | Sequence[str | Path]) -> tuple[list[SlideEntry], list[str]]:
    """``(slides, target columns)`` of a CSV (``.csv``: an ``image`` column of slide paths, relative
    to the CSV's folder; optional ``mask`` (mask images, relative the same way) and ``mpp`` (level-0
    µm/px) columns; every other column a target), a list of slide paths, or one slide path."""
    if isinstance(slides, (str, Path)) and Path(slides).suffix.lower() == ".csv":
        return _read_csv(Path(slides))
    paths = [slides] if isinstance(slides, (str, Path)) else list(slides)
    entries = [SlideEntry(Path(p).expanduser()) for p in paths]
    for entry in entries:
        if not entry.path.is_file():
            raise DataError(entry.path, "slide file does not exist" if not entry.path.exists() else "is not a file")
    _check_unique_stems(entries, None)
    return entries, []


def _read_csv(csv_path: Path) -> tuple[list[SlideEntry], list[str]]:
    table = read_csv_table(csv_path)
    columns = list(table.columns)
    if "image" not in columns:
        raise DataError(csv_path, f"has no column 'image' (slide paths); columns are {columns}")
    if "slide" in columns:
        raise DataError(csv_path, "has a column 'slide', which the patch manifest uses for the slide name; "
                                  "rename it")
    targets = [c for c in columns if c not in _SLIDE_COLUMNS]
    entries = []
    for index, row in enumerate(table.to_dict("records"), start=1):
        path = _csv_file(csv_path, row, "image", index, "slide")
        mask = _csv_file(csv_path, row, "mask", index, "mask") if "mask" in columns else None
        mpp = _csv_mpp(csv_path, row, index) if "mpp" in columns else None
        entries.append(SlideEntry(path, index, {c: str(row[c]).strip() for c in targets}, mask, mpp))
    if not entries:
        raise DataError(csv_path, "has no rows")
    _check_unique_stems(entries, csv_path)
    return entries, targets


def _csv_file(csv_path: Path, row: dict, column: str, index: int, what: str) -> Path:
    """The existing file a CSV cell names (relative to the CSV's folder); a :class:`DataError` naming
    the CSV, row and column otherwise."""
    text = str(row[column]).strip()
    where = f"row {index} (line {index + 1}), column '{column}'"
    if not text or text.lower() == "nan":
        raise DataError(csv_path, f"{where}: {what} path is empty")
    path = Path(text).expanduser()
    path = path if path.is_absolute() else csv_path.parent / path
    if not path.is_file():
        raise DataError(csv_path, f"{where}: {what} {path} {'is not a file' if path.exists() else 'does not exist'}")
    return path


def _csv_mpp(csv_path: Path, row: dict, index: int) -> float | None:
    """The ``mpp`` cell as a positive number (blank: None, the file's or ``--slide-mpp``)."""
    text = str(row["mpp"]).strip()
    if not text or text.lower() == "nan":
        return None
    try:
        return check_mpp(float(text), "mpp")
    except (ValueError, ConfigError):
        raise DataError(csv_path, f"row {index} (line {index + 1}), column 'mpp': '{text}' is not a positive "
                                  "number of µm per pixel") from None


def _check_unique_stems(entries: list[SlideEntry], source: Path | None) -> None:
    seen: dict[str, Path] = {}
    for entry in entries:
        if entry.stem in seen:
            raise DataError(source or entry.path, f"slides {seen[entry.stem]} and {entry.path} share the name "
                                                  f"'{entry.stem}', which names their patch folder")
        seen[entry.stem] = entry.path


def choose_patches(grid: TileGrid, count: int, seed: int, stem: str) -> np.ndarray:
    """Indices (int64 ``[min(count, len(grid))]``, ascending) of the patches of ``grid`` drawn for
    slide ``stem``: the first ``count`` of a permutation fixed by ``seed`` and the stem."""
    rng = np.random.default_rng([seed, zlib.crc32(stem.encode("utf-8"))])
    return np.sort(rng.permutation(len(grid))[:count]).astype(np.int64)


def _png_bytes(patch: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(patch).save(buffer, format="PNG")
    return buffer.getvalue()


def _slide_patches(entry: SlideEntry, out_dir: Path, patches_per_slide: int, patch_size: int, target_mpp: float,
                   min_tissue_fraction: float, seed: int, slide_mpp: float | None,
                   tissue: TissueConfig) -> tuple[list[str], int]:
    """``(relative PNG paths of the patches and of their masks (None without a mask), how many were
    written now)`` of one slide."""
    mpp = entry.mpp if entry.mpp is not None else slide_mpp
    with open_slide(entry.path, mpp=mpp) as slide, _open_mask(entry, slide) as labels:
        mask = detect_tissue(slide, tissue)
        grid = tile_slide(slide, patch_size, target_mpp=target_mpp, tissue=mask,
                          min_tissue_fraction=min_tissue_fraction)
        chosen = choose_patches(grid, patches_per_slide, seed, entry.stem)
        if not len(chosen):
            log.warning("%s: no patch of %d px at %g µm/px holds at least %.0f%% tissue; the slide gets no patches",
                        entry.path, patch_size, target_mpp, 100 * min_tissue_fraction)
        names, mask_names, written = [], [], 0
        for index in chosen:
            name = f"{entry.stem}/{grid.rows[index]}_{grid.cols[index]}.png"
            if labels is not None:
                mask_name = name.replace(".png", "_mask.png")
                if not (out_dir / mask_name).is_file():
                    _write_png(out_dir / mask_name, read_mask_tile(labels, grid, int(index)))
                mask_names.append(mask_name)
            target = out_dir / name
            if not target.is_file():
                try:
                    patch = read_tile(slide, grid, int(index))
                except Exception as exc:  # a corrupt tile raises from the decoder, whatever the library
                    if isinstance(exc, DataError):
                        raise
                    raise DataError(entry.path, f"patch at level-0 ({grid.x[index]}, {grid.y[index]}) cannot be "
                                                f"read: {exc}") from exc
                _write_png(target, patch)
                written += 1
            names.append(name)
    return names, mask_names if labels is not None else None, written


def _write_png(target: Path, pixels: np.ndarray) -> None:
    try:
        atomic_write_bytes(target, _png_bytes(pixels))
    except OSError as exc:
        raise DataError(target, f"cannot be written: {exc}") from exc


def _open_mask(entry: SlideEntry, slide: Slide) -> Any:
    """The slide's mask opened like a slide (same µm/px), or a null context without one; a
    :class:`DataError` naming both files when their sizes differ."""
    if entry.mask is None:
        return contextlib.nullcontext(None)
    labels = open_slide(entry.mask, mpp=slide.mpp)
    if labels.dimensions != slide.dimensions:
        labels.close()
        raise DataError(entry.mask, f"mask is {labels.dimensions[0]}×{labels.dimensions[1]} px but its slide "
                                    f"{entry.path} is {slide.dimensions[0]}×{slide.dimensions[1]}")
    return labels


def read_mask_tile(labels: Slide, grid: TileGrid, index: int) -> np.ndarray:
    """Patch ``index`` of ``grid`` from a mask opened as a slide: uint8 ``[patch_size, patch_size]``
    (the first channel), resized by nearest neighbour so that label values stay labels."""
    return np.ascontiguousarray(read_tile(labels, grid, index, Image.Resampling.NEAREST)[..., 0])


def extract_patches(slides_csv_or_list: str | Path | Sequence[str | Path], out_dir: str | Path,
                    patches_per_slide: int, patch_size: int = 128, target_mpp: float = 0.5,
                    min_tissue_fraction: float = 0.5, seed: int = 0, slide_mpp: float | None = None,
                    tissue: TissueConfig = TissueConfig()) -> Path:
    """Sample tissue patches of slides into PNG files and a manifest (see the module docstring).

    ``slides_csv_or_list``: a ``.csv`` like :func:`~medmtl.wsi.make_synthetic_dataset`'s (column
    ``image`` = slide paths relative to the CSV, other columns = targets copied onto the patches),
    a list of slide paths (the manifest then has ``image`` and ``slide`` only) or one slide path.
    Patches are ``patch_size`` px at ``target_mpp`` µm/px (``slide_mpp`` gives level 0's µm/px
    for slides without it) and hold at least ``min_tissue_fraction`` tissue by ``tissue``'s mask.
    A slide without such patches gets none (and a warning). Returns ``out_dir/patches.csv``.
    """
    if isinstance(patches_per_slide, bool) or not isinstance(patches_per_slide, (int, np.integer)) \
            or patches_per_slide < 1:
        raise ConfigError("patches_per_slide", f"must be a positive whole number, not {patches_per_slide!r}")
    target_mpp = check_mpp(target_mpp, "target_mpp")
    if slide_mpp is not None:
        slide_mpp = check_mpp(slide_mpp, "slide_mpp")
    entries, target_columns = read_slide_list(slides_csv_or_list)
    out_dir = Path(out_dir)
    rows: list[dict[str, str]] = []
    written = 0
    with_masks = any(entry.mask is not None for entry in entries)
    for entry in progress(entries, description="patches"):
        names, masks, new = _slide_patches(entry, out_dir, int(patches_per_slide), patch_size, target_mpp,
                                           min_tissue_fraction, seed, slide_mpp, tissue)
        written += new
        rows.extend({"image": name, "slide": entry.stem, **({"mask": masks[i]} if masks else {}), **entry.targets}
                    for i, name in enumerate(names))
    manifest = out_dir / MANIFEST_NAME
    buffer = io.StringIO()
    columns = [*_OWN_COLUMNS, *(["mask"] if with_masks else []), *target_columns]
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(manifest, buffer.getvalue())
    if not rows:
        log.warning("%s: no slide gave a patch; the manifest has no rows", manifest)
    log.info("%d patches of %d slides in %s (%d written now)", len(rows), len(entries), out_dir, written)
    return manifest


__all__ = ["MANIFEST_NAME", "SlideEntry", "choose_patches", "extract_patches", "read_slide_list"]
