"""End-to-end training through the Python API on phantom data."""

import json
import math

import pytest
import torch

from medmtl.config import config_from_dict
from medmtl.errors import ConfigError, TrainingError
from medmtl.training.run import load_run, train

from helpers import tiny_config

pytestmark = pytest.mark.slow

BATCHES_PER_EPOCH = 3  # 48 phantom training images, batch size 16


def test_train_writes_run_directory(tmp_path):
    result = train(config_from_dict(tiny_config()), tmp_path / "run")
    run = tmp_path / "run"
    for path in ("config.yaml", "checkpoints/last.ckpt", "checkpoints/best.ckpt", "logs/csv/metrics.csv",
                 "metrics.json"):
        assert (run / path).exists(), path
    assert list((run / "logs" / "tensorboard").glob("events.out.tfevents.*"))
    metrics = json.loads((run / "metrics.json").read_text())
    assert set(metrics) == {"classification", "segmentation", "reconstruction"}
    cls = metrics["classification"]
    assert 0 <= cls["auc"] <= 1 and len(cls["auc_ci95"]) == 2
    assert cls["auc_ci95"][0] <= cls["auc"] <= cls["auc_ci95"][1]
    assert 0 <= metrics["segmentation"]["dice"] <= 1
    assert result.metrics["classification"]["n"] == 24
    config, model = load_run(run)
    assert list(model.tasks) == ["classification", "segmentation", "reconstruction"]


def test_same_seed_same_result(tmp_path):
    a = train(config_from_dict(tiny_config(max_epochs=1)), tmp_path / "a").metrics
    b = train(config_from_dict(tiny_config(max_epochs=1)), tmp_path / "b").metrics
    assert a == b


def test_nan_loss_stops_with_clear_message_and_keeps_last_good_checkpoint(tmp_path, monkeypatch):
    from medmtl.tasks.classification import ClassificationTask

    original = ClassificationTask.compute_loss
    calls = {"n": 0}

    def exploding(self, prediction, target):
        calls["n"] += 1
        value = original(self, prediction, target)
        return value * float("nan") if calls["n"] > 4 else value  # 3 batches per epoch: NaN in epoch 2

    monkeypatch.setattr(ClassificationTask, "compute_loss", exploding)
    with pytest.raises(TrainingError, match="became nan.*last.ckpt") as stopped:
        train(config_from_dict(tiny_config(max_epochs=3)), tmp_path / "run")
    assert f"the last good checkpoint is {tmp_path / 'run' / 'checkpoints' / 'last.ckpt'}" in str(stopped.value)
    checkpoint = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", weights_only=False)
    assert checkpoint["global_step"] == BATCHES_PER_EPOCH  # the one finished epoch
    assert all(torch.isfinite(v).all() for v in checkpoint["state_dict"].values() if v.is_floating_point())


def test_nan_loss_in_the_first_epoch_names_no_checkpoint(tmp_path, monkeypatch):
    from medmtl.tasks.classification import ClassificationTask

    original = ClassificationTask.compute_loss
    monkeypatch.setattr(ClassificationTask, "compute_loss",
                        lambda self, prediction, target: original(self, prediction, target) * float("nan"))
    with pytest.raises(TrainingError, match="became nan") as stopped:
        train(config_from_dict(tiny_config(max_epochs=2)), tmp_path / "run")
    assert "no checkpoint was written yet" in str(stopped.value) and "last.ckpt" not in str(stopped.value)
    assert not (tmp_path / "run" / "checkpoints" / "last.ckpt").exists()


def test_task_without_targets_in_data_is_a_config_error(tmp_path):
    raw = tiny_config()
    raw["model"]["tasks"].append({"kind": "regression", "name": "grade", "target": "grade"})
    with pytest.raises(ConfigError, match="grade"):
        train(config_from_dict(raw), tmp_path / "run")


def test_refuses_to_overwrite_without_resume(tmp_path):
    train(config_from_dict(tiny_config(max_epochs=1)), tmp_path / "run")
    with pytest.raises(ConfigError, match="--resume"):
        train(config_from_dict(tiny_config(max_epochs=1)), tmp_path / "run", resume=False)


def test_resume_continues_to_more_epochs(tmp_path):
    train(config_from_dict(tiny_config(max_epochs=1)), tmp_path / "run")
    result = train(config_from_dict(tiny_config(max_epochs=2)), tmp_path / "run")
    checkpoint = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", weights_only=False)
    assert checkpoint["global_step"] == 2 * BATCHES_PER_EPOCH
    assert not math.isnan(result.metrics["segmentation"]["dice"])
