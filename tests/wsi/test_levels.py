import math

import pytest

from medmtl.errors import ConfigError
from medmtl.wsi.levels import best_level_for_downsample, check_mpp, level_for_downsample, level_to_level0

DOWNSAMPLES = [1.0, 4.0, 16.0]


def test_best_level_is_coarsest_not_coarser_than_asked():
    assert best_level_for_downsample(DOWNSAMPLES, 1.0) == 0
    assert best_level_for_downsample(DOWNSAMPLES, 3.9) == 0
    assert best_level_for_downsample(DOWNSAMPLES, 4.0) == 1
    assert best_level_for_downsample(DOWNSAMPLES, 100.0) == 2
    assert best_level_for_downsample(DOWNSAMPLES, 3.9, tolerance=0.1) == 1


def test_level_for_downsample_gives_extra_factor_and_snaps_within_tolerance():
    assert level_for_downsample(DOWNSAMPLES, 8.0) == (1, 2.0)
    assert level_for_downsample(DOWNSAMPLES, 64.0) == (2, 4.0)
    assert level_for_downsample(DOWNSAMPLES, 4.2) == (1, 1.0)   # 5 % off: read level 1 as is
    assert level_for_downsample(DOWNSAMPLES, 3.8) == (1, 1.0)
    level, extra = level_for_downsample(DOWNSAMPLES, 4.2, tolerance=0.0)
    assert level == 1 and math.isclose(extra, 1.05)


def test_level_to_level0_round_trips_through_openslide_mapping():
    for downsample in (1.0, 2.0, 2.0005055500659967, 3.999, 4.0001):
        for coordinate in range(0, 5000, 7):
            assert math.floor(level_to_level0(coordinate, downsample) / downsample) == coordinate


def test_check_mpp():
    assert check_mpp("0.25") == 0.25
    for bad in (0, -1, float("nan"), float("inf"), "abc", None):
        with pytest.raises(ConfigError, match="mpp"):
            check_mpp(bad)
