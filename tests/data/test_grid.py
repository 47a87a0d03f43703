"""Grid datasets: crops, padding, the 8 symmetries, targets and errors."""

import numpy as np
import pytest
import torch

from medmtl import grid_store
from medmtl.data.build import build_datasets
from medmtl.data.config import DataConfig
from medmtl.data.grid import GridDataset, crop_or_pad, dihedral
from medmtl.data.records import Record
from medmtl.errors import DataError


def write_grid(folder, name, grid):
    channels, height, width = grid.shape
    tissue = np.ones((height, width), bool)
    coords = np.zeros((height, width, 2), np.int64)
    store = grid_store.create_or_resume(folder, name, channels, tissue, coords, {"encoder": "test"})
    for row in range(height):
        store.write_row(row, grid[:, row])
    return grid_store.finish(store)


def test_crop_or_pad():
    grid = np.arange(2 * 3 * 4, dtype=np.float32).reshape(2, 3, 4)
    out = crop_or_pad(grid, 5, -1, 0)
    assert out.shape == (2, 5, 5)
    np.testing.assert_array_equal(out[:, 1:4, :4], grid)
    assert out[:, 0].sum() == 0 and out[:, :, 4].sum() == 0
    np.testing.assert_array_equal(crop_or_pad(grid, 2, 1, 1), grid[:, 1:3, 1:3])


def test_dihedral_gives_eight_distinct_symmetries():
    grid = torch.arange(9.0).reshape(1, 3, 3)
    images = {tuple(dihedral(grid, i).flatten().tolist()) for i in range(8)}
    assert len(images) == 8
    assert torch.equal(dihedral(grid, 0), grid)


def test_grid_dataset_samples(tmp_path):
    rng = np.random.default_rng(0)
    paths = [write_grid(tmp_path, f"slide{i}", rng.random((4, 6 + i, 5)).astype(np.float32)) for i in range(3)]
    records = [Record(f"slide{i}", image_path=p, targets={"label": i % 2, "survival": (10.0 + i, 1)})
               for i, p in enumerate(paths)]
    val = GridDataset(records, channels=4, size=8)
    sample = val[0]
    assert sample["image"].shape == (4, 8, 8) and sample["label"] == 0
    np.testing.assert_allclose(sample["image"][:, 1:7, 2:7].numpy(), val.grid(0))  # centred, zero-padded
    train = GridDataset(records, channels=4, size=4, train=True)
    torch.manual_seed(0)
    crops = {tuple(train[2]["image"].flatten().tolist()) for _ in range(10)}
    assert len(crops) > 1  # random crops and symmetries
    assert train.available_targets() == {"label": 3, "survival": 3}
    with pytest.raises(DataError, match="3 embedding channels.*data.channels is 4"):
        GridDataset([Record("x", image_path=write_grid(tmp_path, "x", np.zeros((3, 2, 2), np.float32)))],
                    channels=4, size=2)[0]


def test_grid_kind_from_a_manifest(tmp_path):
    for i in range(6):
        write_grid(tmp_path, f"s{i}", np.full((2, 3, 3), i, np.float32))
    (tmp_path / "grids.csv").write_text("grid,label\n" + "".join(f"s{i}.zarr,{i % 2}\n" for i in range(6)))
    cfg = DataConfig.model_validate({"kind": "grid", "manifest": str(tmp_path / "grids.csv"), "channels": 2,
                                     "grid_size": 4, "label_col": "label", "classes": ["a", "b"],
                                     "val_fraction": 0.34})
    datasets = build_datasets(cfg)
    assert len(datasets["train"]) + len(datasets["val"]) == 6
    assert datasets["val"][0]["image"].shape == (2, 4, 4)
    (tmp_path / "bad.csv").write_text("grid,label\nmissing.zarr,0\n")
    with pytest.raises(DataError, match="bad.csv.*folder .*missing.zarr does not exist"):
        build_datasets(cfg.model_copy(update={"manifest": str(tmp_path / "bad.csv")}))


def test_image_kinds_still_need_one_or_three_channels():
    with pytest.raises(ValueError, match="1 \\(grey\\) or 3"):
        DataConfig.model_validate({"kind": "phantom", "channels": 4})
