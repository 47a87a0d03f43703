"""Volume preprocessing (medmtl.data.volume_preprocess): resampling checked against an independent
computation, geometry round trips, cropping, padding and intensity."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError
from scipy import ndimage

from medmtl.data.config import VolumeConfig
from medmtl.data.volume_io import VolumeGeometry, resample_to_reference
from medmtl.data.volume_preprocess import (
    foreground_center,
    preprocess_volume,
    target_grid,
)

pytest.importorskip("SimpleITK", reason="the optional extra 'volumes' (SimpleITK) is not installed")

SHAPE = (12, 16, 16)  # (z, y, x)
GEOMETRY = VolumeGeometry((16, 16, 12), (1.0, 1.0, 2.0), (5.0, -3.0, 10.0))


def smooth_volume() -> np.ndarray:
    z, y, x = np.meshgrid(*(np.arange(n, dtype=np.float32) for n in SHAPE), indexing="ij")
    return (100 * np.sin(x / 3) + 50 * np.cos(y / 4) + 10 * z).astype(np.float32)


def box_mask() -> np.ndarray:
    mask = np.zeros(SHAPE, np.uint8)
    mask[3:7, 4:9, 9:14] = 1
    return mask


def config(**kwargs) -> VolumeConfig:
    return VolumeConfig(**{"orientation": None, "intensity": "none", **kwargs})


def test_resampling_matches_map_coordinates():
    """Linear resampling to a new spacing, checked against scipy's map_coordinates on the same points."""
    image = smooth_volume()
    cfg = config(spacing=[0.7, 1.3, 1.5], crop="center")
    shape = (8, 10, 12)
    out = preprocess_volume(image, GEOMETRY, cfg, shape)
    assert out.image.shape == (1, *shape) and out.image.dtype == np.float32
    grid = out.geometry
    assert grid.size == (12, 10, 8) and grid.spacing == (0.7, 1.3, 1.5)
    np.testing.assert_allclose(grid.center(), GEOMETRY.center(), atol=1e-9)
    # every output voxel's physical point, expressed as a continuous index of the input (z, y, x)
    k, j, i = np.meshgrid(*(np.arange(n) for n in shape), indexing="ij")
    physical = [grid.origin[a] + grid.spacing[a] * index for a, index in enumerate((i, j, k))]  # identity direction
    continuous = [(physical[a] - GEOMETRY.origin[a]) / GEOMETRY.spacing[a] for a in (2, 1, 0)]
    expected = ndimage.map_coordinates(image.astype(np.float64), continuous, order=1, mode="nearest")
    np.testing.assert_allclose(out.image[0], expected, rtol=1e-4, atol=1e-3)


def test_resampling_to_half_the_spacing_matches_zoom_at_the_voxel_centres():
    image = smooth_volume()
    out = preprocess_volume(image, GEOMETRY, config(spacing=[1.0, 1.0, 1.0], crop="none"), None)
    assert out.image.shape == (1, 24, 16, 16)  # the z extent (12 x 2 mm) at 1 mm
    # output slice k lies at input index (k - 0.5) / 2 along z: slices 1, 3, 5... interpolate, in between
    np.testing.assert_allclose(out.image[0, 1::2][:-1], (image[:-1] * 0.75 + image[1:] * 0.25), rtol=1e-5, atol=1e-3)
    np.testing.assert_allclose(out.image[0, 2::2], (image[:-1] * 0.25 + image[1:] * 0.75), rtol=1e-5, atol=1e-3)


def test_orientation_is_a_lossless_reordering():
    """A volume stored with flipped x and y axes (RAS-like direction) gives the same LPS samples."""
    image = smooth_volume()
    flipped = VolumeGeometry(GEOMETRY.size, GEOMETRY.spacing,
                             tuple(GEOMETRY.index_to_physical((15, 15, 0))), (-1, 0, 0, 0, -1, 0, 0, 0, 1))
    stored = image[:, ::-1, ::-1].copy()  # the same physical volume on the flipped grid
    cfg = config(orientation="LPS", crop="none")
    reference = preprocess_volume(image, GEOMETRY, cfg, None)
    oriented = preprocess_volume(stored, flipped, cfg, None)
    assert oriented.geometry.mismatch(reference.geometry) is None
    np.testing.assert_allclose(oriented.image, reference.image, atol=1e-4)
    ras = preprocess_volume(image, GEOMETRY, config(orientation="RAS", crop="none"), None)
    assert ras.geometry.direction == (-1.0, 0.0, 0.0, 0.0, -1.0, 0.0, 0.0, 0.0, 1.0)
    np.testing.assert_allclose(ras.image[0], image[:, ::-1, ::-1], atol=1e-4)


@pytest.mark.parametrize("orientation", ["LPS", "RAS", "SLP"])
def test_geometry_round_trip_is_exact_at_the_same_spacing(orientation):
    """Preprocess a mask (crop around it), map the result back onto the original grid: the same mask."""
    mask = box_mask()
    out = preprocess_volume(smooth_volume(), GEOMETRY, config(orientation=orientation, crop="mask"), (8, 8, 8),
                            mask=mask)
    assert out.mask.dtype == np.int64 and out.mask.sum() == mask.sum()
    back = resample_to_reference(out.mask, out.geometry, GEOMETRY)
    np.testing.assert_array_equal(back, mask)


