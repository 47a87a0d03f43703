"""Ordinary images (PNG, JPEG…) opened as one-level slides (medmtl.wsi.image_reader via open_slide)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from medmtl.errors import DataError
from medmtl.wsi.slide import open_slide
from medmtl.wsi.tiling import tile_slide


def test_png_is_a_one_level_slide_with_white_outside(tmp_path):
    pixels = np.random.default_rng(0).integers(0, 255, (40, 60, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(tmp_path / "field.png")
    with open_slide(tmp_path / "field.png", mpp=0.62) as slide:
        assert slide.backend == "pillow" and slide.dimensions == (60, 40) and slide.level_count == 1
        np.testing.assert_array_equal(slide.read_region(10, 5, 0, 20, 10), pixels[5:15, 10:30])
        edge = slide.read_region(50, 30, 0, 20, 20)
        np.testing.assert_array_equal(edge[:10, :10], pixels[30:, 50:])
        assert (edge[10:] == 255).all() and (edge[:, 10:] == 255).all()
        assert slide.level_mpp(0) == pytest.approx(0.62)


@pytest.mark.parametrize("mode", ["RGBA", "L", "I;16"])
def test_transparency_and_grey_become_rgb(tmp_path, mode):
    if mode == "RGBA":
        pixels = np.zeros((8, 8, 4), np.uint8)
        pixels[..., 3] = 0  # fully transparent: white, as OpenSlide shows areas outside a scan
        expected = np.full((8, 8, 3), 255, np.uint8)
        image = Image.fromarray(pixels, "RGBA")
    elif mode == "L":
        grey = np.arange(64, dtype=np.uint8).reshape(8, 8)
        expected, image = np.repeat(grey[..., None], 3, -1), Image.fromarray(grey)
    else:
        grey = (np.arange(64, dtype=np.uint16) * 1000).reshape(8, 8)
        expected = np.repeat((grey >> 8).astype(np.uint8)[..., None], 3, -1)
        image = Image.fromarray(grey)  # uint16: mode I;16
    image.save(tmp_path / "x.png")
    with open_slide(tmp_path / "x.png", mpp=1.0) as slide:
        np.testing.assert_array_equal(slide.read_region(0, 0, 0, 8, 8), expected)


def test_jpeg_dpi_is_taken_only_when_it_is_a_microscope_s(tmp_path):
    pixels = np.full((16, 16, 3), 120, np.uint8)
    Image.fromarray(pixels).save(tmp_path / "default.jpg", dpi=(72, 72))  # a writer's default: not µm/px
    Image.fromarray(pixels).save(tmp_path / "scan.jpg", dpi=(50800, 50800))  # 0.5 µm/px
    with open_slide(tmp_path / "default.jpg") as slide:
        assert slide.mpp is None
        with pytest.raises(DataError, match=r"default\.jpg.*no µm/px.*--slide-mpp"):
            tile_slide(slide, 8, target_mpp=1.0)
    with open_slide(tmp_path / "scan.jpg") as slide:
        assert slide.mpp == pytest.approx(0.5)


def test_a_broken_image_names_the_file(tmp_path):
    path = tmp_path / "broken.jpg"
    path.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    with pytest.raises(DataError, match=r"broken\.jpg: cannot be read as an image: Pillow cannot read it"):
        open_slide(path)
