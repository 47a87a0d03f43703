"""Slide-level training on embedding grids: one slide per step, Cox loss with a memory bank."""

import numpy as np
import pytest

from medmtl import grid_store
from medmtl.config import config_from_dict
from medmtl.predict import predict_files
from medmtl.training.run import load_run, train


def write_grids(folder, n=24, channels=4, seed=0):
    """Grids whose channel-0 'tumour' signal sets the class and shortens survival."""
    rng = np.random.default_rng(seed)
    lines = ["grid,label,time,event"]
    for i in range(n):
        label = i % 2
        height, width = rng.integers(5, 9, size=2)
        grid = rng.normal(0, 0.3, size=(channels, height, width)).astype(np.float32)
        grid[0] += 1.5 * label
        store = grid_store.create_or_resume(folder, f"g{i}", channels, np.ones((height, width), bool),
                                            np.zeros((height, width, 2), np.int64), {"encoder": "synthetic"})
        for row in range(height):
            store.write_row(row, grid[:, row])
        grid_store.finish(store)
        time = float(rng.exponential(100 if label else 400)) + 1
        lines.append(f"g{i}.zarr,{label},{time:.1f},{int(rng.random() < 0.8)}")
    (folder / "grids.csv").write_text("\n".join(lines) + "\n")
    return folder / "grids.csv"


@pytest.mark.slow
def test_grid_model_learns_class_and_risk_one_slide_per_step(tmp_path):
    manifest = write_grids(tmp_path)
    config = config_from_dict({
        "seed": 0,
        "data": {"kind": "grid", "manifest": str(manifest), "channels": 4, "grid_size": 8, "batch_size": 1,
                 "label_col": "label", "classes": ["low", "high"], "time_col": "time", "event_col": "event",
                 "val_fraction": 0.33},
        "model": {"encoder": {"name": "small_cnn", "options": {"width": 8, "stages": 2, "norm": "group"}},
                  "tasks": [{"kind": "classification"}, {"kind": "survival", "memory": 16}]},
        "optim": {"lr": 0.003},
        "trainer": {"max_epochs": 6, "n_bootstrap": 50, "progress_bar": False, "monitor": "val/loss"},
    })
    result = train(config, tmp_path / "run")
    assert result.metrics["classification"]["auc"] > 0.9
    assert result.metrics["survival"]["c_index"] > 0.6

    config, model = load_run(tmp_path / "run")
    predictions = predict_files(config, model, [tmp_path / "g0.zarr", tmp_path / "g1.zarr"], tmp_path / "pred")
    low, high = (predictions[str(tmp_path / f"g{i}.zarr")] for i in (0, 1))
    assert len(low["classification"]) == 2 and len(low["survival"]) == 1
    assert high["classification"][1] > low["classification"][1]
