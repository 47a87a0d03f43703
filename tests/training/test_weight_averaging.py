"""Weight averaging (trainer.ema_decay, trainer.swa_start) and model selection (trainer.select)."""

from __future__ import annotations

import json

import lightning as L
import pytest
import torch

from medmtl.config import config_from_dict
from medmtl.errors import ConfigError
from medmtl.training.averaging import EMAAveraging
from medmtl.training.run import load_run_checkpoint, run_checkpoint, train


def _config(**trainer) -> dict:
    return {
        "seed": 0,
        "data": {"kind": "phantom", "image_size": 16, "batch_size": 8,
                 "phantom": {"n_train": 16, "n_val": 8, "seed": 1}},
        "model": {"encoder": {"name": "small_cnn", "options": {"width": 4, "stages": 2}},
                  "tasks": [{"kind": "classification"}]},
        "trainer": {"max_epochs": 2, "n_bootstrap": 10, "progress_bar": False, "accelerator": "cpu", **trainer},
    }


def _load(path):
    return torch.load(path, map_location="cpu", weights_only=True)


def _differs(a: dict, b: dict) -> bool:
    return any(not torch.equal(a[k], b[k]) for k in a if a[k].is_floating_point())


@pytest.mark.parametrize("decay", [0, 1, -0.1, 1.5])
def test_ema_decay_outside_zero_one_is_rejected(decay):
    with pytest.raises(ConfigError) as error:
        config_from_dict(_config(ema_decay=decay))
    assert error.value.key == "trainer.ema_decay"
    assert ("greater than 0" if decay <= 0 else "less than 1") in str(error.value)


def test_select_ema_needs_ema_decay():
    with pytest.raises(ConfigError) as error:
        config_from_dict(_config(select="ema"))
    assert error.value.key == "trainer.select" and "trainer.ema_decay" in str(error.value)


def test_ema_and_swa_together_are_rejected():
    with pytest.raises(ConfigError, match="trainer.ema_decay"):
        config_from_dict(_config(ema_decay=0.9, swa_start=0.5))


def test_unknown_select_is_rejected():
    with pytest.raises(ConfigError, match="trainer.select"):
        config_from_dict(_config(select="median"))


class _Toy(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.layer = torch.nn.Linear(2, 1)

    def training_step(self, batch, batch_idx):
        x, y = batch
        return ((self.layer(x) - y) ** 2).mean()

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


class _Recorder(L.Callback):
    def __init__(self):
        self.weights = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.weights.append({k: v.detach().clone() for k, v in pl_module.state_dict().items()})


def test_ema_follows_the_formula_step_by_step(tmp_path):
    torch.manual_seed(0)
    data = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.randn(16, 2), torch.randn(16, 1)),
                                       batch_size=4)
    recorder, decay = _Recorder(), 0.5
    module = _Toy()
    trainer = L.Trainer(max_epochs=1, accelerator="cpu", logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, callbacks=[recorder, EMAAveraging(decay)])
    trainer.fit(module, data)
    trainer.save_checkpoint(tmp_path / "toy.ckpt")
    expected = dict(recorder.weights[0])  # the first step copies the weights
    for raw in recorder.weights[1:]:
        expected = {k: decay * expected[k] + (1 - decay) * raw[k] for k in raw}
    saved = _load(tmp_path / "toy.ckpt")
    for key, value in expected.items():
        torch.testing.assert_close(saved["state_dict"][key], value)
        torch.testing.assert_close(module.state_dict()[key], value)  # after fit the module holds the average
    assert _differs(expected, recorder.weights[-1])


def test_ema_run_validates_checkpoints_and_evaluates_the_average_and_resumes(tmp_path):
    run = tmp_path / "ema"
    result = train(config_from_dict(_config(ema_decay=0.5, select="ema")), run)
    last = _load(run / "checkpoints" / "last.ckpt")
    assert {"current_model_state", "averaging_state"} <= set(last)
    assert _differs(last["state_dict"], last["current_model_state"])  # averaged ≠ raw
    best = _load(run / "checkpoints" / "best.ckpt")
    assert "current_model_state" in best  # best.ckpt, picked on the EMA's metric, holds the EMA too
    selection = json.loads((run / "selection.json").read_text())
    assert selection["select"] == "ema" and selection["weights"] == "ema" and selection["ema_decay"] == 0.5
    assert selection["ema_batchnorm"] == "recompute"
    assert selection["checkpoint"].endswith("last.ckpt") and selection["epochs"] == 2
    assert result.best_checkpoint == run / "checkpoints" / "last.ckpt"
    assert "_selection" not in json.loads((run / "metrics.json").read_text())

    _, model, info = load_run_checkpoint(run, "last")  # evaluate / predict / export read the average
    for key, value in model.state_dict().items():
        torch.testing.assert_close(value, last["state_dict"][f"model.{key}"])

    train(config_from_dict(_config(ema_decay=0.5, select="ema", max_epochs=3)), run)  # resumes with the EMA state
    resumed = _load(run / "checkpoints" / "last.ckpt")
    assert resumed["epoch"] == 2 and resumed["global_step"] == last["global_step"] + 2
    assert int(resumed["averaging_state"]["n_averaged"]) == int(last["averaging_state"]["n_averaged"]) + 2
    assert _differs(resumed["state_dict"], resumed["current_model_state"])


