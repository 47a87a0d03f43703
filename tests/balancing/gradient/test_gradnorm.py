"""GradNorm (Chen et al., ICML 2018): known answers for the weight update and its state."""

import math

import pytest
import torch

from medmtl.balancing import (
    GRADIENT_BALANCERS,
    create_balancer,
    validate_balancer_options,
)
from medmtl.balancing.gradient import GradNorm, GradNormOptions
from medmtl.errors import ConfigError


def _grads(norms, d=4):
    """Rows of the given norms along different axes, ``[T, d]``."""
    g = torch.zeros(len(norms), d, dtype=torch.float64)
    for i, n in enumerate(norms):
        g[i, i] = n
    return g


def _step(balancer, values, norms):
    balancer.train()
    losses = {name: torch.tensor(v, dtype=torch.float64) for name, v in values.items()}
    return balancer(losses, _grads(norms))


def test_registered_as_a_gradient_balancer():
    assert GRADIENT_BALANCERS["gradnorm"].cls is GradNorm
    assert GradNorm(["a", "b"]).gradients == "representation"
    assert GradNorm(["a", "b"], GradNormOptions(level="shared")).gradients == "shared"


def test_equal_norms_and_equal_loss_ratios_keep_equal_weights():
    balancer = GradNorm(["a", "b", "c"])
    for scale in (1.0, 0.8, 0.5):
        _step(balancer, {"a": 2 * scale, "b": 3 * scale, "c": 0.5 * scale}, [1.5, 1.5, 1.5])
        assert torch.equal(balancer.next_weights, torch.ones(3, dtype=torch.float64))
        assert balancer.current_weights() == {"a": 1.0, "b": 1.0, "c": 1.0}


def _reference_update(weights, norms, ratios, alpha, adam, param):
    """The update by autograd on L_grad (target detached) and torch.optim.Adam, then Σ w = T."""
    with torch.no_grad():
        param.copy_(weights)
    g = param * norms
    target = (g.mean() * (ratios / ratios.mean()) ** alpha).detach()
    adam.zero_grad()
    (g - target).abs().sum().backward()
    adam.step()
    with torch.no_grad():
        param.clamp_(min=1e-6)
        param.mul_(len(weights) / param.sum())
    return param.detach().clone()


def test_hand_computed_updates_match_adam_on_l_grad():
    alpha, lr = 1.5, 0.05
    balancer = GradNorm(["a", "b"], GradNormOptions(alpha=alpha, lr=lr))
    norms = torch.tensor([1.0, 2.0], dtype=torch.float64)
    param = torch.ones(2, dtype=torch.float64, requires_grad=True)
    adam = torch.optim.Adam([param], lr=lr)
    # step 0: L(0) = (1, 4), ratios 1; G = (1, 2), Ḡ = 1.5: w₁ up by lr, w₂ down by lr (Adam's first step)
    total = _step(balancer, {"a": 1.0, "b": 4.0}, norms.tolist())
    assert float(total) == pytest.approx(5.0)  # the pre-update weights (1, 1) are applied
    expected = _reference_update(torch.ones(2, dtype=torch.float64), norms, torch.ones(2, dtype=torch.float64),
                                 alpha, adam, param)
    assert expected.tolist() == pytest.approx([1 + lr, 1 - lr], rel=1e-6)
    assert torch.allclose(balancer.next_weights, expected, rtol=1e-12)
    # step 1: b trains more slowly (L̃ = (0.5, 0.9)): applies w(1), then moves toward the new targets
    applied = balancer.next_weights.clone()
    total = _step(balancer, {"a": 0.5, "b": 3.6}, norms.tolist())
    assert torch.allclose(balancer.last_weights.double(), applied, rtol=1e-6)  # a float32 buffer
    assert float(total) == pytest.approx(float(applied[0] * 0.5 + applied[1] * 3.6), rel=1e-12)
    ratios = torch.tensor([0.5, 0.9], dtype=torch.float64)
    expected = _reference_update(applied, norms, ratios, alpha, adam, param)
    assert torch.allclose(balancer.next_weights, expected, rtol=1e-12)
    assert float(balancer.next_weights.sum()) == pytest.approx(2.0, rel=1e-12)


