import numpy as np
import pytest
from PIL import Image

from medmtl.data.image_io import array_to_chw, images_to_chw, read_image, read_mask
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


def test_array_to_chw():
    assert array_to_chw(np.full((4, 5), 255, np.uint8), 1).max() == 1.0
    assert array_to_chw(np.zeros((4, 5, 3), np.uint8), 1).shape == (1, 4, 5)
    assert array_to_chw(np.full((4, 5), 0.5, np.float32), 3).shape == (3, 4, 5)


def test_images_to_chw_converts_a_batch_like_one_image_at_a_time():
    rng = np.random.default_rng(0)
    batches = [rng.integers(0, 256, (3, 5, 6, 3), dtype=np.uint8),  # RGB
               rng.integers(0, 256, (3, 5, 6, 4), dtype=np.uint8),  # RGBA
               rng.integers(0, 65536, (3, 5, 6), dtype=np.uint16),  # grey, 16 bit
               rng.integers(0, 65536, (3, 5, 6, 3), dtype=np.uint16).astype(">u2"),
               rng.random((3, 5, 6, 1)).astype(np.float32),
               rng.normal(size=(3, 5, 6, 3)) * [[[[1.0]]], [[[50.0]]], [[[0.0]]]],  # own range per image
               rng.integers(0, 4000, (3, 5, 6), dtype=np.int32) * [[[1]], [[0]], [[0]]]]
    for pixels in batches:
        for channels in (1, 3):
            batch = images_to_chw(pixels, channels)
            assert batch.dtype == np.float32 and batch.shape == (3, channels, 5, 6)
            assert batch.min() >= 0 and batch.max() <= 1
            for image, one in zip(pixels, batch):
                np.testing.assert_array_equal(array_to_chw(image, channels), one)


def test_images_to_chw_scaling_and_luma():
    rgb = np.array([[[[255, 0, 0], [0, 255, 0], [0, 0, 255], [51, 51, 51]]]], dtype=np.uint8)  # [1, 1, 4, 3]
    np.testing.assert_allclose(images_to_chw(rgb, 1)[0, 0, 0], [0.299, 0.587, 0.114, 0.2], atol=1e-6)
    np.testing.assert_allclose(images_to_chw(rgb, 3)[0, :, 0, 3], [0.2, 0.2, 0.2], atol=1e-7)
    assert images_to_chw(np.full((2, 3, 3), 7.5), 1).max() == 0  # constant image outside [0, 1]
    np.testing.assert_allclose(images_to_chw(np.array([[[2, 4]], [[300, 600]]]), 1)[:, 0, 0],
                               [[2 / 255, 4 / 255], [300 / 65535, 600 / 65535]], rtol=1e-6)


def test_images_to_chw_rejects_bad_shapes_and_values():
    with pytest.raises(DataError, match="tiles.*5 channels"):
        images_to_chw(np.zeros((2, 4, 4, 5), np.uint8), 3, source="tiles")
    with pytest.raises(DataError, match=r"expected \[N, H, W\]"):
        images_to_chw(np.zeros((4, 4), np.uint8), 1)
    with pytest.raises(DataError, match="NaN"):
        images_to_chw(np.full((1, 2, 2), np.nan), 1)
    with pytest.raises(DataError, match="channels must be 1 or 3"):
        images_to_chw(np.zeros((1, 2, 2), np.uint8), 2)
