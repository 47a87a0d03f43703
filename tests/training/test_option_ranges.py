"""Every training option is checked against its allowed range before any work starts, and a
monitor metric that no task produces is refused with the allowed values."""

from __future__ import annotations

import pytest
import yaml
from typer.testing import CliRunner

from medmtl.cli import app
from medmtl.config import config_from_dict
from medmtl.errors import ConfigError


def _raw() -> dict:
    return {
        "seed": 0,
        "data": {"kind": "phantom", "image_size": 32, "batch_size": 8,
                 "phantom": {"n_train": 8, "n_val": 8, "image_size": 32}},
        "model": {"encoder": {"name": "small_cnn", "options": {"width": 4, "stages": 2}},
                  "tasks": [{"kind": "classification"}, {"kind": "segmentation"}]},
        "trainer": {"max_epochs": 1, "progress_bar": False, "n_bootstrap": 10},
    }


@pytest.mark.parametrize(("override", "key", "allowed"), [
    ("optim.lr=0", "optim.lr", "greater than 0"),
    ("optim.lr=-0.01", "optim.lr", "greater than 0"),
    ("optim.weight_decay=-1e-4", "optim.weight_decay", "greater than or equal to 0"),
    ("trainer.max_epochs=-1", "trainer.max_epochs", "greater than or equal to 1"),
    ("trainer.max_epochs=0", "trainer.max_epochs", "greater than or equal to 1"),
    ("trainer.devices=0", "trainer.devices", "greater than or equal to 1"),
    ("trainer.limit_train_batches=0", "trainer.limit_train_batches", "greater than 0"),
    ("trainer.limit_val_batches=1.5", "trainer.limit_val_batches", "less than or equal to 1"),
    ("trainer.limit_train_batches=5", "trainer.limit_train_batches", "less than or equal to 1"),
    ("trainer.log_every_n_steps=0", "trainer.log_every_n_steps", "greater than or equal to 1"),
    ("trainer.n_bootstrap=-1", "trainer.n_bootstrap", "greater than or equal to 0"),
    ("trainer.num_threads=0", "trainer.num_threads", "greater than or equal to 1"),
    ("trainer.patience=-2", "trainer.patience", "greater than or equal to 0"),
    ("loss.weights.classification=-1", "loss.weights.classification", "greater than or equal to 0"),
])
def test_out_of_range_option_is_one_line_before_any_work(tmp_path, override, key, allowed):
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump(_raw()))
    result = CliRunner().invoke(app, ["train", str(config), "--out", str(tmp_path / "run"), override])
    assert result.exit_code == 2, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and f"'{key}'" in lines[0] and allowed in lines[0], lines
    assert not (tmp_path / "run").exists()


def test_edge_values_are_accepted():
    raw = _raw()
    raw["trainer"].update(limit_train_batches=1, limit_val_batches=0.5, n_bootstrap=0, patience=0, num_threads=1)
    raw["optim"] = {"weight_decay": 0.0}
    config = config_from_dict(raw)
    assert config.trainer.limit_train_batches == 1.0 and isinstance(config.trainer.limit_train_batches, float)


def test_monitor_that_no_task_produces_is_refused_before_training(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump(_raw()))
    result = CliRunner().invoke(app, ["train", str(config), "--out", str(tmp_path / "run"),
                                      "trainer.monitor=val/classification/aucc"])
    assert result.exit_code == 2, result.output
    line = result.stderr.strip()
    assert "\n" not in line and "'trainer.monitor'" in line and "val/classification/aucc" in line
    for allowed in ("val/loss", "val/classification/loss", "val/classification/auc", "val/segmentation/dice"):
        assert allowed in line
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_every_kind_names_the_metrics_it_computes():
    """``metric_names`` of the built-in kinds are the scalar metrics their compute_metrics returns."""
    import numpy as np
    import torch
    from helpers import make_samples

    from medmtl.builders import build_model
    from medmtl.data.collate import collate_samples
    from medmtl.training.run import check_monitor

    raw = _raw()
    raw["model"]["tasks"] = [{"kind": "classification"}, {"kind": "segmentation"}, {"kind": "reconstruction"},
                             {"kind": "regression", "target": "value"}, {"kind": "survival", "target": "survival"}]
    model = build_model(config_from_dict(raw)).eval()
    batch = collate_samples(make_samples(n=6, with_value=True, with_survival=True))
    with torch.no_grad():
        outputs = model(batch["image"], batch)
    for name, task in model.tasks.items():
        metrics = task.compute_metrics(task.summarize(*task.select(outputs[name], batch)), n_resamples=0)
        scalars = {k for k, v in metrics.items() if isinstance(v, (int, float, np.floating)) and k not in ("n", "events")}
        assert set(task.metric_names) == scalars, name
        check_monitor(f"val/{name}/{task.metric_names[0]}", model)
    with pytest.raises(ConfigError, match="trainer.monitor.*val/survival/c_index"):
        check_monitor("val/survival/auc", model)


@pytest.mark.parametrize("monitor,mode", [("val/classification/auc", "max"), ("val/classification/ece", "min"),
                                          ("val/reconstruction/mse", "min"), ("val/loss", "min")])
def test_monitor_mode_follows_the_direction_of_the_metric(monitor, mode):
    from helpers import tiny_config

    from medmtl.builders import build_model
    from medmtl.training.run import monitor_for

    config = config_from_dict(tiny_config(monitor=monitor))
    assert monitor_for(config, build_model(config)) == (monitor, mode)
