import numpy as np
import pytest

from medmtl.wsi.scene import TUMOUR_DENSITY_RANGES, TUMOUR_NUCLEUS, _hash_noise, make_scene


def test_rendering_does_not_depend_on_the_window():
    scene = make_scene(1024, 768, label=1, seed=5)
    for downsample in (1.0, 2.0, 8.0):
        big = scene.render(100, 80, 300, 200, downsample)
        part = scene.render(170, 130, 90, 60, downsample)
        np.testing.assert_array_equal(big[50:110, 70:160], part)


def test_label_sets_the_tumour_nuclei_density():
    dark = []
    for label in (0, 1):
        scene = make_scene(2048, 2048, label=label, seed=11)
        low, high = TUMOUR_DENSITY_RANGES[label]
        assert low <= scene.tumour_density <= high
        cx, cy = (int(v) for v in scene.blobs[0, :2])
        region = scene.render(cx - 128, cy - 128, 256, 256).astype(float)
        dark.append((np.abs(region - TUMOUR_NUCLEUS).sum(axis=-1) < 60).mean())
    assert dark[1] > 3 * dark[0]


def test_scene_geometry():
    scene = make_scene(1200, 900, label=0, seed=2, n_blobs=3, tumour_density=1.5)
    assert scene.blobs.shape == (3, 5) and scene.tumour_density == 1.5
    corners = np.array([0.0, 1199.0]), np.array([[0.0], [899.0]])
    assert (scene.tissue_field(*corners) < 0).all()
    assert scene.tissue_field(scene.blobs[:, 0], scene.blobs[:, 1]).min() > 0
    assert not scene.may_hold_tissue(0, 0, 10, 10)
    assert 0.0 < scene.tissue_fraction() < 0.6
    white = make_scene(400, 300, label=0, seed=2, n_blobs=0)
    assert white.tissue_fraction() == 0.0 and white.render(0, 0, 400, 300).min() > 235
    with pytest.raises(ValueError, match="label"):
        make_scene(100, 100, label=2, seed=0)


def test_hash_noise_is_deterministic_and_spread():
    ix, iy = np.arange(256)[None, :], np.arange(256)[:, None]
    noise = _hash_noise(ix, iy, 3)
    assert noise.dtype == np.float32 and noise.shape == (256, 256)
    assert -1 <= noise.min() < -0.99 and 0.99 < noise.max() < 1
    assert abs(float(noise.mean())) < 0.01
    np.testing.assert_array_equal(noise, _hash_noise(ix, iy, 3))
    assert not np.array_equal(noise, _hash_noise(ix, iy, 4))
