"""The classification-only preset for MedMNIST-style archives trains on an .npz a new user brings."""

import json

import numpy as np
import pytest

from medmtl.config import load_config
from medmtl.errors import MedMTLError
from medmtl.training.run import train


def _archive(path, classes=3, size=28):
    rng = np.random.default_rng(0)
    arrays = {}
    for split, n in (("train", 24), ("val", 9), ("test", 9)):
        labels = np.arange(n) % classes
        images = rng.integers(0, 60, (n, size, size)).astype(np.uint8)
        images[:, :, : (size // classes)] += (labels * 60).astype(np.uint8)[:, None, None]  # learnable
        arrays |= {f"{split}_images": images, f"{split}_labels": labels[:, None]}
    np.savez(path, **arrays)
    return path


@pytest.mark.slow
def test_preset_trains_and_evaluates_the_test_split(tmp_path):
    archive = _archive(tmp_path / "toy.npz")
    config = load_config("medmnist-cls", [f"data.npz={archive}", "model.tasks.0.num_classes=3",
                                          "trainer.max_epochs=1", "trainer.n_bootstrap=10", "data.batch_size=8",
                                          "trainer.progress_bar=false"])
    assert config.data.classes is None  # class indices, not the benign/malignant of other presets
    assert config.trainer.select == "ema" and config.trainer.ema_decay == 0.99  # small validation splits
    assert config.trainer.ema_batchnorm == "recompute"  # averaged statistics cost Dice on BUSI (benchmarks/README.md)
    result = train(config, tmp_path / "run")
    assert json.loads((tmp_path / "run" / "selection.json").read_text())["weights"] == "ema"
    assert result.metrics["classification"]["n"] == 9
    assert json.loads((tmp_path / "run" / "metrics_test.json").read_text())["classification"]["n"] == 9


def test_preset_without_an_archive_says_which_key_to_set(tmp_path):
    with pytest.raises(MedMTLError) as error:
        train(load_config("medmnist-cls", ["trainer.max_epochs=1"]), tmp_path / "run")
    assert "data.npz" in str(error.value)
