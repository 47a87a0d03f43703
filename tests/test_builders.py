"""Objects from a configuration: the balancer's checks against the model it will train."""

import pytest
from helpers import tiny_config

from medmtl.builders import build_balancer, build_model
from medmtl.config import config_from_dict
from medmtl.errors import ConfigError


def _config(level: str):
    raw = tiny_config()
    raw["loss"] = {"balancer": "pcgrad", "options": {"level": level}}
    return config_from_dict(raw)


def test_parameter_level_gradient_method_needs_trainable_shared_parameters():
    config = _config("shared")
    model = build_model(config)
    assert build_balancer(config, model).gradients == "shared"
    model.encoder.requires_grad_(False)  # e.g. a frozen, pretrained encoder: nothing shared to balance
    with pytest.raises(ConfigError) as error:
        build_balancer(config, model)
    assert error.value.key == "loss.options.level" and "representation" in str(error.value)
    representation = _config("representation")
    assert build_balancer(representation, model).gradients == "representation"  # the feature maps still work
