"""FAMO (Liu et al., NeurIPS 2023): known answers for the weights, the logit update and the state."""

import math

import pytest
import torch

from medmtl.balancing import FAMO, create_balancer, validate_balancer_options
from medmtl.balancing.famo import FAMOOptions
from medmtl.errors import ConfigError

TASKS = ["a", "b", "c"]


def _losses(values: dict[str, float]) -> dict[str, torch.Tensor]:
    return {k: torch.tensor(v, dtype=torch.float64) for k, v in values.items()}


def _train(balancer: FAMO, values: dict[str, float]) -> torch.Tensor:
    balancer.train()
    return balancer(_losses(values))


def test_constant_losses_keep_equal_weights():
    balancer = FAMO(TASKS)
    for _ in range(5):
        _train(balancer, {"a": 0.7, "b": 0.7, "c": 0.7})
    assert torch.equal(balancer.logits, torch.zeros(3, dtype=torch.float64))  # δ = 0 and γ·0 = 0
    assert balancer.current_weights() == pytest.approx({"a": 1 / 3, "b": 1 / 3, "c": 1 / 3})
    assert balancer.probabilities() == pytest.approx({"a": 1 / 3, "b": 1 / 3, "c": 1 / 3})
    unequal = FAMO(TASKS)
    for _ in range(5):
        _train(unequal, {"a": 0.2, "b": 1.0, "c": 3.0})
    assert torch.equal(unequal.logits, torch.zeros(3, dtype=torch.float64))  # z stays uniform


def test_effective_weights_are_z_over_c_times_loss_and_the_loss_gradient():
    balancer = FAMO(["a", "b"], FAMOOptions(eps=1e-8))
    with torch.no_grad():
        balancer.logits.copy_(torch.tensor([0.3, -0.2], dtype=torch.float64))
    a = torch.tensor(0.5, dtype=torch.float64, requires_grad=True)
    b = torch.tensor(2.0, dtype=torch.float64, requires_grad=True)
    balancer.train()
    total = balancer({"a": a, "b": b})  # first step: no previous loss, no update
    z = torch.softmax(torch.tensor([0.3, -0.2], dtype=torch.float64), 0)
    d = torch.tensor([0.5, 2.0], dtype=torch.float64) + 1e-8
    c = (z / d).sum()
    expected = z / (c * d)
    assert torch.allclose(balancer.last_weights, expected, rtol=1e-12)
    assert float(expected.sum()) == pytest.approx(1.0)
    assert float(total.detach()) == pytest.approx(float(expected[0] * 0.5 + expected[1] * 2.0), rel=1e-12)
    total.backward()
    assert [float(a.grad), float(b.grad)] == pytest.approx(expected.tolist(), rel=1e-12)
    # the same gradient as the authors' objective Σ zᵢ·log Dᵢ / c (c detached)
    a2, b2 = (torch.tensor(v, dtype=torch.float64, requires_grad=True) for v in (0.5, 2.0))
    ((torch.stack([a2, b2]) + 1e-8).log() * z / c).sum().backward()
    assert [float(a2.grad), float(b2.grad)] == pytest.approx(expected.tolist(), rel=1e-12)


def test_one_and_two_logit_updates_match_adam_on_the_softmax_vjp():
    options = FAMOOptions(lr=0.1, weight_decay=0.01, min_losses=0.1, eps=1e-8)
    balancer = FAMO(TASKS, options)
    steps = [{"a": 1.0, "b": 2.0, "c": 0.5}, {"a": 0.6, "b": 1.9, "c": 0.45}, {"a": 0.5, "b": 1.5, "c": 0.4}]
    # reference: the authors' update with torch.optim.Adam and autograd through softmax
    xi = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    adam = torch.optim.Adam([xi], lr=0.1, weight_decay=0.01)
    for i, values in enumerate(steps):
        _train(balancer, values)
        if i == 0:
            assert torch.equal(balancer.logits, torch.zeros(3, dtype=torch.float64))
            continue
        prev = torch.tensor(list(steps[i - 1].values()), dtype=torch.float64)
        now = torch.tensor(list(values.values()), dtype=torch.float64)
        delta = (prev - 0.1 + 1e-8).log() - (now - 0.1 + 1e-8).log()
        (vjp,) = torch.autograd.grad(torch.softmax(xi, 0), xi, grad_outputs=delta)
        adam.zero_grad()
        xi.grad = vjp
        adam.step()
        assert torch.allclose(balancer.logits, xi.detach(), rtol=1e-10, atol=1e-14), i
        z = torch.softmax(xi.detach(), 0)
        w = z / (now - 0.1 + 1e-8)
        assert torch.allclose(balancer.last_weights, w / w.sum(), rtol=1e-10)
    assert balancer.adam_steps.tolist() == [2, 2, 2]


