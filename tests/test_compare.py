import math

import numpy as np
import pytest
from helpers import tiny_config

from medmtl.compare import for_fold, markdown, split_summaries, summarize, variants
from medmtl.config import config_from_dict
from medmtl.errors import ConfigError
from medmtl.training.run import train


def _config():
    return config_from_dict({
        "data": {"kind": "busi", "fold": 1, "split_train": "splits/busi_train{fold}.txt",
                 "split_val": "splits/busi_val{fold}.txt"},
        "model": {"tasks": [{"kind": "classification"}, {"kind": "segmentation"}, {"kind": "reconstruction"}]},
        "loss": {"weights": {"reconstruction": 0.5}},
        "trainer": {"monitor": "val/classification/auc"},
    })


def test_variants_train_each_task_alone_and_all_together():
    result = variants(_config())
    assert list(result) == ["single-classification", "single-segmentation", "multi-task"]
    seg = result["single-segmentation"]
    assert [t.kind for t in seg.model.tasks] == ["segmentation"]
    assert seg.loss.weights == {"segmentation": 1.0}
    assert seg.trainer.monitor is None  # the classification monitor does not exist there
    with pytest.raises(ConfigError, match="unknown"):
        variants(_config(), ["detection"])


def test_for_fold_sets_the_partition_number():
    assert for_fold(_config(), 3).data.fold == 3
    # published splits: the k-fold range (data.folds) does not apply
    assert for_fold(_config(), 7).data.fold == 7
    kfold = config_from_dict({"data": {"kind": "busi"}, "model": {"tasks": [{"kind": "classification"}]}})
    assert for_fold(kfold, 2).data.fold == 2
    with pytest.raises(ConfigError, match="outside 1..5"):
        for_fold(kfold, 6)


def test_summary_mean_and_std():
    results = {"multi-task": {1: {"cls": {"auc": 0.8}}, 2: {"cls": {"auc": 0.9}}}}
    summary = summarize(results, {"cls": ("auc", "accuracy")})
    assert set(summary["multi-task"]["cls"]) == {"auc"}  # accuracy was never measured
    stats = summary["multi-task"]["cls"]["auc"]
    assert stats["mean"] == pytest.approx(0.85) and stats["std"] == pytest.approx(math.sqrt(0.005))
    assert "0.850 ± 0.071" in markdown({"variants": summary, "paired": {}}, [1, 2])


def test_split_summaries_of_a_checkpoint_with_test_time_augmentation(tmp_path):
    run = tmp_path / "run"
    train(config_from_dict(tiny_config(max_epochs=1)), run)
    _, plain, plain_names = split_summaries(run, "val")
    model, flipped, flipped_names = split_summaries(run, "val", checkpoint="last", tta="flip")
    assert type(model).__name__ == "TTAModel" and flipped_names == plain_names
    for task, summary in plain.items():
        assert {key: len(values) for key, values in flipped[task].items()} == \
               {key: len(values) for key, values in summary.items()}
    assert not np.allclose(flipped["classification"]["probs"], plain["classification"]["probs"])
    with pytest.raises(ConfigError, match="--pair-on.*no 'test' split"):
        split_summaries(run, "test")


def test_variants_per_balancer_keep_weights_only_where_they_apply():
    with pytest.warns(UserWarning, match=r"--balancers mgda: loss.weights \{'reconstruction': 0.5\} not applied"):
        result = variants(_config(), balancers=["fixed", "mgda"])
    assert list(result) == ["single-classification", "single-segmentation", "multi-task-fixed", "multi-task-mgda"]
    assert result["multi-task-fixed"].loss.weights == {"reconstruction": 0.5}
    assert result["multi-task-mgda"].loss.balancer == "mgda" and result["multi-task-mgda"].loss.weights == {}
