import math

import pytest
import torch

from medmtl.balancing import DynamicWeightAverage, create_balancer
from medmtl.balancing.dwa import DWAOptions, dwa_weights
from medmtl.errors import ConfigError


def _epoch(balancer, per_batch):
    for losses in per_batch:
        balancer({k: torch.tensor(v) for k, v in losses.items()})
    balancer.on_epoch_end()


def test_dwa_equal_for_two_epochs_then_follows_the_formula():
    balancer = create_balancer("dwa", ["a", "b"], options={"temperature": 2.0})
    balancer.train()
    _epoch(balancer, [{"a": 1.0, "b": 2.0}, {"a": 3.0, "b": 2.0}])  # averages a=2, b=2
    assert balancer.current_weights() == {"a": 1.0, "b": 1.0}
    _epoch(balancer, [{"a": 1.0, "b": 1.0}])  # a=1, b=1: two epochs seen → ratios r=(0.5, 0.5)
    # the weights for epoch 3 use r(t−1) = L(2)/L(1) = (0.5, 0.5): equal
    assert balancer.current_weights()["a"] == pytest.approx(1.0)
    _epoch(balancer, [{"a": 0.5, "b": 0.9}])  # r = (0.5, 0.9)
    ea, eb = math.exp(0.5 / 2), math.exp(0.9 / 2)
    expected = {"a": 2 * ea / (ea + eb), "b": 2 * eb / (ea + eb)}
    weights = balancer.current_weights()
    assert weights == pytest.approx(expected)
    assert sum(weights.values()) == pytest.approx(2.0)  # Σ wᵢ = T
    total = balancer({"a": torch.tensor(2.0), "b": torch.tensor(3.0)})
    assert float(total) == pytest.approx(2.0 * expected["a"] + 3.0 * expected["b"])


def test_dwa_weights_function_on_a_fixed_history():
    history = torch.tensor([[1.0, 4.0, 2.0], [2.0, 2.0, 2.0]], dtype=torch.float64)  # L(t−1), L(t−2)
    r = torch.tensor([0.5, 2.0, 1.0])
    expected = 3 * torch.exp(r / 0.5) / torch.exp(r / 0.5).sum()
    assert torch.allclose(dwa_weights(history, 0.5).float(), expected)


def test_dwa_absent_task_takes_no_part_and_keeps_its_state():
    balancer = DynamicWeightAverage(["a", "b"])
    balancer.train()
    for values in ({"a": 2.0, "b": 1.0}, {"a": 1.0, "b": 1.0}):
        _epoch(balancer, [values])
    before = balancer.history[:, 1].clone()
    _epoch(balancer, [{"a": 0.5}, {"a": 0.5}])  # b absent for the whole epoch
    assert torch.equal(balancer.history[:, 1], before)
    loss = torch.tensor(0.7, requires_grad=True)
    total = balancer({"a": loss})  # only a: no NaN, nothing for b
    total.backward()
    assert torch.isfinite(total) and torch.isfinite(loss.grad)
    assert all(math.isfinite(w) for w in balancer.current_weights().values())


def test_dwa_state_is_in_the_state_dict_and_eval_does_not_accumulate():
    balancer = DynamicWeightAverage(["a", "b"])
    balancer.train()
    _epoch(balancer, [{"a": 2.0, "b": 1.0}])
    state = balancer.state_dict()
    assert {"history", "weights", "epoch_sum", "epoch_count"} <= set(state)
    restored = DynamicWeightAverage(["a", "b"])
    restored.load_state_dict(state)
    assert torch.equal(restored.history.nan_to_num(-1), balancer.history.nan_to_num(-1))
    balancer.eval()
    balancer({"a": torch.tensor(5.0)})
    assert float(balancer.epoch_count.sum()) == 0


def test_dwa_temperature_validated():
    with pytest.raises(ConfigError, match="loss.options.temperature"):
        create_balancer("dwa", ["a"], options={"temperature": 0})
    with pytest.raises(ConfigError, match="loss.options.tau"):
        create_balancer("dwa", ["a"], options={"tau": 1})
    assert DWAOptions().temperature == 2.0


@pytest.mark.slow
def test_dwa_epoch_boundary_reaches_the_checkpoint(tmp_path):
    from helpers import tiny_config

    from medmtl.config import config_from_dict
    from medmtl.training.run import train

    raw = tiny_config(max_epochs=1, n_bootstrap=0)
    raw["loss"] = {"balancer": "dwa", "options": {"temperature": 1.5}}
    train(config_from_dict(raw), tmp_path / "run")
    state = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", weights_only=False)["state_dict"]
    assert torch.isfinite(state["balancer.history"][0]).all()  # epoch 1's averages, saved with the epoch
    assert torch.isnan(state["balancer.history"][1]).all()
    assert float(state["balancer.epoch_count"].sum()) == 0
