"""The real slides in ../shared/data/wsi and GlaS images as slides (skipped when absent)."""

import numpy as np
import pandas as pd
import pytest
import tifffile
from PIL import Image

from medmtl.errors import DataError
from medmtl.paths import data_root
from medmtl.wsi.patches import extract_patches
from medmtl.wsi.slide import open_slide
from medmtl.wsi.tiling import read_tile, tile_slide
from medmtl.wsi.tissue import detect_tissue, saturation

pytestmark = pytest.mark.realdata


def _slide_path(name: str):
    root = data_root()
    path = None if root is None else root / "wsi" / name
    if path is None or not path.is_file():
        pytest.skip(f"real slide wsi/{name} not found: set MEDMTL_DATA to the folder holding wsi/ "
                    "(default ../shared/data)")
    return path


def test_aperio_svs_with_mpp():
    with open_slide(_slide_path("cmu-1-small-region.svs")) as slide:
        assert slide.backend == "openslide" and slide.vendor == "aperio"
        assert slide.level_dimensions == [(2220, 2967)]
        assert slide.mpp == pytest.approx(0.499) and slide.mpp_source == "metadata"
        assert slide.level_for_mpp(0.5) == (0, 1.0)
        level, extra = slide.level_for_mpp(1.0)
        assert level == 0 and extra == pytest.approx(2.004, abs=1e-3)
        tissue = detect_tissue(slide)
        assert 0.05 < tissue.tissue_fraction < 0.95
        grid = tile_slide(slide, patch_size=128, target_mpp=1.0, tissue=tissue, min_tissue_fraction=0.5)
        assert grid.read_size == 257 and len(grid) > 10
        patches = np.stack([read_tile(slide, grid, i) for i in range(0, len(grid), max(1, len(grid) // 8))])
        assert patches.shape[1:] == (128, 128, 3) and saturation(patches.reshape(-1, 128, 3)).mean() > 0.1


def test_jpeg2000_svs_without_mpp():
    path = _slide_path("tcga-cr-7395-01a-01-ts1.svs")
    with open_slide(path) as slide:
        assert slide.level_count == 2 and slide.level_dimensions == [(4443, 3567), (2221, 1783)]
        assert slide.mpp is None
        with pytest.raises(DataError, match=r"tcga-cr-7395.*--slide-mpp"):
            slide.level_for_mpp(0.5)
        region = slide.read_region(1000, 1000, 1, 256, 256)
        assert region.shape == (256, 256, 3) and region.std() > 5  # JPEG 2000 tiles decoded
    with open_slide(path, mpp=0.25) as slide:
        assert slide.level_for_mpp(0.5) == (1, 1.0)
        assert detect_tissue(slide).mask.any()


def test_plain_tiff_falls_back_to_tifffile():
    path = _slide_path("kidney-48-5.tif")
    with open_slide(path) as slide:
        assert slide.backend == "tifffile" and slide.level_dimensions == [(1493, 901)] and slide.mpp is None
        np.testing.assert_array_equal(slide.read_region(300, 200, 0, 400, 300),
                                      tifffile.imread(path)[200:500, 300:700])
        assert slide.thumbnail(300).shape == (181, 300, 3)


def test_glas_images_with_masks_give_patches_and_mask_patches(tmp_path):
    root = data_root()
    table = None if root is None else root / "glas" / "glas.csv"
    if table is None or not table.is_file():
        pytest.skip("GlaS (glas/glas.csv) not found: set MEDMTL_DATA to the folder holding glas/ (default ../shared/data)")
    rows = table.read_text().splitlines()
    header = rows[0].split(",")
    lines = [rows[0]]
    for row in rows[1:3]:  # two images, paths made absolute
        cells = row.split(",")
        for column in ("image", "mask"):
            cells[header.index(column)] = str(table.parent / cells[header.index(column)])
        lines.append(",".join(cells))
    (tmp_path / "two.csv").write_text("\n".join(lines) + "\n")
    manifest = extract_patches(tmp_path / "two.csv", tmp_path / "patches", 12, patch_size=64, target_mpp=0.62,
                               slide_mpp=0.62)
    found = pd.read_csv(manifest, dtype=str)
    assert len(found) == 24 and {"mask", "malignant", "grade", "patient"} <= set(found.columns)
    masks = [np.asarray(Image.open(tmp_path / "patches" / name)) for name in found["mask"]]
    assert all(m.shape == (64, 64) and set(np.unique(m)) <= {0, 255} for m in masks)
    assert any(m.any() for m in masks)  # glands are found in some patches
