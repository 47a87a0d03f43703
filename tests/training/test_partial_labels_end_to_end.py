"""Partial labels end to end: a CSV manifest where each image carries a different subset of targets."""

import numpy as np
import pytest
import yaml
from PIL import Image

from medmtl.config import load_config
from medmtl.training.run import train

pytestmark = pytest.mark.slow


def _write_manifest(folder, n=24):
    rng = np.random.default_rng(0)
    rows = ["image,mask,label,time,event"]
    for i in range(n):
        image = (rng.random((24, 24)) * 120).astype(np.uint8)
        mask = np.zeros((24, 24), np.uint8)
        mask[6:14, 6 + (i % 5): 14 + (i % 5)] = 255
        image[mask > 0] = 30 if i % 2 else 200
        Image.fromarray(image).save(folder / f"img{i}.png")
        mask_cell = ""
        if i % 3 == 0:  # only every third image has a mask
            Image.fromarray(mask).save(folder / f"img{i}_mask.png")
            mask_cell = f"img{i}_mask.png"
        label_cell = ["benign", "malignant"][i % 2] if i % 4 != 3 else ""  # a quarter unlabelled
        survival = f"{5 + i},{i % 2}" if i % 2 == 0 else ","  # half without follow-up
        rows.append(f"img{i}.png,{mask_cell},{label_cell},{survival}")
    (folder / "manifest.csv").write_text("\n".join(rows) + "\n")


def test_training_with_partially_labelled_manifest(tmp_path):
    _write_manifest(tmp_path)
    config = {
        "data": {"kind": "manifest", "manifest": str(tmp_path / "manifest.csv"), "label_col": "label",
                 "time_col": "time", "event_col": "event", "image_size": 24, "batch_size": 6,
                 "val_fraction": 0.5},
        "model": {"encoder": {"name": "small_cnn", "options": {"width": 8, "stages": 3}},
                  "tasks": [{"kind": "classification"}, {"kind": "segmentation"}, {"kind": "survival"}]},
        "trainer": {"max_epochs": 2, "n_bootstrap": 20, "progress_bar": False},
    }
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(config))
    result = train(load_config(path), tmp_path / "run")
    metrics = result.metrics
    counts = {task: metrics[task]["n"] for task in metrics}
    assert 0 < counts["segmentation"] < counts["classification"] < 12  # only labelled images are scored
    for task in metrics:
        for name, value in metrics[task].items():
            if isinstance(value, float) and name in ("dice", "iou", "accuracy"):
                assert np.isfinite(value), (task, name)
