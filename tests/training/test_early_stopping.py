import pytest
import torch
from helpers import tiny_config

from medmtl.config import config_from_dict
from medmtl.training.run import train

pytestmark = pytest.mark.slow


def test_early_stopping_ends_a_run_that_stopped_improving(tmp_path):
    # no change can beat a huge min_delta, so patience 1 stops after the second epoch
    raw = tiny_config(max_epochs=8, patience=1, min_delta=1e9, monitor="val/loss")
    train(config_from_dict(raw), tmp_path / "run")
    checkpoint = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", weights_only=False)
    assert checkpoint["global_step"] == 2 * 3  # 2 epochs of 3 batches
