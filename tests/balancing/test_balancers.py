import pytest
import torch

from medmtl.balancing import FixedWeights, UncertaintyWeights, create_balancer
from medmtl.errors import ConfigError


def test_fixed_weights_sum_and_zero_switches():
    balancer = FixedWeights(["a", "b", "c"], {"b": 0.0, "c": 2.0})
    losses = {"a": torch.tensor(1.5), "b": torch.tensor(100.0), "c": torch.tensor(0.25)}
    assert float(balancer(losses)) == pytest.approx(1.5 + 0.5)
    assert balancer.current_weights() == {"a": 1.0, "b": 0.0, "c": 2.0}
    assert balancer.active_tasks() == ["a", "c"]  # training does not run b's head
    assert UncertaintyWeights(["a", "b"]).active_tasks() == ["a", "b"]


def test_fixed_weights_only_switched_off_task_present_gives_zero():
    balancer = FixedWeights(["a", "b"], {"b": 0.0})
    value = torch.tensor(3.0, requires_grad=True)
    total = balancer({"b": value})
    assert float(total.detach()) == 0.0
    total.backward()


def test_fixed_weights_validation():
    with pytest.raises(ConfigError, match="unknown"):
        FixedWeights(["a"], {"z": 1.0})
    with pytest.raises(ConfigError, match="≥ 0"):
        FixedWeights(["a"], {"a": -1.0})
    with pytest.raises(ConfigError, match="all weights are 0"):
        FixedWeights(["a"], {"a": 0.0})


def test_uncertainty_weighting_formula_and_absent_tasks():
    balancer = UncertaintyWeights(["a", "b"])
    with torch.no_grad():
        balancer.log_vars["a"].fill_(0.5)
    total = balancer({"a": torch.tensor(2.0)})
    assert float(total) == pytest.approx(torch.exp(torch.tensor(-0.5)).item() * 2.0 + 0.5)
    total.backward()
    assert balancer.log_vars["b"].grad is None


def test_uncertainty_weights_learn_to_down_weight_noisy_task():
    balancer = UncertaintyWeights(["small", "large"])
    optimizer = torch.optim.SGD(balancer.parameters(), lr=0.1)
    for _ in range(200):
        optimizer.zero_grad()
        balancer({"small": torch.tensor(0.1), "large": torch.tensor(10.0)}).backward()
        optimizer.step()
    weights = balancer.current_weights()
    assert weights["small"] > weights["large"]
    assert weights["large"] == pytest.approx(0.1, rel=0.05)  # optimum exp(-s) = 1 / L


def test_create_balancer_unknown():
    with pytest.raises(ConfigError, match="fixed"):
        create_balancer("gradnorm2", ["a"])
