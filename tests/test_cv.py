"""Cross-validation (medmtl.cv): the partition, out-of-fold metrics, the fold ensemble, reruns, bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest
from helpers import tiny_config
from PIL import Image
from typer.testing import CliRunner

from medmtl.cli import app
from medmtl.compare import for_fold
from medmtl.config import config_from_dict
from medmtl.cv import cv_config, run_cv
from medmtl.data.build import build_datasets
from medmtl.errors import ConfigError


def _manifest_config(folder, patients: int, per_patient: int = 3) -> dict:
    """A manifest of ``patients × per_patient`` tiny images grouped by patient, two of them in a test file."""
    rows = []
    for p in range(patients):
        for i in range(per_patient):
            name = f"p{p}_{i}.png"
            Image.fromarray(np.full((8, 8), 20 * p + i, np.uint8)).save(folder / name)
            rows.append(f"{name},{p % 2},patient{p}")
    (folder / "m.csv").write_text("image,label,patient\n" + "\n".join(rows) + "\n")
    (folder / "test.txt").write_text("p0_0\np1_0\n")
    (folder / "train.txt").write_text("p2_0\n")  # a train split file: cross-validation sets it aside
    raw = tiny_config()
    raw["data"] = {"kind": "manifest", "manifest": str(folder / "m.csv"), "root": str(folder), "label_col": "label",
                   "mask_col": None, "group_col": "patient", "image_size": 8, "split_test": "test.txt",
                   "split_train": "train.txt"}
    raw["model"]["tasks"] = [{"kind": "classification"}]
    return raw


def test_folds_partition_train_and_val_by_patient_and_leave_test_alone(tmp_path):
    config = cv_config(config_from_dict(_manifest_config(tmp_path, patients=6)), folds=3)
    assert config.data.split_train is None and config.data.split_test == "test.txt"
    validated = []
    for fold in (1, 2, 3):
        datasets = build_datasets(for_fold(config, fold).data)
        train, val = datasets["train"].records, datasets["val"].records
        assert not {r.group for r in train} & {r.group for r in val}
        assert sorted(datasets["test"].names()) == ["p0_0", "p1_0"]
        validated += [r.name for r in val]
    assert len(validated) == len(set(validated)) == 6 * 3 - 2  # every train/val image validated exactly once


def test_bad_fold_numbers_fail_before_anything_is_trained(tmp_path):
    config = config_from_dict(_manifest_config(tmp_path, patients=3))
    with pytest.raises(ConfigError, match=r"--folds.*5 folds need at least 5 groups.*3 group"):
        run_cv(config, tmp_path / "cv", folds=5)
    with pytest.raises(ConfigError, match="--folds.*at least 2"):
        run_cv(config, tmp_path / "cv", folds=1)
    assert not (tmp_path / "cv").exists()


def test_cv_command_end_to_end(tmp_path):
    raw = tiny_config(max_epochs=1)
    raw["data"]["phantom"]["n_test"] = 16
    (tmp_path / "cfg.yaml").write_text(json.dumps(raw))
    out = tmp_path / "cv"
    runner = CliRunner()
    result = runner.invoke(app, ["cv", str(tmp_path / "cfg.yaml"), "--folds", "2", "--out", str(out)])
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "cv.json").read_text())
    assert summary["folds"] == 2 and summary["n"]["classification"] == 2 * 24  # both validation folds, pooled
    assert 0.0 <= summary["out_of_fold"]["classification"]["auc"] <= 1.0
    assert len(summary["out_of_fold"]["segmentation"]["dice_ci95"]) == 2
    assert len(summary["per_fold"]["classification"]["auc"]["values"]) == 2
    assert "ensemble" in summary["test"] and (out / "cv.html").is_file()
    assert "Out-of-fold metrics" in (out / "cv.md").read_text()

    # the ensemble directory works as a run: evaluate defaults to its test split and matches metrics_test.json
    result = runner.invoke(app, ["evaluate", str(out), "--out", str(tmp_path / "again.json")])
    assert result.exit_code == 0, result.output
    again = json.loads((tmp_path / "again.json").read_text())
    written = json.loads((out / "metrics_test.json").read_text())
    assert again["classification"]["auc"] == pytest.approx(written["classification"]["auc"])
    result = runner.invoke(app, ["evaluate", str(out), "--split", "val"])
    assert result.exit_code == 2 and "held-out test split" in result.output

    # a rerun reuses the finished folds; another configuration into the same folder is refused
    result = runner.invoke(app, ["cv", str(tmp_path / "cfg.yaml"), "--folds", "2", "--out", str(out)])
    assert result.exit_code == 0 and result.output.count("finished, reused") == 2, result.output
    result = runner.invoke(app, ["cv", str(tmp_path / "cfg.yaml"), "--folds", "2", "--out", str(out),
                                 "model.encoder.options.width=4"])
    assert result.exit_code == 2 and "another configuration" in result.output
