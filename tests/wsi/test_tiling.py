import math
import time

import numpy as np
import pytest
import tifffile
from PIL import Image

from medmtl.errors import ConfigError
from medmtl.wsi.slide import open_slide
from medmtl.wsi.tiling import (
    MAX_BLOCK_PIXELS,
    block_shape,
    grid_count,
    make_tile_grid,
    read_tile,
    read_tiles,
    tile_blocks,
    tile_slide,
    tissue_fractions,
)
from medmtl.wsi.tissue import TissueMask, detect_tissue, saturation


def _mask(mask: np.ndarray, downsample: float) -> TissueMask:
    return TissueMask(mask=mask, downsample=downsample, threshold=0.1)


def test_grid_count():
    assert grid_count(300, 128, 128, False) == 2
    assert grid_count(300, 128, 128, True) == 3
    assert grid_count(256, 128, 64, False) == 3
    assert grid_count(100, 128, 128, False) == 0
    assert grid_count(100, 128, 128, True) == 1


def test_grid_without_mask_keeps_every_patch_with_size_and_stride():
    grid = make_tile_grid((1000, 600), patch_size=128)
    assert grid.grid_shape == (4, 7) and len(grid) == 28
    assert grid.x.dtype == np.int64 and grid.x[:3].tolist() == [0, 128, 256]
    assert grid.rows.tolist() == np.repeat(np.arange(4), 7).tolist()
    assert (grid.tissue_fraction == 1).all()
    overlapping = make_tile_grid((1000, 600), patch_size=128, stride=64)
    assert overlapping.grid_shape == (8, 14) and overlapping.x[1] == 64 and overlapping.read_size == 128
    level2 = make_tile_grid((250, 150), level_downsample=4.0, patch_size=64, level=2)
    assert level2.grid_shape == (2, 3) and level2.x.tolist() == [0, 256, 512] * 2 and level2.level == 2
    partial = make_tile_grid((1000, 600), patch_size=128, include_partial=True)
    assert partial.grid_shape == (5, 8)


def test_tissue_fraction_and_skipping():
    mask = np.zeros((8, 8), bool)
    mask[0:4, 0:4] = True   # level-0 pixels 0-127 (downsample 32): patch (0, 0) fully tissue
    mask[4:8, 4:6] = True   # half of patch (1, 1)
    grid = make_tile_grid((256, 256), patch_size=128, tissue=_mask(mask, 32.0), min_tissue_fraction=0.5)
    assert list(zip(grid.rows.tolist(), grid.cols.tolist())) == [(0, 0), (1, 1)]
    assert grid.tissue_fraction.tolist() == [1.0, 0.5]
    assert len(make_tile_grid((256, 256), patch_size=128, tissue=_mask(mask, 32.0), min_tissue_fraction=0.6)) == 1
    assert len(make_tile_grid((256, 256), patch_size=128, tissue=_mask(mask, 32.0), min_tissue_fraction=0.0)) == 4
    # a patch smaller than a mask pixel still looks at one mask pixel; outside the mask is background
    fractions = tissue_fractions(_mask(mask, 32.0), np.array([0, 300]), np.array([0]), 8.0)
    assert fractions.tolist() == [[1.0, 0.0]]


def test_non_integer_level_downsample_maps_back_exactly():
    grid = make_tile_grid((2221, 1783), level_downsample=2.0005055500659967, patch_size=128, level=1)
    assert (np.floor(grid.x / 2.0005055500659967) == grid.cols * 128).all()
    assert (np.floor(grid.y / 2.0005055500659967) == grid.rows * 128).all()


def test_grid_for_100k_slide_is_fast():
    rng = np.random.default_rng(0)
    mask = rng.random((1563, 1563)) < 0.3
    tissue = _mask(mask, 64.0)
    start = time.perf_counter()
    grid = make_tile_grid((100_000, 100_000), patch_size=128, tissue=tissue, min_tissue_fraction=0.5)
    elapsed = time.perf_counter() - start
    assert grid.grid_shape == (781, 781)
    assert elapsed < 3.0, f"tiling a 100k x 100k slide took {elapsed:.2f} s"
    # every 128-px patch covers exactly 2 x 2 mask pixels here: check a few by hand
    for index in rng.integers(0, len(grid), 20):
        r, c = int(grid.rows[index]), int(grid.cols[index])
        assert grid.tissue_fraction[index] == mask[2 * r:2 * r + 2, 2 * c:2 * c + 2].mean() >= 0.5


