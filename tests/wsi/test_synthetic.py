import collections.abc
import tracemalloc

import numpy as np
import pandas as pd
import pytest
import tifffile

from medmtl.data.manifest import read_manifest
from medmtl.errors import ConfigError
from medmtl.wsi.scene import TUMOUR_DENSITY_RANGES
from medmtl.wsi.slide import open_slide
from medmtl.wsi.synthetic import make_synthetic_dataset, make_synthetic_slide, pyramid_levels


def test_pyramid_levels():
    assert pyramid_levels(2048, 1536, 256) == [(2048, 1536, 1.0), (1024, 768, 2.0), (512, 384, 4.0)]
    assert pyramid_levels(1000, 700, 256, levels=2, level_factor=4) == [(1000, 700, 1.0), (250, 175, 4.0)]
    assert len(pyramid_levels(40_000, 40_000, 256)) == 8


def test_file_layout_levels_are_separate_tiled_pages(synthetic_slide):
    with tifffile.TiffFile(synthetic_slide.path) as tif:
        pages = list(tif.pages)
        assert [p.shape for p in pages] == [(1536, 2048, 3), (768, 1024, 3), (384, 512, 3)]
        for index, page in enumerate(pages):
            assert page.is_tiled and page.tilewidth == 256 and page.compression.name == "ADOBE_DEFLATE"
            assert int(page.subfiletype) == (1 if index else 0)  # OpenSlide skips levels without it
            assert not page.subifds
            assert page.resolution[0] == pytest.approx(1e4 / (0.5 * 2**index))
        assert "label=1" in pages[0].description
    assert synthetic_slide.level_dimensions == ((2048, 1536), (1024, 768), (512, 384))
    assert TUMOUR_DENSITY_RANGES[1][0] <= synthetic_slide.value <= TUMOUR_DENSITY_RANGES[1][1]


def test_writer_streams_tiles_from_a_generator(tmp_path, monkeypatch):
    seen = []
    original = tifffile.TiffWriter.write

    def spy(self, data=None, *args, **kwargs):
        seen.append((isinstance(data, collections.abc.Iterator), kwargs.get("shape")))
        return original(self, data, *args, **kwargs)

    monkeypatch.setattr(tifffile.TiffWriter, "write", spy)
    make_synthetic_slide(tmp_path / "s.tif", 700, 600, label=0, seed=0, tile=256)
    assert seen == [(True, (600, 700, 3)), (True, (300, 350, 3))]


def test_medium_slide_is_written_without_holding_a_level(tmp_path):
    # level 0 alone is 3072 * 3072 * 3 = 27 MB; streaming keeps the peak far below that
    tracemalloc.start()
    try:
        info = make_synthetic_slide(tmp_path / "medium.tif", 3072, 3072, label=1, seed=4)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8e6, f"peak {peak / 1e6:.1f} MB"
    with open_slide(info.path) as slide:
        assert slide.level_count == 4 and slide.mpp == pytest.approx(0.5)


def test_mpp_and_arguments(tmp_path):
    info = make_synthetic_slide(tmp_path / "fine.tif", 512, 512, label=0, seed=1, mpp=0.2527, levels=2)
    with open_slide(info.path) as slide:
        assert slide.mpp == pytest.approx(0.2527, rel=1e-6) and slide.level_count == 2
    for kwargs, key in (({"label": 2}, "label"), ({"tile": 100}, "tile"), ({"width": 0}, "width"),
                        ({"compression": "jpeg"}, "compression"), ({"mpp": 0}, "mpp")):
        args = {"width": 512, "height": 512, "label": 0, "seed": 0, **kwargs}
        with pytest.raises(ConfigError, match=key):
            make_synthetic_slide(tmp_path / "bad.tif", **args)
    assert not list(tmp_path.glob(".*.tmp"))


def test_dataset_csv_reads_as_a_manifest(tmp_path):
    csv_path = make_synthetic_dataset(tmp_path / "set", 4, width=512, height=512, seed=0, show_progress=False)
    table = pd.read_csv(csv_path)
    assert table.columns.tolist() == ["image", "label", "value"]
    assert sorted(table["label"]) == [0, 0, 1, 1]
    for _, row in table.iterrows():
        low, high = TUMOUR_DENSITY_RANGES[int(row["label"])]
        assert low <= row["value"] <= high
        assert (csv_path.parent / row["image"]).is_file()
    records = read_manifest(csv_path, label_col="label", value_cols=["value"])
    assert [r.targets["label"] for r in records] == table["label"].tolist()
    assert np.allclose([r.targets["value"] for r in records], table["value"])
