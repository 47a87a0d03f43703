"""Configuration validation: errors name the key and say what is allowed."""

import pytest
import yaml

from medmtl.config import config_from_dict, load_config, resolve_config_path
from medmtl.errors import ConfigError


def _raw():
    return {
        "data": {"kind": "phantom", "image_size": 32},
        "model": {"encoder": {"name": "small_cnn"}, "tasks": [{"kind": "classification"}, {"kind": "segmentation"}]},
    }


def test_valid_config_and_defaults():
    cfg = config_from_dict(_raw())
    assert cfg.model.tasks[0].num_classes == 2
    assert cfg.task_name(1) == "segmentation"
    assert cfg.trainer.max_epochs > 0


def test_unknown_key_is_named_with_allowed_keys():
    raw = _raw()
    raw["trainer"] = {"max_epoch": 3}
    with pytest.raises(ConfigError) as info:
        config_from_dict(raw)
    assert "trainer.max_epoch" in str(info.value)
    assert "max_epochs" in str(info.value)


def test_unknown_task_option_is_named():
    raw = _raw()
    raw["model"]["tasks"][1]["los"] = "dice"
    with pytest.raises(ConfigError) as info:
        config_from_dict(raw)
    assert "model.tasks.1.los" in str(info.value)
    assert "loss" in str(info.value)


def test_wrong_type_and_bad_choice():
    raw = _raw()
    raw["trainer"] = {"max_epochs": "many"}
    with pytest.raises(ConfigError, match="trainer.max_epochs"):
        config_from_dict(raw)
    raw = _raw()
    raw["model"]["tasks"][1]["loss"] = "jaccard"
    with pytest.raises(ConfigError, match="generalized_dice"):
        config_from_dict(raw)
    raw = _raw()
    raw["model"]["tasks"][0]["kind"] = "detect"
    with pytest.raises(ConfigError, match="model.tasks.0"):
        config_from_dict(raw)


def test_overrides_and_presets(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(_raw()))
    cfg = load_config(path, ["trainer.max_epochs=3", "model.tasks.1.loss=generalized_dice", "optim.lr=0.01"])
    assert cfg.trainer.max_epochs == 3 and cfg.optim.lr == 0.01
    assert cfg.model.tasks[1].loss == "generalized_dice"
    with pytest.raises(ConfigError, match="model.tasks.5"):
        load_config(path, ["model.tasks.5.loss=dice"])
    with pytest.raises(ConfigError, match="key.path=value"):
        load_config(path, ["trainer.max_epochs"])


@pytest.mark.parametrize("preset", ["demo", "busi-cls-seg", "four-task", "ft-mtl-net", "nic-slide"])
def test_shipped_presets_validate(preset):
    load_config(preset)


def test_missing_config_names_presets(tmp_path):
    with pytest.raises(ConfigError, match="demo"):
        resolve_config_path(tmp_path / "nope.yaml")


def test_invalid_yaml(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("data: [unclosed")
    with pytest.raises(ConfigError, match="bad.yaml"):
        load_config(path)
