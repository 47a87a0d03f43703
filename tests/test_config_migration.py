"""Configurations of older versions (run directories keep their config.yaml) read with today's names."""

import pytest

from medmtl.config import config_from_dict
from medmtl.errors import ConfigError


def test_old_data_split_key_and_placeholder_are_migrated_to_fold(tmp_path):
    raw = {"data": {"kind": "busi", "split": 2, "split_train": "splits/busi_train{split}.txt",
                    "split_val": "splits/busi_val{split}.txt"},
           "model": {"tasks": [{"kind": "classification"}]}}
    old_names = r"old/config.yaml uses old names: 'data.split' is now 'data.fold'.*\{split\} is now \{fold\}"
    with pytest.warns(FutureWarning, match=old_names):
        cfg = config_from_dict(raw, source="old/config.yaml")
    assert cfg.data.fold == 2 and cfg.data.split_train == "splits/busi_train{fold}.txt"
    assert cfg.data.split_val == "splits/busi_val{fold}.txt"
    assert raw["data"]["split"] == 2  # the caller's dict is left as it was
    assert "split" not in cfg.model_dump()["data"]  # a saved config uses the new names only
    raw["data"]["fold"] = 3
    with pytest.raises(ConfigError, match=r"data.split.*keep only data.fold"):
        config_from_dict(raw)


def test_old_encoder_and_task_names_are_migrated():
    raw = {"data": {"kind": "phantom"},
           "model": {"encoder": {"name": "small_cnn", "options": {"width": 8, "depth": 3}},
                     "tasks": [{"kind": "classification", "levels": "all", "target": None},
                               {"kind": "segmentation", "target": None}]}}
    with pytest.warns(FutureWarning, match=r"options.depth' is now 'stages'.*tasks.0.levels' is now 'pool_from'"):
        cfg = config_from_dict(raw, source="old/config.yaml")
    assert cfg.model.encoder.options == {"width": 8, "stages": 3}
    assert cfg.model.tasks[0].pool_from == "all" and cfg.model.tasks[0].target == "label"
    assert cfg.model.tasks[1].target == "mask"
    assert raw["model"]["encoder"]["options"]["depth"] == 3  # the caller's dict is left as it was
