"""Synthetic slides shared by the WSI tests (written once per test session)."""

from __future__ import annotations

import pytest

from medmtl.wsi.synthetic import SyntheticSlideInfo, make_synthetic_slide

SLIDE_WIDTH, SLIDE_HEIGHT = 2048, 1536


@pytest.fixture(scope="session")
def synthetic_slide(tmp_path_factory) -> SyntheticSlideInfo:
    """A 2048 x 1536, 0.5 µm/px, 3-level (downsamples 1, 2, 4) label-1 slide."""
    folder = tmp_path_factory.mktemp("wsi")
    return make_synthetic_slide(folder / "tumour.tif", SLIDE_WIDTH, SLIDE_HEIGHT, label=1, seed=3)


@pytest.fixture(scope="session")
def synthetic_slide_label0(tmp_path_factory) -> SyntheticSlideInfo:
    """The same tissue as ``synthetic_slide`` (same seed) with few tumour nuclei."""
    folder = tmp_path_factory.mktemp("wsi")
    return make_synthetic_slide(folder / "normal.tif", SLIDE_WIDTH, SLIDE_HEIGHT, label=0, seed=3)


@pytest.fixture(scope="session")
def white_slide(tmp_path_factory) -> SyntheticSlideInfo:
    """An all-background 1024 x 768 slide."""
    folder = tmp_path_factory.mktemp("wsi")
    return make_synthetic_slide(folder / "white.tif", 1024, 768, label=0, seed=1, n_blobs=0)
