"""A head whose loss weight is 0 is not run in training (no forward, no backward), yet evaluated."""

import pytest

from helpers import tiny_config

from medmtl.config import config_from_dict
from medmtl.tasks import ReconstructionTask


@pytest.mark.slow
def test_zero_weight_head_is_skipped_in_training_and_still_evaluated(tmp_path, monkeypatch):
    from medmtl.training.run import train

    calls = {"train": 0, "eval": 0}
    original = ReconstructionTask.forward

    def counting_forward(self, *args, **kwargs):
        calls["train" if self.training else "eval"] += 1
        return original(self, *args, **kwargs)

    monkeypatch.setattr(ReconstructionTask, "forward", counting_forward)
    raw = tiny_config(max_epochs=1)
    raw["loss"] = {"weights": {"reconstruction": 0.0}}
    result = train(config_from_dict(raw), tmp_path / "run")
    assert calls["train"] == 0
    assert calls["eval"] > 0 and "reconstruction" in result.metrics  # a switched-off task is still evaluated
