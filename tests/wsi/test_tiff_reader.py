import numpy as np
import pytest
import tifffile

from medmtl.wsi.slide import open_slide
from medmtl.wsi.tiff_reader import mpp_from_tiff_page


def test_tifffile_fallback_for_plain_stripped_tiff(tmp_path):
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, size=(300, 400, 3), dtype=np.uint8)
    path = tmp_path / "plain.tif"
    tifffile.imwrite(path, pixels, photometric="rgb", rowsperstrip=16, compression="zlib")
    with open_slide(path) as slide:
        assert slide.backend == "tifffile"
        assert slide.level_count == 1 and slide.level_dimensions == [(400, 300)]
        assert slide.mpp is None  # the default 1 pixel per inch is not a microscope's resolution
        np.testing.assert_array_equal(slide.read_region(37, 45, 0, 120, 70), pixels[45:115, 37:157])
        edge = slide.read_region(380, 290, 0, 40, 20)
        np.testing.assert_array_equal(edge[:10, :20], pixels[290:, 380:])
        assert (edge[10:] == 255).all() and (edge[:, 20:] == 255).all()
        assert slide.thumbnail(100).shape == (75, 100, 3)


def test_tifffile_fallback_reads_only_the_strips_it_needs(tmp_path, monkeypatch):
    path = tmp_path / "tall.tif"
    tifffile.imwrite(path, np.zeros((1000, 64, 3), np.uint8), photometric="rgb", rowsperstrip=10)
    requested = []
    original = tifffile.FileHandle.read_segments

    def spy(self, offsets, bytecounts, *args, **kwargs):
        requested.append(len(offsets))
        return original(self, offsets, bytecounts, *args, **kwargs)

    with open_slide(path) as slide:
        monkeypatch.setattr(tifffile.FileHandle, "read_segments", spy)
        slide.read_region(0, 505, 0, 64, 20)
    assert requested == [3]  # rows 505-524 lie in strips 50, 51 and 52 of 100


def test_tifffile_fallback_grey_16bit_and_resolution(tmp_path):
    path = tmp_path / "grey16.tif"
    grey = np.arange(64 * 32, dtype=np.uint16).reshape(32, 64) * 16
    tifffile.imwrite(path, grey, resolution=(1e4 / 0.25, 1e4 / 0.25), resolutionunit="CENTIMETER")
    with open_slide(path) as slide:
        assert slide.backend == "tifffile" and slide.mpp == pytest.approx(0.25)
        region = slide.read_region(0, 0, 0, 64, 32)
        np.testing.assert_array_equal(region[..., 0], (grey >> 8).astype(np.uint8))
        np.testing.assert_array_equal(region[..., 0], region[..., 2])


def test_mpp_from_aperio_description_and_resolution_tags(tmp_path):
    pixels = np.zeros((16, 16, 3), np.uint8)
    aperio = tmp_path / "aperio.tif"
    tifffile.imwrite(aperio, pixels, photometric="rgb", metadata=None,
                     description="Aperio Image Library v10\r\n16x16 (16x16) RGB|AppMag = 20|MPP = 0.4990")
    inch = tmp_path / "inch.tif"
    tifffile.imwrite(inch, pixels, photometric="rgb", resolution=(25400 / 0.5, 25400 / 0.5), resolutionunit="INCH")
    dpi72 = tmp_path / "dpi72.tif"
    tifffile.imwrite(dpi72, pixels, photometric="rgb", resolution=(72, 72), resolutionunit="INCH")
    with tifffile.TiffFile(aperio) as tif:
        assert mpp_from_tiff_page(tif.pages[0]) == pytest.approx(0.499)
    with tifffile.TiffFile(inch) as tif:
        assert mpp_from_tiff_page(tif.pages[0]) == pytest.approx(0.5)
    with tifffile.TiffFile(dpi72) as tif:
        assert mpp_from_tiff_page(tif.pages[0]) is None  # 353 µm/px: a screen, not a microscope
