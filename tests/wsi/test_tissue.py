import numpy as np
import pytest

from medmtl.errors import ConfigError
from medmtl.wsi.scene import make_scene
from medmtl.wsi.slide import open_slide
from medmtl.wsi.tissue import TissueConfig, clean_mask, detect_tissue, tissue_mask_from_rgb

PINK = (225, 150, 190)


def _white_with_pink_square(noise: float = 3.0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    image = np.full((64, 80, 3), 242.0) + rng.normal(0, noise, (64, 80, 3))
    truth = np.zeros((64, 80), bool)
    truth[16:48, 20:60] = True
    image[truth] = np.array(PINK) + rng.normal(0, noise, (truth.sum(), 3))
    return np.clip(image, 0, 255).astype(np.uint8), truth


def test_otsu_saturation_finds_the_pink_square():
    image, truth = _white_with_pink_square()
    mask, threshold = tissue_mask_from_rgb(image)
    assert mask.dtype == bool and mask.shape == truth.shape
    assert (mask == truth).mean() > 0.99 and 0.05 < threshold < 0.3


def test_background_only_gives_empty_mask():
    rng = np.random.default_rng(1)
    noisy_white = np.clip(240 + rng.normal(0, 3, (50, 50, 3)), 0, 255).astype(np.uint8)
    assert not tissue_mask_from_rgb(noisy_white)[0].any()
    assert not tissue_mask_from_rgb(np.full((50, 50, 3), 255, np.uint8))[0].any()
    assert not tissue_mask_from_rgb(np.zeros((0, 0, 3), np.uint8))[0].any()


def test_fixed_threshold_and_config_errors():
    image, truth = _white_with_pink_square()
    mask, threshold = tissue_mask_from_rgb(image, TissueConfig(method="fixed_saturation", threshold=0.15))
    assert threshold == 0.15 and (mask == truth).mean() > 0.99
    assert not tissue_mask_from_rgb(image, TissueConfig(method="fixed_saturation", threshold=0.9))[0].any()
    with pytest.raises(ConfigError, match="tissue.method"):
        TissueConfig(method="magic")
    with pytest.raises(ConfigError, match="tissue.threshold"):
        TissueConfig(method="fixed_saturation")
    with pytest.raises(ConfigError, match="tissue.closing_radius"):
        TissueConfig(closing_radius=-1)


def test_cleanup_removes_specks_fills_holes_and_keeps_border_tissue():
    mask = np.zeros((40, 40), bool)
    mask[0:20, 0:20] = True      # touches the border
    mask[8:11, 8:11] = False     # hole
    mask[30, 30] = True          # speck
    cleaned = clean_mask(mask, TissueConfig(closing_radius=1, min_object_pixels=4, fill_holes=True))
    assert cleaned[0:20, 0:20].all() and not cleaned[30, 30]
    assert cleaned.sum() == 400
    raw = clean_mask(mask, TissueConfig(closing_radius=0, min_object_pixels=0, fill_holes=False))
    np.testing.assert_array_equal(raw, mask)


def test_detect_tissue_on_synthetic_slide_matches_the_blobs(synthetic_slide):
    with open_slide(synthetic_slide.path) as slide:
        tissue = detect_tissue(slide)
    assert tissue.downsample == pytest.approx(32.0) and tissue.mask.shape == (48, 64)
    scene = make_scene(synthetic_slide.width, synthetic_slide.height, 1, synthetic_slide.seed)
    centres_x = (np.arange(64) + 0.5)[None, :] * 32
    centres_y = (np.arange(48) + 0.5)[:, None] * 32
    truth = scene.tissue_field(centres_x, centres_y) > 0
    assert (tissue.mask == truth).mean() > 0.95
    assert tissue.tissue_fraction == pytest.approx(synthetic_slide.tissue_fraction, abs=0.03)


def test_detect_tissue_on_white_slide_is_empty(white_slide):
    with open_slide(white_slide.path) as slide:
        tissue = detect_tissue(slide, TissueConfig(downsample=8))
    assert tissue.mask.shape == (96, 128) and not tissue.mask.any() and tissue.tissue_fraction == 0.0