def test_slower_task_gains_weight():
    balancer = FAMO(["fast", "slow"])
    for step in range(10):
        _train(balancer, {"fast": 0.8**step, "slow": 0.98**step})
    z = balancer.probabilities()
    assert z["slow"] > z["fast"]
    assert balancer.logits[1] > 0 > balancer.logits[0]


def test_partial_labels_keep_the_absent_state():
    balancer = FAMO(TASKS)
    _train(balancer, {"a": 1.0, "b": 1.0, "c": 1.0})
    _train(balancer, {"a": 0.5, "b": 0.9, "c": 0.8})
    frozen = {k: getattr(balancer, k)[2].clone() for k in ("logits", "prev_losses", "adam_avg", "adam_avg_sq",
                                                           "adam_steps", "last_weights")}
    total = _train(balancer, {"a": 0.4, "b": 0.85})  # c absent
    for key, value in frozen.items():
        assert torch.equal(getattr(balancer, key)[2], value), key
    assert balancer.adam_steps.tolist() == [2, 2, 1]
    w = balancer.last_weights
    assert float(w[0] + w[1]) == pytest.approx(1.0)  # softmax over the present tasks
    assert float(total) == pytest.approx(float(w[0] * 0.4 + w[1] * 0.85))
    # a task with no previous loss gets no δ; a lone task gets no update at all
    fresh = FAMO(TASKS)
    _train(fresh, {"a": 1.0})
    _train(fresh, {"a": 0.5, "b": 2.0})
    assert torch.equal(fresh.logits, torch.zeros(3, dtype=torch.float64))
    assert float(fresh.prev_losses[1]) == 2.0 and math.isnan(float(fresh.prev_losses[2]))


def test_state_dict_round_trip_gives_the_same_next_weights():
    balancer = FAMO(TASKS)
    for values in ({"a": 1.0, "b": 2.0, "c": 3.0}, {"a": 0.5, "b": 1.9, "c": 2.0}, {"a": 0.4, "b": 1.8, "c": 1.0}):
        _train(balancer, values)
    state = balancer.state_dict()
    assert {"logits", "prev_losses", "adam_avg", "adam_avg_sq", "adam_steps", "last_weights"} <= set(state)
    restored = FAMO(TASKS)
    restored.load_state_dict(state)
    step = {"a": 0.3, "b": 1.7, "c": 0.9}
    _train(balancer, step)
    _train(restored, step)
    assert torch.equal(restored.logits, balancer.logits)
    assert torch.equal(restored.last_weights, balancer.last_weights)


def test_evaluation_applies_the_last_weights_and_changes_nothing():
    balancer = FAMO(TASKS)
    _train(balancer, {"a": 1.0, "b": 2.0, "c": 3.0})
    _train(balancer, {"a": 0.5, "b": 1.9, "c": 2.0})
    before = {k: v.clone() for k, v in balancer.state_dict().items()}
    balancer.eval()
    total = balancer(_losses({"a": 10.0, "b": 20.0}))
    w = before["last_weights"]
    assert float(total) == pytest.approx(float(w[0] * 10.0 + w[1] * 20.0))
    for key, value in balancer.state_dict().items():
        assert torch.equal(value.nan_to_num(-1), before[key].nan_to_num(-1)), key


def test_options_are_validated():
    assert FAMOOptions() == FAMOOptions(lr=0.025, weight_decay=0.001, min_losses=0.0, eps=1e-8)
    for key, bad in (("lr", 0), ("weight_decay", -0.1), ("min_losses", -1), ("eps", 0)):
        with pytest.raises(ConfigError, match=f"loss.options.{key}"):
            validate_balancer_options("famo", {key: bad})
    assert isinstance(create_balancer("famo", TASKS, options={"lr": 0.01}), FAMO)
