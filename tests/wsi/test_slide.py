import numpy as np
import pytest
import tifffile
from PIL import Image

from medmtl.errors import ConfigError, DataError
from medmtl.wsi.scene import make_scene
from medmtl.wsi.slide import _block_mean, open_slide


def _scene_of(info):
    return make_scene(info.width, info.height, info.label, info.seed, info.mpp)


def test_openslide_opens_synthetic_slide_with_levels_and_mpp(synthetic_slide):
    with open_slide(synthetic_slide.path) as slide:
        assert slide.backend == "openslide"
        assert slide.level_count == 3
        assert slide.level_dimensions == [(2048, 1536), (1024, 768), (512, 384)]
        assert slide.level_downsamples == pytest.approx([1.0, 2.0, 4.0])
        assert slide.mpp == pytest.approx(0.5) and slide.mpp_source == "metadata"
        assert slide.properties["openslide.mpp-x"] == "0.5"
        assert slide.level_mpp(2) == pytest.approx(2.0)


def test_mpp_argument_overrides_metadata(synthetic_slide):
    with open_slide(synthetic_slide.path, mpp=0.25) as slide:
        assert slide.mpp == 0.25 and slide.mpp_source == "argument" and slide.metadata_mpp == pytest.approx(0.5)
    with pytest.raises(ConfigError, match="mpp"):
        open_slide(synthetic_slide.path, mpp=-1)


def test_level_for_mpp(synthetic_slide):
    with open_slide(synthetic_slide.path) as slide:
        assert slide.level_for_mpp(0.5) == (0, 1.0)
        assert slide.level_for_mpp(1.0) == (1, 1.0)
        assert slide.level_for_mpp(2.0) == (2, 1.0)
        assert slide.level_for_mpp(1.05) == (1, 1.0)   # within the 10 % tolerance
        assert slide.level_for_mpp(0.47) == (0, 1.0)   # slightly finer than level 0, tolerated
        assert slide.level_for_mpp(1.5) == (1, pytest.approx(1.5))
        assert slide.level_for_mpp(8.0) == (2, pytest.approx(4.0))
        with pytest.raises(DataError, match=r"tumour\.tif.*0\.25 µm/px is not available.*level 0 has 0\.5"):
            slide.level_for_mpp(0.25)
        with pytest.raises(DataError, match="not available"):
            slide.level_for_mpp(0.47, tolerance=0.0)
        with pytest.raises(ConfigError, match="target_mpp"):
            slide.level_for_mpp(0)


def test_read_region_matches_rendered_content(synthetic_slide):
    scene = _scene_of(synthetic_slide)
    with open_slide(synthetic_slide.path) as slide:
        region = slide.read_region(700, 500, 0, 300, 200)
        assert region.shape == (200, 300, 3) and region.dtype == np.uint8
        np.testing.assert_array_equal(region, scene.render(700, 500, 300, 200))  # zlib is lossless
        level1 = slide.read_region(700, 500, 1, 150, 100)
        np.testing.assert_array_equal(level1, scene.render(350, 250, 150, 100, downsample=2.0))
        np.testing.assert_array_equal(slide.read_level_region(2, 10, 20, 30, 40),
                                      scene.render(10, 20, 30, 40, downsample=4.0))
        # the corner is glass, the middle of the first blob tissue (pink: red above green)
        assert slide.read_region(0, 0, 0, 16, 16).min() > 225
        cx, cy = (int(v) for v in scene.blobs[0, :2])
        centre = slide.read_region(cx - 4, cy - 4, 0, 8, 8).astype(int)
        assert (centre[..., 0] - centre[..., 1]).mean() > 30


def test_read_region_outside_slide_is_white(synthetic_slide):
    with open_slide(synthetic_slide.path) as slide:
        region = slide.read_region(2040, 1530, 0, 20, 10)
        assert (region[:, 8:] == 255).all() and (region[6:] == 255).all()


def test_thumbnail_and_read_downsampled(synthetic_slide):
    with open_slide(synthetic_slide.path) as slide:
        thumb = slide.thumbnail(256)
        assert thumb.shape == (192, 256, 3) and thumb.dtype == np.uint8
        small, downsample = slide.read_downsampled(16)
        assert downsample == pytest.approx(16.0) and small.shape == (96, 128, 3)
        level2, downsample = slide.read_downsampled(4)
        assert downsample == pytest.approx(4.0) and level2.shape == (384, 512, 3)
        assert slide.thumbnail(10_000).shape == (1536, 2048, 3)  # never enlarged


def test_bad_arguments_and_closed_slide_name_the_file(synthetic_slide):
    slide = open_slide(synthetic_slide.path)
    with pytest.raises(DataError, match=r"tumour\.tif.*level 3 does not exist"):
        slide.read_region(0, 0, 3, 10, 10)
    with pytest.raises(DataError, match="region size"):
        slide.read_region(0, 0, 0, 0, 10)
    slide.close()
    slide.close()  # closing twice is harmless
    with pytest.raises(DataError, match=r"tumour\.tif.*closed"):
        slide.read_region(0, 0, 0, 10, 10)


def test_missing_mpp_needs_argument(tmp_path):
    path = tmp_path / "nompp.tif"
    tifffile.imwrite(path, np.full((512, 512, 3), 200, np.uint8), photometric="rgb", tile=(256, 256))
    with open_slide(path) as slide:
        assert slide.backend == "openslide" and slide.mpp is None
        with pytest.raises(DataError, match=r"nompp\.tif.*no µm/px.*--slide-mpp.*'mpp' column"):
            slide.level_for_mpp(1.0)
    with open_slide(path, mpp=0.25) as slide:
        assert slide.level_for_mpp(0.5) == (0, 2.0)


@pytest.mark.parametrize("make", ["missing", "folder", "text", "png_as_svs", "truncated_tiff"])
def test_non_slides_give_clear_errors(tmp_path, make):
    path = tmp_path / {"missing": "nothere.svs", "folder": "afolder.svs", "text": "notes.txt",
                       "png_as_svs": "photo.svs", "truncated_tiff": "broken.tif"}[make]
    expected = {"missing": "does not exist", "folder": "is a folder",
                "text": "cannot be read as a whole-slide image.*not a TIFF",
                "png_as_svs": "cannot be read as a whole-slide image.*not a TIFF",
                "truncated_tiff": "cannot be read as a whole-slide image"}[make]
    if make == "folder":
        path.mkdir()
    elif make == "text":
        path.write_text("hello, this is not a slide\n")
    elif make == "png_as_svs":
        Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(path, format="PNG")
    elif make == "truncated_tiff":
        full = tmp_path / "full.tif"
        tifffile.imwrite(full, np.zeros((64, 64, 3), np.uint8), photometric="rgb")
        path.write_bytes(full.read_bytes()[:20])
    with pytest.raises(DataError, match=path.name.replace(".", r"\.") + ".*" + expected):
        open_slide(path)


def test_block_mean_averages_blocks_and_partial_edges():
    pixels = np.arange(5 * 7 * 3, dtype=np.uint8).reshape(5, 7, 3)
    reduced = _block_mean(pixels, 2)
    assert reduced.shape == (3, 4, 3)
    expected = np.array([[pixels[r:r + 2, c:c + 2].reshape(-1, 3).mean(axis=0) for c in range(0, 7, 2)]
                         for r in range(0, 5, 2)])
    assert np.abs(reduced.astype(float) - expected).max() <= 0.5 + 1e-9
