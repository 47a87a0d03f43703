"""Neural Image Compression: a whole-slide image → a grid of patch embeddings in a zarr store.

Streaming: tiles are read by a pool of reader threads (OpenSlide and zlib/JPEG decoding release
the GIL), in blocks that span the file's own tiles (each decoded once), a bounded number of tiles
ahead of the encoder, so reading overlaps encoding and memory
stays flat whatever the slide size; each finished grid row is written to the store at once.
An interrupted slide resumes from its finished rows; a finished one is skipped
(:mod:`medmtl.grid_store`) — both only when the store was made with the same encoder weights and
settings (:func:`grid_settings`, recorded in the store); otherwise a :class:`DataError` names
the differences, and ``overwrite`` recomputes the store instead. A tile that cannot be read is
retried, then left as zeros and counted (``failed_tiles`` in the store's attributes and a warning), never skipped silently.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from medmtl import grid_store
from medmtl.errors import DataError
from medmtl.io_utils import json_safe
from medmtl.progress import progress_bars
from medmtl.wsi.patch_encoder import PatchEncoder
from medmtl.wsi.slide import Slide, open_slide
from medmtl.wsi.tiling import TileGrid, block_shape, read_tile, read_tiles, tile_blocks, tile_slide
from medmtl.wsi.tissue import TissueConfig, detect_tissue

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CompressionSettings:
    """How slides are tiled and encoded.

    ``target_mpp`` (µm/px of the patches; NIC: 0.5) or ``level`` picks the resolution;
    ``slide_mpp`` supplies the µm/px of slides whose files lack it.
    """

    patch_size: int = 128
    stride: int | None = None
    target_mpp: float | None = 0.5
    level: int | None = None
    slide_mpp: float | None = None
    min_tissue_fraction: float = 0.25
    tissue: TissueConfig = field(default_factory=TissueConfig)
    batch_size: int = 64
    readers: int = 4
    prefetch_tiles: int = 512
    retries: int = 2


@dataclass
class CompressionResult:
    slide: Path
    store: Path
    skipped: bool = False
    tiles: int = 0
    failed_tiles: int = 0
    seconds: float = 0.0
    grid_shape: tuple[int, int] = (0, 0)

    @property
    def tiles_per_second(self) -> float:
        return self.tiles / self.seconds if self.seconds > 0 else float("nan")


def store_name(slide_path: Path) -> str:
    return slide_path.stem


def grid_settings(encoder: PatchEncoder, settings: CompressionSettings) -> dict[str, Any]:
    """What a grid depends on: the encoder's weights, the tiling and the tissue detection.

    Stored as the store's ``settings`` attribute; a finished store is skipped, and an interrupted
    one resumed, only when its recorded settings equal these (reading threads, batch size and
    retries do not change the grid and are not recorded).
    """
    values: dict[str, Any] = {
        "encoder_sha256": encoder.weights_sha256, "patch_size": settings.patch_size,
        "mpp": None if settings.level is not None else settings.target_mpp, "level": settings.level,
        "stride": settings.patch_size if settings.stride is None else settings.stride,
        "slide_mpp": settings.slide_mpp, "min_tissue_fraction": settings.min_tissue_fraction}
    values.update({f"tissue.{key}": value for key, value in dataclasses.asdict(settings.tissue).items()})
    return json_safe(values)


def _show_setting(key: str, value: Any) -> str:
    if value is None:
        return "none"
    return f"{value[:12]}…" if key == "encoder_sha256" and isinstance(value, str) else str(value)


def check_reusable(store: Path, wanted: dict[str, Any]) -> None:
    """Raise a :class:`DataError` naming ``store`` and its differing settings unless it was made with ``wanted``."""
    hint = "pass --overwrite to recompute it or choose another --out"
    attrs = grid_store.read_attrs(store)
    recorded = attrs.get("settings")
    if not isinstance(recorded, dict):
        raise DataError(store, "was made by an older medmtl that did not record its encoder and settings, so it "
                               f"cannot be checked against this run; {hint}")

    def was(key: str) -> str:
        shown = _show_setting(key, recorded.get(key))
        return f"{shown} (encoder {attrs.get('encoder') or 'unnamed'})" if key == "encoder_sha256" else shown

    changed = [key for key, value in wanted.items() if recorded.get(key) != value]
    if changed:
        shown = "; ".join(f"{key} {was(key)}, now {_show_setting(key, wanted[key])}" for key in changed)
        raise DataError(store, f"was made with {shown}; {hint}")


def _reuse(slide_path: Path, out_dir: Path, wanted: dict[str, Any], overwrite: bool) -> Path | None:
    """The finished store to skip to, or None to compute (resuming an interrupted store made with
    ``wanted``); a :class:`DataError` for a store made otherwise.

    With ``overwrite`` a store made otherwise is recomputed instead: a finished one is replaced once
    the new one is finished, an interrupted one is started again. Stores made with ``wanted`` are
    reused either way, so an interrupted ``--overwrite`` run resumes where it stopped.
    """

    def reusable(store: Path) -> bool:
        try:
            check_reusable(store, wanted)
        except DataError:
            if not overwrite:
                raise
            return False
        return True

    final = grid_store.final_path(out_dir, store_name(slide_path))
    if grid_store.is_complete(final) and reusable(final):
        return final
    partial = grid_store.partial_path(final)
    if grid_store.is_readable(partial):  # a torn one is started again (grid_store.create_or_resume)
        reusable(partial)  # one made otherwise: create_or_resume discards it (its attributes differ)
    return None


def compress_slide(slide_path: str | Path, encoder: PatchEncoder, out_dir: str | Path,
                   settings: CompressionSettings = CompressionSettings(),
                   on_progress: Callable[[int, int], None] | None = None, overwrite: bool = False) -> CompressionResult:
    """Compress one slide into ``out_dir/<slide stem>.zarr`` (skipped when already finished with the
    same encoder and settings; a :class:`DataError` when finished with others, unless ``overwrite``).

    ``on_progress(done, total)`` is called as tiles are encoded.
    """
    slide_path, out_dir = Path(slide_path), Path(out_dir)
    check_encoder_channels(encoder)
    wanted = grid_settings(encoder, settings)
    final = _reuse(slide_path, out_dir, wanted, overwrite)
    if final is not None:
        return CompressionResult(slide_path, final, skipped=True)
    start = time.perf_counter()
    with open_slide(slide_path, mpp=settings.slide_mpp) as slide:
        grid = _tile(slide, settings)
        rows, cols = grid.grid_shape
        tissue = np.zeros((rows, cols), dtype=bool)
        tissue[grid.rows, grid.cols] = True
        coords = np.zeros((rows, cols, 2), dtype=np.int64)
        coords[grid.rows, grid.cols, 0], coords[grid.rows, grid.cols, 1] = grid.x, grid.y
        if len(grid) == 0:
            log.warning("%s: no tissue found; writing an empty grid", slide_path)
        patch_mpp = slide.level_mpp(grid.level) * grid.read_size / grid.patch_size if slide.mpp else None
        attrs = {"slide": str(slide_path), "encoder": encoder.source, "embedding": encoder.channels,
                 "level": grid.level, "level_downsample": grid.level_downsample, "mpp": patch_mpp,
                 "patch_size": grid.patch_size, "stride": grid.stride,
                 "min_tissue_fraction": settings.min_tissue_fraction, "settings": wanted}
        store = grid_store.create_or_resume(out_dir, store_name(slide_path), encoder.channels, tissue, coords, attrs)
        pending = np.nonzero(~store.rows_done())[0]
        todo = np.nonzero(np.isin(grid.rows, pending))[0]
        failed = int(store.attrs.get("failed_tiles", 0))
        try:
            writer = _RowWriter(store, grid, encoder.channels, pending, todo)
            failed += _encode(slide, grid, todo, encoder, settings, writer, on_progress)
            store.group.attrs["failed_tiles"] = failed
        except OSError as exc:  # disk full, store deleted…: keep what is finished
            raise DataError(store.path, f"writing the grid failed ({exc}); the finished rows are kept and "
                                        "running the compression again resumes from them") from exc
    if failed:
        log.warning("%s: %d tile(s) could not be read after %d retries; their embeddings are zeros",
                    slide_path, failed, settings.retries)
    path = grid_store.finish(store)
    return CompressionResult(slide_path, path, tiles=len(todo), failed_tiles=failed,
                             seconds=time.perf_counter() - start, grid_shape=(rows, cols))


class _RowWriter:
    """Collects embeddings per grid row; :meth:`flush` writes the rows whose last tile is in, in one call
    per run of rows (called after every encoder batch, so at most a batch of work is lost to a kill)."""

    def __init__(self, store: grid_store.GridStore, grid: TileGrid, channels: int, pending: np.ndarray,
                 todo: np.ndarray) -> None:
        self.store, self.grid, self.channels = store, grid, channels
        self.width = grid.grid_shape[1]
        counts = np.bincount(grid.rows[todo], minlength=grid.grid_shape[0])
        self.remaining = {int(row): int(counts[row]) for row in pending}
        self.buffers: dict[int, np.ndarray] = {}
        self.ready: dict[int, np.ndarray] = {row: self._empty() for row, count in self.remaining.items()
                                             if count == 0}  # rows without tissue are finished at once

    def _empty(self) -> np.ndarray:
        return np.zeros((self.channels, self.width), dtype=np.float32)

    def put(self, index: int, vector: np.ndarray | None) -> None:
        """The embedding ``[C]`` of tile ``index`` (None: unreadable, stays zero)."""
        row = int(self.grid.rows[index])
        buffer = self.buffers.setdefault(row, self._empty())
        if vector is not None:
            buffer[:, int(self.grid.cols[index])] = vector
        self.remaining[row] -= 1
        if self.remaining[row] == 0:
            self.ready[row] = self.buffers.pop(row)

    def flush(self) -> None:
        """Write the finished rows not yet written."""
        if self.ready:
            rows = sorted(self.ready)
            self.store.write_rows(rows, np.stack([self.ready.pop(row) for row in rows], axis=1))


def _tile(slide: Slide, settings: CompressionSettings) -> TileGrid:
    tissue = detect_tissue(slide, settings.tissue)
    target_mpp = None if settings.level is not None else settings.target_mpp
    return tile_slide(slide, settings.patch_size, settings.stride, level=settings.level, target_mpp=target_mpp,
                      tissue=tissue, min_tissue_fraction=settings.min_tissue_fraction, include_partial=True)


def _encode(slide: Slide, grid: TileGrid, todo: np.ndarray, encoder: PatchEncoder, settings: CompressionSettings,
            writer: _RowWriter, on_progress: Callable[[int, int], None] | None) -> int:
    """Read, encode and hand over the tiles ``todo``; returns how many could not be read."""
    failed, done = 0, 0
    tiles: list[np.ndarray] = []
    owners: list[int] = []

    def flush() -> None:
        for index, vector in zip(owners, encoder.encode(np.stack(tiles))):
            writer.put(index, vector)
        tiles.clear()
        owners.clear()
        writer.flush()

    for index, tile in _read_ahead(slide, grid, todo, settings):
        if tile is None:
            failed += 1
            writer.put(index, None)
        else:
            tiles.append(tile)
            owners.append(index)
            if len(tiles) == settings.batch_size:
                flush()
        done += 1
        if on_progress is not None and (done % settings.batch_size == 0 or done == len(todo)):
            on_progress(done, len(todo))
    if tiles:
        flush()
    writer.flush()  # rows finished by unreadable tiles after the last batch; rows without tissue
    return failed


def _read_ahead(slide: Slide, grid: TileGrid, indices: np.ndarray,
                settings: CompressionSettings) -> Iterator[tuple[int, np.ndarray | None]]:
    """``(index, tile [P, P, 3] uint8 or None)`` for every index, read by a thread pool at most
    ``prefetch_tiles`` ahead of the consumer, block by block (:func:`~medmtl.wsi.tiling.tile_blocks`:
    the cells that share the file's tiles, read as one region, so each tile is decoded once).

    Each reader thread has its own handle on the slide (:meth:`Slide.reopen`): OpenSlide refuses every
    read on a handle after one tile failed to decode, so a block that fails is read again tile by tile on
    a fresh handle, each tile retried, and a corrupt tile spoils neither its block nor the other threads.
    """
    local = threading.local()
    opened: list[Slide] = []
    lock = threading.Lock()

    def handle(fresh: bool = False) -> Slide:
        current = getattr(local, "slide", None)
        if current is None or fresh:
            with lock:
                current = slide.reopen()
                opened.append(current)
            local.slide = current
        return current

    def read(index: int) -> np.ndarray | None:
        for attempt in range(settings.retries + 1):
            try:
                return read_tile(handle(fresh=attempt > 0), grid, index)
            except Exception as exc:  # a corrupt tile raises from the decoder, whatever the library
                if attempt == settings.retries:
                    local.slide = None  # the next tile starts on a fresh handle
                    log.warning("%s: tile at (%d, %d) unreadable: %s", slide.path, grid.x[index], grid.y[index],
                                exc)
        return None

    def read_block(block: np.ndarray) -> list[tuple[int, np.ndarray | None]]:
        try:
            return list(zip(block.tolist(), read_tiles(handle(), grid, block)))
        except Exception:
            local.slide = None
            return [(index, read(index)) for index in block.tolist()]

    blocks = tile_blocks(grid, indices, block_shape(slide, grid))
    try:
        with ThreadPoolExecutor(max_workers=max(1, settings.readers), thread_name_prefix="tile-reader") as pool:
            queue: deque[tuple[int, Future]] = deque()
            position, queued = 0, 0
            while position < len(blocks) or queue:
                while position < len(blocks) and (queued < settings.prefetch_tiles or not queue):
                    queue.append((len(blocks[position]), pool.submit(read_block, blocks[position])))
                    queued += len(blocks[position])
                    position += 1
                size, future = queue.popleft()
                queued -= size
                yield from future.result()
    finally:
        for handle_ in opened:
            handle_.close()


def settings_for(settings: CompressionSettings, slide: str | Path,
                 slide_mpps: Mapping[str, float] | None = None) -> CompressionSettings:
    """``settings`` with the slide's own level-0 µm/px (``slide_mpps``, keyed by the slide's path as
    given, e.g. a slide CSV's ``mpp`` column) as ``slide_mpp`` when it has one."""
    mpp = (slide_mpps or {}).get(str(slide))
    return settings if mpp is None else dataclasses.replace(settings, slide_mpp=mpp)


def check_encoder_channels(encoder: PatchEncoder) -> None:
    """A :class:`DataError` naming the encoder run when it was not trained on RGB images: slides are
    read as RGB, and a grey encoder would see luminance it was never shown as tissue colour."""
    if encoder.in_channels != 3:
        raise DataError(encoder.source or None,
                        f"patch encoder was trained on {encoder.in_channels}-channel (grey) images "
                        "(data.channels), but slides are read as RGB (3 channels): train the patch encoder "
                        "with data.channels: 3")


def check_stores(slides: list[Path], encoder: PatchEncoder, out_dir: Path, settings: CompressionSettings,
                 overwrite: bool = False, slide_mpps: Mapping[str, float] | None = None) -> None:
    """The :class:`DataError` of the first slide whose existing store was made with another encoder or
    settings (none with ``overwrite``), or of an encoder not trained on RGB: called before any slide
    is encoded."""
    check_encoder_channels(encoder)
    for path in slides:
        _reuse(Path(path), Path(out_dir), grid_settings(encoder, settings_for(settings, path, slide_mpps)), overwrite)


def compress_slides(slides: list[Path], encoder: PatchEncoder, out_dir: Path,
                    settings: CompressionSettings = CompressionSettings(),
                    overwrite: bool = False, slide_mpps: Mapping[str, float] | None = None) -> list[CompressionResult]:
    """Compress slides one after another in this process, with an overall and a per-slide bar.

    Every slide's existing store is checked first, so a store made with other settings stops the
    run before any slide is encoded. ``slide_mpps`` gives slides their own level-0 µm/px
    (:func:`settings_for`).
    """
    check_stores(slides, encoder, out_dir, settings, overwrite, slide_mpps)
    results = []
    with progress_bars() as bars:
        overall = bars.add_task("slides", total=len(slides))
        for path in slides:
            current = bars.add_task(Path(path).name, total=None)
            results.append(compress_slide(path, encoder, out_dir, settings_for(settings, path, slide_mpps),
                                          lambda done, total, t=current: bars.update(t, completed=done, total=total),
                                          overwrite=overwrite))
            bars.remove_task(current)
            bars.advance(overall)
    return results
