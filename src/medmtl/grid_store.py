"""Zarr stores of compressed slides: an embedding grid written row by row, resumably.

Layout of ``<name>.zarr`` (zarr v3 group)::

    embeddings   float32 [C, H, W]   one chunk per grid row; zeros where there is no tissue
    tissue       bool    [H, W]      tiles that were encoded
    coords       int64   [H, W, 2]   level-0 (x, y) of each tile's top-left corner
    row_done     bool    [H]         one chunk per row; set after the row's embeddings are written
    attrs        encoder, level, mpp, patch_size, stride, slide, complete, …; ``settings``: what the
                 grid depends on (encoder weights' sha256, requested tiling and tissue detection),
                 checked before a store is skipped or resumed (:func:`medmtl.wsi.compress.grid_settings`)

A store is written under ``<name>.zarr.partial`` and renamed to ``<name>.zarr`` only when every
row is done, so a store without the ``.partial`` suffix is always complete; an interrupted one
resumes from its finished rows (a row whose flag never got written is simply encoded again).

This module sits below both :mod:`medmtl.wsi` (which writes stores) and :mod:`medmtl.data`
(which reads them for slide-level training); zarr comes with the optional extra ``wsi`` and is
imported at first use.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from medmtl.errors import DataError
from medmtl.extras import require
from medmtl.io_utils import json_safe

if TYPE_CHECKING:
    import zarr

FORMAT_VERSION = 1
PARTIAL_SUFFIX = ".partial"


def _zarr(feature: str = "reading zarr grid stores"):  # noqa: ANN202 - returns the zarr module
    return require("zarr", feature=feature)


@dataclass
class GridStore:
    """An open store being written (``path`` ends in ``.partial``) or a finished one."""

    path: Path
    group: zarr.Group

    @property
    def shape(self) -> tuple[int, int, int]:
        """``(C, H, W)`` of the embedding grid."""
        return tuple(self.group["embeddings"].shape)  # type: ignore[return-value]

    @property
    def attrs(self) -> dict[str, Any]:
        return dict(self.group.attrs)

    def rows_done(self) -> np.ndarray:
        """``[H]`` bool; a row flag that cannot be read (killed mid-write) counts as not done."""
        flags = self.group["row_done"]
        try:
            return np.asarray(flags[:], dtype=bool)
        except Exception:  # a torn chunk: check rows one by one
            done = np.zeros(flags.shape[0], dtype=bool)
            for row in range(flags.shape[0]):
                try:
                    done[row] = bool(flags[row])
                except Exception:
                    done[row] = False
            return done

    def write_row(self, row: int, embeddings: np.ndarray) -> None:
        """Store ``embeddings [C, W]`` of grid row ``row``, then mark the row done."""
        self.write_rows([row], embeddings[:, None, :])

    def write_rows(self, rows: Sequence[int], embeddings: np.ndarray) -> None:
        """Store ``embeddings [C, len(rows), W]`` of grid rows ``rows``, then mark them done.

        One write per run of consecutive rows (zarr's cost is per call far more than per byte: nine rows
        of a small image written at once take about a third of the time of nine single-row writes), and
        every embedding is written before any of its flags, so a row marked done is always whole.
        """
        rows = np.asarray(rows, dtype=np.int64)
        order = np.argsort(rows, kind="stable")
        rows = rows[order]
        embeddings = embeddings.astype(np.float32, copy=False)[:, order]
        runs = np.split(np.arange(len(rows)), np.nonzero(np.diff(rows) != 1)[0] + 1) if len(rows) else []
        for run in runs:
            self.group["embeddings"][:, rows[run[0]]:rows[run[-1]] + 1, :] = embeddings[:, run[0]:run[-1] + 1]
        for run in runs:
            self.group["row_done"][rows[run[0]]:rows[run[-1]] + 1] = True

    def embeddings(self) -> np.ndarray:
        """The whole grid ``[C, H, W]`` float32."""
        return np.asarray(self.group["embeddings"][:])

    def tissue(self) -> np.ndarray:
        return np.asarray(self.group["tissue"][:], dtype=bool)


def final_path(out_dir: Path, name: str) -> Path:
    return Path(out_dir) / f"{name}.zarr"


def partial_path(final: Path) -> Path:
    """Where the store ``final`` is written until it is finished."""
    return Path(str(final) + PARTIAL_SUFFIX)


def read_attrs(path: Path) -> dict[str, Any]:
    """The attributes of the store at ``path`` (finished or not); a :class:`DataError` when unreadable."""
    zarr = _zarr()
    try:
        return dict(zarr.open_group(str(path), mode="r").attrs)
    except Exception as exc:
        raise DataError(path, f"cannot be read as a zarr grid store ({exc})") from exc


def is_readable(path: Path) -> bool:
    """True when ``path`` holds a store whose attributes can be read (an interrupted one may not)."""
    if not (Path(path) / "zarr.json").is_file():
        return False
    try:
        read_attrs(path)
    except DataError:
        return False
    return True


def is_complete(path: Path) -> bool:
    """True for a finished store (renamed from ``.partial`` after its last row)."""
    zarr = _zarr()  # first, outside the try: a missing extra is an error, not an unfinished store
    if not (path / "zarr.json").is_file():
        return False
    try:
        return bool(zarr.open_group(str(path), mode="r").attrs.get("complete", False))
    except Exception:
        return False


def create_or_resume(out_dir: Path, name: str, channels: int, tissue: np.ndarray, coords: np.ndarray,
                     attrs: dict[str, Any]) -> GridStore:
    """Open ``<name>.zarr.partial`` for writing, resuming it when its geometry matches.

    ``tissue`` ``[H, W]`` bool, ``coords`` ``[H, W, 2]`` int64. A partial store from another
    configuration (different shape or attributes) is discarded and started again.
    """
    zarr = _zarr("writing zarr grid stores (compressing slides)")
    partial = Path(str(final_path(out_dir, name)) + PARTIAL_SUFFIX)
    height, width = tissue.shape
    wanted = {**attrs, "format": FORMAT_VERSION, "complete": False}
    if partial.exists():
        try:
            group = zarr.open_group(str(partial), mode="r+")
            same = (tuple(group["embeddings"].shape) == (channels, height, width)
                    and all(group.attrs.get(k) == json_safe(v) for k, v in wanted.items()
                            if k != "complete"))  # set when only the final rename failed
        except Exception:
            same = False
        if same:
            return GridStore(partial, group)
        shutil.rmtree(partial)
    partial.parent.mkdir(parents=True, exist_ok=True)
    # attributes and small arrays given at creation: each later update rewrites metadata (a third slower)
    group = zarr.open_group(str(partial), mode="w", attributes=json_safe(wanted))
    group.create_array("embeddings", shape=(channels, height, width), chunks=(channels, 1, width),
                       dtype="float32", fill_value=0.0)
    group.create_array("tissue", data=np.asarray(tissue, dtype=bool), fill_value=False)
    group.create_array("coords", data=np.asarray(coords, dtype=np.int64), fill_value=0)
    group.create_array("row_done", shape=(height,), chunks=(1,), dtype="bool", fill_value=False)
    return GridStore(partial, group)


def finish(store: GridStore) -> Path:
    """Mark a fully written store complete and move it to its final name (atomic rename)."""
    done = store.rows_done()
    if not done.all():
        raise DataError(store.path, f"cannot finish: {int((~done).sum())} grid row(s) are not written")
    store.group.attrs["complete"] = True
    target = Path(str(store.path)[: -len(PARTIAL_SUFFIX)])
    if target.exists():  # a store being replaced (--overwrite) is moved aside, deleted once the new one is in place
        old = Path(str(target) + ".old")
        if old.exists():
            shutil.rmtree(old)
        os.replace(target, old)
        os.replace(store.path, target)
        shutil.rmtree(old, ignore_errors=True)
        return target
    os.replace(store.path, target)
    return target


def open_grid(path: str | Path) -> GridStore:
    """A finished store, read-only; a clear error for anything else."""
    zarr = _zarr()
    path = Path(path)
    if not path.exists():
        raise DataError(path, "grid store does not exist")
    if str(path).endswith(PARTIAL_SUFFIX) or not is_complete(path):
        raise DataError(path, "is not a finished medmtl grid store (interrupted compression? run it again)")
    return GridStore(path, zarr.open_group(str(path), mode="r"))

