import pytest
import torch

from medmtl.balancing import BALANCERS, EqualWeights, create_balancer
from medmtl.balancing.base import BalancerOptions
from medmtl.errors import ConfigError


def test_equal_weights_is_the_sum():
    balancer = create_balancer("equal", ["a", "b", "c"])
    assert isinstance(balancer, EqualWeights)
    assert float(balancer({"a": torch.tensor(1.5), "c": torch.tensor(2.0)})) == pytest.approx(3.5)
    assert balancer.current_weights() == {"a": 1.0, "b": 1.0, "c": 1.0}
    assert balancer.gradients is None


def test_registry_entries_are_class_and_options_model():
    for name, (cls, options) in BALANCERS.items():
        assert issubclass(options, BalancerOptions), name
        assert cls.__doc__ and options.model_config.get("extra") == "forbid"


def test_weights_checked_for_every_balancer():
    with pytest.raises(ConfigError, match="loss.weights.*unknown"):
        create_balancer("dwa", ["a"], {"z": 1.0})
    with pytest.raises(ConfigError, match="loss.weights.*only"):
        create_balancer("equal", ["a", "b"], {"a": 0.0})
    with pytest.raises(ConfigError, match="loss.options.x.*unknown option"):
        create_balancer("equal", ["a"], options={"x": 1})
