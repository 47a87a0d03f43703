import numpy as np
import pytest
from PIL import Image

from medmtl.data.image_io import array_to_chw, boxes_from_mask, read_image, read_mask
from medmtl.errors import DataError


def test_grey_png_scaled_to_unit(tmp_path):
    path = tmp_path / "grey.png"
    Image.fromarray(np.array([[0, 255], [51, 102]], dtype=np.uint8)).save(path)
    image = read_image(path, 1)
    assert image.dtype == np.float32 and image.shape == (1, 2, 2)
    np.testing.assert_allclose(image[0], [[0, 1], [0.2, 0.4]], atol=1e-6)
    rgb = read_image(path, 3)
    assert rgb.shape == (3, 2, 2) and np.allclose(rgb[0], rgb[2])


def test_rgb_to_grey_by_luminance(tmp_path):
    path = tmp_path / "rgb.png"
    pixels = np.zeros((1, 3, 3), dtype=np.uint8)
    pixels[0, 0] = (255, 0, 0)
    pixels[0, 1] = (0, 255, 0)
    pixels[0, 2] = (0, 0, 255)
    Image.fromarray(pixels).save(path)
    grey = read_image(path, 1)[0, 0]
    np.testing.assert_allclose(grey, [0.299, 0.587, 0.114], atol=1e-5)
    assert read_image(path, 3).shape == (3, 1, 3)


def test_16bit_png_uses_full_range(tmp_path):
    path = tmp_path / "deep.png"
    Image.fromarray(np.array([[0, 65535, 32768]], dtype=np.uint16)).save(path)
    image = read_image(path, 1)
    np.testing.assert_allclose(image[0, 0], [0, 1, 32768 / 65535], atol=1e-5)


def test_missing_and_corrupt_files_are_named(tmp_path):
    with pytest.raises(DataError, match="nothere.png.*does not exist"):
        read_image(tmp_path / "nothere.png")
    bad = tmp_path / "garbage.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n this is not a png at all")
    with pytest.raises(DataError, match="garbage.png.*cannot be read as an image"):
        read_image(bad)
    with pytest.raises(DataError, match="garbage.png.*cannot be read as an image"):
        read_mask(bad)


def test_read_mask_any_nonzero_any_channel(tmp_path):
    grey = tmp_path / "m.png"
    Image.fromarray(np.array([[0, 1], [255, 0]], dtype=np.uint8)).save(grey)
    assert read_mask(grey).tolist() == [[False, True], [True, False]]
    rgb = tmp_path / "m_rgb.png"
    pixels = np.zeros((2, 2, 3), dtype=np.uint8)
    pixels[0, 0, 2] = 200
    Image.fromarray(pixels).save(rgb)
    assert read_mask(rgb).tolist() == [[True, False], [False, False]]
    rgba = tmp_path / "m_rgba.png"
    Image.fromarray(np.dstack([np.zeros((2, 2, 3), np.uint8), np.full((2, 2), 255, np.uint8)])).save(rgba)
    assert not read_mask(rgba).any()  # opaque black: alpha is no label


def test_boxes_one_per_8_connected_component():
    mask = np.zeros((10, 12), dtype=bool)
    mask[1:3, 2:5] = True       # component 1
    mask[3, 5] = True           # diagonal neighbour: same component with 8-connectivity
    mask[7:9, 8:11] = True      # component 2
    mask[9, 0] = True           # single pixel
    boxes = boxes_from_mask(mask)
    assert boxes.dtype == np.float32
    assert boxes.tolist() == [[2, 1, 6, 4], [8, 7, 11, 9], [0, 9, 1, 10]]
    assert boxes_from_mask(mask, min_area=2).shape == (2, 4)
    assert boxes_from_mask(np.zeros((4, 4), bool)).shape == (0, 4)


def test_array_to_chw():
    assert array_to_chw(np.full((4, 5), 255, np.uint8), 1).max() == 1.0
    assert array_to_chw(np.zeros((4, 5, 3), np.uint8), 1).shape == (1, 4, 5)
    assert array_to_chw(np.full((4, 5), 0.5, np.float32), 3).shape == (3, 4, 5)