def test_tile_slide_skips_background(synthetic_slide):
    with open_slide(synthetic_slide.path) as slide:
        tissue = detect_tissue(slide)
        grid = tile_slide(slide, patch_size=128, tissue=tissue, min_tissue_fraction=0.5)
        assert grid.grid_shape == (12, 16) and 0 < len(grid) < 12 * 16
        assert (grid.tissue_fraction >= 0.5).all()
        kept = {(int(r), int(c)) for r, c in zip(grid.rows, grid.cols)}
        for index in range(len(grid)):
            patch = read_tile(slide, grid, index)
            assert patch.shape == (128, 128, 3)
            assert (saturation(patch) > 0.15).mean() > 0.3  # mostly stained tissue
        assert (0, 0) not in kept and (11, 15) not in kept
        assert (saturation(slide.read_region(0, 0, 0, 128, 128)) < 0.05).all()


def test_tile_slide_at_target_mpp(synthetic_slide):
    with open_slide(synthetic_slide.path) as slide:
        at_level = tile_slide(slide, patch_size=128, target_mpp=1.0)
        assert at_level.level == 1 and at_level.read_size == 128 and at_level.grid_shape == (6, 8)
        between = tile_slide(slide, patch_size=128, target_mpp=1.5)
        assert between.level == 1 and between.read_size == 192 and between.stride == 192
        assert between.grid_shape == (4, 5)
        assert read_tile(slide, between, 3).shape == (128, 128, 3)
        assert math.isclose(between.x[1], 192 * 2)
        with pytest.raises(ConfigError, match="level/target_mpp"):
            tile_slide(slide, level=0, target_mpp=1.0)
        with pytest.raises(ConfigError, match="level"):
            tile_slide(slide, level=7)
        with pytest.raises(ConfigError, match="patch_size"):
            tile_slide(slide, patch_size=0)


def _striped_tiff(path):
    rng = np.random.default_rng(0)
    tifffile.imwrite(path, rng.integers(0, 256, (300, 420, 3), dtype=np.uint8), photometric="rgb", rowsperstrip=64)
    return path


def _png(path):
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (300, 420, 3), dtype=np.uint8)).save(path)
    return path


@pytest.mark.parametrize("backend", ["openslide", "tifffile", "pillow"])
@pytest.mark.parametrize("layout", [{"patch_size": 128}, {"patch_size": 96, "stride": 64},
                                    {"patch_size": 64, "target_mpp": 0.75}])
def test_block_reads_equal_tile_reads(backend, layout, synthetic_slide, tmp_path):
    path = {"openslide": lambda: synthetic_slide.path, "tifffile": lambda: _striped_tiff(tmp_path / "s.tif"),
            "pillow": lambda: _png(tmp_path / "i.png")}[backend]()
    with open_slide(path, mpp=0.5) as slide:
        assert slide.backend == backend
        grid = tile_slide(slide, include_partial=True, **layout)  # edge patches hang over: white there
        shape = block_shape(slide, grid)
        if backend == "pillow":
            assert shape == (1, 1)
        else:
            tile_w, tile_h = slide.tile_size(grid.level)
            assert shape[1] == min(math.ceil(tile_w / grid.stride), (MAX_BLOCK_PIXELS - grid.read_size) // grid.stride + 1)
            assert shape[0] == min(math.ceil(tile_h / grid.stride), (MAX_BLOCK_PIXELS - grid.read_size) // grid.stride + 1)
        wanted = np.arange(len(grid))[::3] if len(grid) > 40 else np.arange(len(grid))
        blocks = tile_blocks(grid, wanted, shape)
        assert sorted(np.concatenate(blocks).tolist()) == wanted.tolist()
        for block in blocks:
            assert np.ptp(grid.rows[block] // shape[0]) == 0 and np.ptp(grid.cols[block] // shape[1]) == 0
            for index, patch in zip(block, read_tiles(slide, grid, block)):
                assert np.array_equal(patch, read_tile(slide, grid, int(index))), (index, block)
        twin = slide.reopen()
        assert twin.mpp == slide.mpp and twin.backend == backend
        assert np.array_equal(read_tile(twin, grid, 0), read_tile(slide, grid, 0))
        twin.close()
        assert read_tile(slide, grid, 0).shape == (grid.patch_size, grid.patch_size, 3)  # unaffected by the twin