@pytest.mark.parametrize("select", ["best", "last"])
def test_selection_is_recorded(tmp_path, select):
    run = tmp_path / select
    train(config_from_dict(_config(select=select)), run)
    selection = json.loads((run / "selection.json").read_text())
    assert selection["select"] == select and selection["weights"] == "raw"
    assert selection["checkpoint"] == str(run / "checkpoints" / f"{select}.ckpt")
    assert selection["monitor"] == ("val/classification/auc" if select == "best" else None)
    assert "current_model_state" not in _load(run / "checkpoints" / "last.ckpt")
    # --checkpoint selected (the default of evaluate, predict, export, report) is the file metrics.json evaluated
    assert run_checkpoint(run, "selected") == run / "checkpoints" / f"{select}.ckpt"


def test_selected_checkpoint_follows_selection_json_and_falls_back_to_best(tmp_path):
    folder = tmp_path / "moved" / "checkpoints"
    folder.mkdir(parents=True)
    for name in ("best.ckpt", "last.ckpt"):
        (folder / name).write_bytes(b"")
    assert run_checkpoint(tmp_path / "moved", "selected") == folder / "best.ckpt"  # still training: no selection.json
    # recorded where the run was trained; found by file name after the run directory moved
    (tmp_path / "moved" / "selection.json").write_text(json.dumps({"checkpoint": "/elsewhere/checkpoints/last.ckpt"}))
    assert run_checkpoint(tmp_path / "moved", "selected") == folder / "last.ckpt"


def test_swa_averages_from_the_start_epoch_with_recomputed_batchnorm(tmp_path):
    run = tmp_path / "swa"
    train(config_from_dict(_config(swa_start=0.5, select="last")), run)  # epoch 2 of 2 is averaged
    last = _load(run / "checkpoints" / "last.ckpt")
    assert int(last["averaging_state"]["n_averaged"]) == 2  # the two steps of epoch 2
    assert _differs(last["state_dict"], last["current_model_state"])
    means = [k for k in last["state_dict"] if k.endswith("running_mean")]
    assert means and _differs({k: last["state_dict"][k] for k in means},
                              {k: last["current_model_state"][k] for k in means})
    assert json.loads((run / "selection.json").read_text())["weights"] == "swa"


def _batchnorm_stats_of_one_pass(run, config) -> dict:
    """The cumulative BatchNorm statistics of the run's last weights over one pass of its training data."""
    from medmtl.training.loaders import build_loaders

    _, model, _ = load_run_checkpoint(run, "last")
    norms = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None
    model.train()
    with torch.no_grad():
        for batch in build_loaders(config, model)["train"]:
            model(batch["image"])
    return {k: v for k, v in model.state_dict().items() if k.endswith(("running_mean", "running_var"))}


@pytest.mark.parametrize("batchnorm", ["recompute", "average"])
def test_ema_batchnorm_statistics_are_recomputed_for_the_average_or_averaged(tmp_path, batchnorm):
    raw = _config(ema_decay=0.5, select="ema", ema_batchnorm=batchnorm)
    raw["data"]["batch_size"] = 16  # the whole training set in one batch: the same batch in every pass
    config = config_from_dict(raw)
    run = tmp_path / batchnorm
    train(config, run)
    saved = {k.removeprefix("model."): v for k, v in _load(run / "checkpoints" / "last.ckpt")["state_dict"].items()}
    one_pass = _batchnorm_stats_of_one_pass(run, config)
    assert one_pass
    matches = all(torch.allclose(saved[k], v, rtol=1e-4, atol=1e-6) for k, v in one_pass.items())
    assert matches == (batchnorm == "recompute")


def test_unknown_ema_batchnorm_is_rejected():
    with pytest.raises(ConfigError, match="trainer.ema_batchnorm"):
        config_from_dict(_config(ema_decay=0.9, ema_batchnorm="freeze"))
