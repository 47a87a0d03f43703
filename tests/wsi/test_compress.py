"""Slide compression: grids, resume, skipping, unreadable tiles, empty slides, write failures."""

from __future__ import annotations

import errno
import logging

import numpy as np
import pytest
import torch

from medmtl import grid_store
from medmtl.encoders import create_encoder
from medmtl.errors import DataError
from medmtl.wsi import compress as compress_module
from medmtl.wsi.compress import CompressionSettings, compress_slide, compress_slides
from medmtl.wsi.patch_encoder import PatchEncoder

SETTINGS = CompressionSettings(patch_size=64, target_mpp=1.0, batch_size=16, readers=2, prefetch_tiles=32)


class CountingEncoder(PatchEncoder):
    """A small CNN patch encoder that counts its batches and can fail after ``fail_after`` of them."""

    def __init__(self, fail_after: int | None = None) -> None:
        torch.manual_seed(0)
        super().__init__(create_encoder("small_cnn", in_channels=3, width=4, stages=3), in_channels=3, source="test")
        self.batches = 0
        self.tiles = 0
        self.fail_after = fail_after

    def encode(self, tiles: np.ndarray) -> np.ndarray:
        if self.fail_after is not None and self.batches >= self.fail_after:
            raise KeyboardInterrupt("killed")
        self.batches += 1
        self.tiles += len(tiles)
        return super().encode(tiles)


def test_compress_writes_a_grid_with_zeros_off_tissue(synthetic_slide, tmp_path):
    encoder = CountingEncoder()
    result = compress_slide(synthetic_slide.path, encoder, tmp_path, SETTINGS)
    store = grid_store.open_grid(result.store)
    channels, rows, cols = store.shape
    # 2048 x 1536 at 0.5 µm/px read at 1.0 µm/px: 1024 x 768 -> 16 x 12 patches of 64
    assert (channels, rows, cols) == (encoder.channels, 12, 16) and result.grid_shape == (12, 16)
    tissue = store.tissue()
    assert 0 < tissue.sum() < tissue.size and encoder.tiles == tissue.sum() == result.tiles
    grid = store.embeddings()
    assert np.all(grid[:, ~tissue] == 0) and np.abs(grid[:, tissue]).sum(axis=0).min() > 0
    attrs = store.attrs
    assert attrs["mpp"] == pytest.approx(1.0) and attrs["patch_size"] == 64 and attrs["encoder"] == "test"
    assert attrs["failed_tiles"] == 0
    again = compress_slide(synthetic_slide.path, CountingEncoder(), tmp_path, SETTINGS)
    assert again.skipped


def test_embeddings_match_encoding_the_tiles_directly(synthetic_slide, tmp_path):
    from medmtl.wsi import detect_tissue, open_slide, read_tile, tile_slide

    encoder = CountingEncoder()
    store = grid_store.open_grid(compress_slide(synthetic_slide.path, encoder, tmp_path, SETTINGS).store)
    with open_slide(synthetic_slide.path) as slide:
        grid = tile_slide(slide, 64, target_mpp=1.0, tissue=detect_tissue(slide), min_tissue_fraction=0.25,
                          include_partial=True)
        index = len(grid) // 2
        expected = encoder.encode(read_tile(slide, grid, index)[None])[0]
    np.testing.assert_allclose(store.embeddings()[:, grid.rows[index], grid.cols[index]], expected, rtol=1e-4, atol=1e-5)


def test_interrupted_slide_resumes_from_finished_rows(synthetic_slide, tmp_path):
    small_batches = CompressionSettings(**{**SETTINGS.__dict__, "batch_size": 4})
    with pytest.raises(KeyboardInterrupt):
        compress_slide(synthetic_slide.path, CountingEncoder(fail_after=4), tmp_path, small_batches)
    partial = tmp_path / f"{synthetic_slide.path.stem}.zarr.partial"
    assert partial.exists() and not (tmp_path / f"{synthetic_slide.path.stem}.zarr").exists()
    encoder = CountingEncoder()
    result = compress_slide(synthetic_slide.path, encoder, tmp_path, small_batches)
    store = grid_store.open_grid(result.store)
    assert encoder.tiles < store.tissue().sum()  # the rows finished before the kill were not encoded again
    reference = grid_store.open_grid(compress_slide(synthetic_slide.path, CountingEncoder(), tmp_path / "ref",
                                                    SETTINGS).store)
    np.testing.assert_allclose(store.embeddings(), reference.embeddings(), rtol=1e-4, atol=1e-5)


def test_unreadable_tiles_are_retried_counted_and_left_zero(synthetic_slide, tmp_path, monkeypatch, caplog):
    real_read = compress_module.read_tile
    calls = {}

    def flaky(slide, grid, index):
        calls[index] = calls.get(index, 0) + 1
        if index % 7 == 0:
            raise OSError("corrupt JPEG tile")
        return real_read(slide, grid, index)

    real_block_read = compress_module.read_tiles

    def flaky_block(slide, grid, indices):  # a corrupt tile spoils the read of its whole block
        if any(int(i) % 7 == 0 for i in indices):
            raise OSError("corrupt JPEG tile")
        return real_block_read(slide, grid, indices)

    monkeypatch.setattr(compress_module, "read_tile", flaky)
    monkeypatch.setattr(compress_module, "read_tiles", flaky_block)
    with caplog.at_level(logging.WARNING):
        result = compress_slide(synthetic_slide.path, CountingEncoder(), tmp_path, SETTINGS)
    bad = [i for i in calls if i % 7 == 0]
    assert result.failed_tiles == len(bad) > 0
    assert all(calls[i] == SETTINGS.retries + 1 for i in bad)
    assert grid_store.open_grid(result.store).attrs["failed_tiles"] == len(bad)
    assert "could not be read" in caplog.text
    store = grid_store.open_grid(result.store)  # the block mates of a corrupt tile are encoded all the same
    assert store.embeddings().any(axis=0).sum() == store.tissue().sum() - len(bad)


