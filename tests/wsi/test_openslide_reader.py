import numpy as np

from medmtl.wsi.openslide_reader import _mpp_from_properties, rgba_to_rgb_on_white


def test_rgba_composited_on_white():
    rgba = np.array([[[10, 20, 30, 255], [0, 0, 0, 0], [100, 0, 200, 128]]], dtype=np.uint8)
    rgb = rgba_to_rgb_on_white(rgba)
    assert rgb.dtype == np.uint8 and rgb.shape == (1, 3, 3)
    assert rgb[0, 0].tolist() == [10, 20, 30]
    assert rgb[0, 1].tolist() == [255, 255, 255]
    assert rgb[0, 2].tolist() == [177, 127, 227]


def test_mpp_from_properties():
    assert _mpp_from_properties({"openslide.mpp-x": "0.499", "openslide.mpp-y": "0.5"}) == 0.499
    assert _mpp_from_properties({"openslide.mpp-y": "0.25"}) == 0.25
    assert _mpp_from_properties({"openslide.mpp-x": "0"}) is None
    assert _mpp_from_properties({"openslide.mpp-x": "n/a"}) is None
    assert _mpp_from_properties({}) is None
