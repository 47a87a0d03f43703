"""``last.ckpt`` is the end of the last finished epoch, whatever the monitored metric did."""

from __future__ import annotations

import json

import pytest
import torch
from helpers import tiny_config

from medmtl.config import config_from_dict
from medmtl.training.run import train

pytestmark = pytest.mark.slow

BATCHES_PER_EPOCH = 3  # 48 phantom training images, batch size 16


def _load(path):
    return torch.load(path, map_location="cpu", weights_only=True)


def test_last_checkpoint_follows_every_epoch_when_the_metric_stops_improving(tmp_path, monkeypatch):
    from medmtl.tasks.classification import ClassificationTask

    original = ClassificationTask.compute_metrics

    def constant_auc(self, summary, *args, **kwargs):  # the monitored val/classification/auc never improves
        return {**original(self, summary, *args, **kwargs), "auc": 0.5}

    monkeypatch.setattr(ClassificationTask, "compute_metrics", constant_auc)
    run = tmp_path / "run"
    result = train(config_from_dict(tiny_config(max_epochs=3)), run)
    best, last = _load(run / "checkpoints" / "best.ckpt"), _load(run / "checkpoints" / "last.ckpt")
    assert (best["epoch"], best["global_step"]) == (0, BATCHES_PER_EPOCH)  # only epoch 1 was "best"
    assert (last["epoch"], last["global_step"]) == (2, 3 * BATCHES_PER_EPOCH)  # epoch 3 finished
    assert any(not torch.equal(best["state_dict"][k], last["state_dict"][k]) for k in best["state_dict"])
    assert result.best_checkpoint == run / "checkpoints" / "best.ckpt"
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["best.ckpt", "last.ckpt"]

    train(config_from_dict(tiny_config(max_epochs=4)), run)  # resumes from epoch 3, trains one more
    resumed = _load(run / "checkpoints" / "last.ckpt")
    assert (resumed["epoch"], resumed["global_step"]) == (3, last["global_step"] + BATCHES_PER_EPOCH)
    assert _load(run / "checkpoints" / "best.ckpt")["global_step"] == BATCHES_PER_EPOCH  # still epoch 1
    started = json.loads((run / "environment.json").read_text())  # one entry per start of training
    assert [entry["resumed_from"] for entry in started] == [None, "last.ckpt"]