def test_geometry_round_trip_after_resampling():
    mask = box_mask()
    out = preprocess_volume(smooth_volume(), GEOMETRY, config(spacing=[0.5, 0.5, 0.5], crop="mask",
                                                              orientation="RAS"), (24, 20, 20), mask=mask)
    back = resample_to_reference(out.mask, out.geometry, GEOMETRY)
    dice = 2 * (back & mask).sum() / (back.sum() + mask.sum())
    assert dice > 0.95


def test_crop_mask_centres_the_foreground():
    mask = box_mask()
    out = preprocess_volume(smooth_volume(), GEOMETRY, config(crop="mask"), (4, 6, 6), mask=mask)
    # the 4x5x5 box (centre on a voxel in y and x) in a 4x6x6 crop: moved by half a voxel onto the grid
    offset = out.geometry.center() - foreground_center(mask, GEOMETRY)
    np.testing.assert_allclose(np.abs(offset), [0.5, 0.5, 0.0])
    assert out.mask.sum() == mask.sum() and out.mask.all(axis=0).sum() == 25
    start = (np.asarray(out.geometry.origin) - GEOMETRY.origin) / GEOMETRY.spacing  # (x, y, z), whole voxels
    np.testing.assert_allclose(start, np.round(start), atol=1e-9)
    x, y, z = np.round(start).astype(int)
    np.testing.assert_allclose(out.image[0], smooth_volume()[z:z + 4, y:y + 6, x:x + 6], atol=1e-4)  # a pure crop
    centre = preprocess_volume(smooth_volume(), GEOMETRY, config(crop="center"), (4, 6, 6), mask=mask)
    np.testing.assert_allclose(centre.geometry.center(), GEOMETRY.center())
    empty = preprocess_volume(smooth_volume(), GEOMETRY, config(crop="mask"), (4, 6, 6), mask=np.zeros(SHAPE, int))
    np.testing.assert_allclose(empty.geometry.center(), GEOMETRY.center())  # no foreground: the volume centre


def test_a_crop_larger_than_the_volume_is_padded():
    image = smooth_volume()
    out = preprocess_volume(image, GEOMETRY, config(crop="center"), (16, 20, 20), mask=box_mask())
    assert out.image.shape == (1, 16, 20, 20)
    assert np.allclose(out.image[0, :, :2, :], image.min()) and np.allclose(out.image[0, :2], image.min())
    np.testing.assert_allclose(out.image[0, 2:14, 2:18, 2:18], image, atol=1e-4)  # the volume in the middle
    assert out.mask.sum() == box_mask().sum() and not out.mask[:2].any()
    padded = preprocess_volume(image, GEOMETRY, config(crop="center", pad_value=-5000), (16, 20, 20))
    assert (padded.image[0, 0] == -5000).all()
    window = preprocess_volume(image, GEOMETRY, config(crop="center", intensity="window", window=[-50, 50]),
                               (16, 20, 20))
    assert (window.image[0, 0] == 0).all()  # padded with the window's low end, which becomes 0


def test_margin_adds_room_for_random_crops():
    out = preprocess_volume(smooth_volume(), GEOMETRY, config(crop="center", crop_jitter=2), (4, 6, 6), margin=2)
    assert out.image.shape == (1, 8, 10, 10)
    np.testing.assert_allclose(out.geometry.center(), GEOMETRY.center())


def test_intensity_modes():
    image = smooth_volume()
    whole = {"crop": "none"}
    window = preprocess_volume(image, GEOMETRY, config(intensity="window", window=[-100, 100], **whole), None).image
    np.testing.assert_allclose(window[0], np.clip((image + 100) / 200, 0, 1), atol=1e-6)
    minmax = preprocess_volume(image, GEOMETRY, config(intensity="minmax", **whole), None).image
    low, high = np.percentile(image, [0.5, 99.5])
    np.testing.assert_allclose(minmax[0], np.clip((image - low) / (high - low), 0, 1), atol=1e-6)
    assert minmax.min() == 0 and minmax.max() == 1
    zscore = preprocess_volume(image, GEOMETRY, config(intensity="zscore", **whole), None).image
    assert abs(zscore.mean()) < 1e-4 and abs(zscore.std() - 1) < 1e-4
    constant = preprocess_volume(np.full(SHAPE, 7, np.float32), GEOMETRY, config(intensity="minmax", **whole), None)
    assert (constant.image == 0).all()


def test_channels_share_one_grid():
    image = np.stack([smooth_volume(), -smooth_volume()])
    out = preprocess_volume(image, GEOMETRY, config(crop="center"), (6, 8, 8))
    assert out.image.shape == (2, 6, 8, 8)
    np.testing.assert_allclose(out.image[0], -out.image[1], atol=1e-4)


def test_target_grid_without_a_crop_covers_the_volume():
    grid = target_grid(GEOMETRY, config(spacing=[2.0, 2.0, 2.0], crop="none"), (4, 4, 4))
    assert grid.size == (8, 8, 12)
    np.testing.assert_allclose(grid.center(), GEOMETRY.center())


def test_orientation_codes_are_validated():
    assert VolumeConfig(orientation="ras").orientation == "RAS"
    for bad in ("LPX", "LLS", "LP", "LPSI"):
        with pytest.raises(ValidationError, match="orientation must be 3 letters"):
            VolumeConfig(orientation=bad)
    with pytest.raises(ValidationError):
        VolumeConfig(spacing=[1, 0, 1])