def test_weights_sum_to_t_and_alpha_zero_equalises_the_weighted_norms():
    balancer = GradNorm(["a", "b", "c"], GradNormOptions(alpha=0.0, lr=0.025))
    norms = [1.0, 3.0, 0.5]
    for step in range(400):
        _step(balancer, {"a": 1.0 / (step + 1), "b": 2.0, "c": 0.7 ** step + 0.1}, norms)
        assert float(balancer.next_weights.sum()) == pytest.approx(3.0, rel=1e-12)
        assert bool((balancer.next_weights > 0).all())
    weighted = balancer.next_weights * torch.tensor(norms, dtype=torch.float64)
    assert float(weighted.max() / weighted.min()) == pytest.approx(1.0, abs=0.02)  # w ≈ (0.9, 0.3, 1.8)


def test_partial_labels_keep_the_absent_state():
    balancer = GradNorm(["a", "b", "c"])
    _step(balancer, {"a": 1.0, "b": 2.0, "c": 3.0}, [1.0, 2.0, 3.0])
    state = {k: v.clone() for k, v in balancer.state_dict().items()}
    _step(balancer, {"a": 0.5, "c": 2.0}, [1.0, 0.5])  # b absent
    for key in ("next_weights", "initial_losses", "adam_avg", "adam_avg_sq", "adam_steps", "last_weights"):
        assert torch.equal(getattr(balancer, key)[1], state[key][1]), key
    assert balancer.adam_steps.tolist() == [2, 1, 2]
    assert float(balancer.next_weights.sum()) == pytest.approx(3.0, rel=1e-12)  # a and c keep their sum
    # a task first labelled later gets its own L(0) then
    late = GradNorm(["a", "b", "c"])
    _step(late, {"a": 1.0, "b": 2.0}, [1.0, 1.0])
    assert math.isnan(float(late.initial_losses[2]))
    _step(late, {"a": 0.5, "c": 4.0}, [1.0, 1.0])
    assert late.initial_losses.tolist() == [1.0, 2.0, 4.0]


def test_state_dict_round_trip_gives_the_same_next_weights():
    balancer = GradNorm(["a", "b"])
    for values in ({"a": 1.0, "b": 2.0}, {"a": 0.6, "b": 1.9}, {"a": 0.5, "b": 1.7}):
        _step(balancer, values, [1.0, 2.5])
    state = balancer.state_dict()
    assert {"next_weights", "initial_losses", "adam_avg", "adam_avg_sq", "adam_steps", "last_weights"} <= set(state)
    restored = GradNorm(["a", "b"])
    restored.load_state_dict(state)
    for b in (balancer, restored):
        _step(b, {"a": 0.4, "b": 1.6}, [1.0, 2.5])
    assert torch.equal(restored.last_weights, balancer.last_weights)
    assert torch.equal(restored.next_weights, balancer.next_weights)
    # evaluation (no grads) applies the last weights and changes nothing
    before = restored.next_weights.clone()
    total = restored({"a": torch.tensor(1.0, dtype=torch.float64), "b": torch.tensor(1.0, dtype=torch.float64)})
    assert float(total) == pytest.approx(float(restored.last_weights.sum()))
    assert torch.equal(restored.next_weights, before)


def test_options_are_validated():
    with pytest.raises(ConfigError) as error:
        validate_balancer_options("gradnorm", {"alpha": -1})
    assert error.value.key == "loss.options.alpha" and "greater than or equal to 0" in str(error.value)
    with pytest.raises(ConfigError, match="loss.options.lr"):
        validate_balancer_options("gradnorm", {"lr": 0})
    options = validate_balancer_options("gradnorm", {"alpha": 0})
    assert (options.alpha, options.lr, options.level) == (0.0, 0.025, "representation")
    assert GradNormOptions().alpha == 1.5
    assert isinstance(create_balancer("gradnorm", ["a", "b"], options={"level": "shared"}), GradNorm)