def test_slide_without_tissue_gives_an_empty_grid_and_a_warning(white_slide, tmp_path, caplog):
    with caplog.at_level(logging.WARNING):
        result = compress_slide(white_slide.path, CountingEncoder(), tmp_path, SETTINGS)
    store = grid_store.open_grid(result.store)
    assert not store.tissue().any() and not store.embeddings().any()
    assert "no tissue" in caplog.text


def test_write_failure_keeps_no_finished_store(synthetic_slide, tmp_path, monkeypatch):
    real_write = grid_store.GridStore.write_rows
    written = []

    def full_disk(self, rows, embeddings):
        if len(written) == 1:
            raise OSError(errno.ENOSPC, "No space left on device")
        written.append(rows)
        real_write(self, rows, embeddings)

    monkeypatch.setattr(grid_store.GridStore, "write_rows", full_disk)
    with pytest.raises(DataError, match="No space left.*resumes"):
        compress_slide(synthetic_slide.path, CountingEncoder(), tmp_path, SETTINGS)
    assert not grid_store.is_complete(tmp_path / f"{synthetic_slide.path.stem}.zarr")
    monkeypatch.setattr(grid_store.GridStore, "write_rows", real_write)
    result = compress_slide(synthetic_slide.path, CountingEncoder(), tmp_path, SETTINGS)
    assert grid_store.is_complete(result.store)
    assert 0 < result.tiles < len(grid_store.open_grid(result.store).tissue().nonzero()[0])  # resumed


def test_non_slide_file_is_a_clear_error(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("not a slide")
    with pytest.raises(DataError, match="notes.txt"):
        compress_slide(path, CountingEncoder(), tmp_path / "out", SETTINGS)


def test_several_slides_with_progress(synthetic_slide, white_slide, tmp_path):
    results = compress_slides([synthetic_slide.path, white_slide.path], CountingEncoder(), tmp_path, SETTINGS)
    assert [grid_store.is_complete(r.store) for r in results] == [True, True]


@pytest.mark.slow
def test_two_dask_workers(synthetic_slide, synthetic_slide_label0, tmp_path):
    from medmtl.wsi.parallel import compress_in_parallel

    torch.manual_seed(0)
    encoder = PatchEncoder(create_encoder("small_cnn", in_channels=3, width=4, stages=3), 3, source="test")
    results = compress_in_parallel([synthetic_slide.path, synthetic_slide_label0.path], encoder, tmp_path,
                                   SETTINGS, workers=2)
    assert [r.slide.name for r in results] == ["tumour.tif", "normal.tif"]
    assert all(grid_store.is_complete(r.store) for r in results)
    single = compress_slide(synthetic_slide.path, encoder, tmp_path / "one", SETTINGS)
    np.testing.assert_allclose(grid_store.open_grid(results[0].store).embeddings(),
                               grid_store.open_grid(single.store).embeddings(), rtol=1e-4, atol=1e-5)


def _corrupt_tile_under(path, x, y, tile=256):
    """Overwrite the compressed bytes of the level-0 TIFF tile holding pixel (x, y)."""
    import tifffile

    with tifffile.TiffFile(path) as tif:
        page = tif.pages[0]
        per_row = -(-page.imagewidth // tile)
        index = (y // tile) * per_row + (x // tile)
        offset, count = page.dataoffsets[index], page.databytecounts[index]
    with open(path, "r+b") as handle:
        handle.seek(offset)
        handle.write(b"\x13" * count)


def test_a_really_corrupt_tile_costs_only_its_own_patches(tmp_path):
    from medmtl.wsi import detect_tissue, open_slide, tile_slide
    from medmtl.wsi.synthetic import make_synthetic_slide

    info = make_synthetic_slide(tmp_path / "slide.tif", 2048, 1536, label=1, seed=3)
    settings = CompressionSettings(patch_size=128, target_mpp=0.5, batch_size=16, readers=2, retries=1)
    with open_slide(info.path) as slide:
        grid = tile_slide(slide, 128, target_mpp=0.5, tissue=detect_tissue(slide), min_tissue_fraction=0.25,
                          include_partial=True)
    x, y = int(grid.x[len(grid) // 2]), int(grid.y[len(grid) // 2])
    _corrupt_tile_under(info.path, x, y)
    inside = int(np.sum((grid.x // 256 == x // 256) & (grid.y // 256 == y // 256)))
    result = compress_slide(info.path, CountingEncoder(), tmp_path / "grids", settings)
    # OpenSlide refuses every read after a failed one; reopening the slide keeps the rest readable
    assert result.failed_tiles == inside
    store = grid_store.open_grid(result.store)
    assert int((np.abs(store.embeddings()).sum(axis=0) > 0).sum()) == len(grid) - inside
