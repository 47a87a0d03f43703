"""The training path of gradient-level balancers, with a test double that only implements task_weights."""

import csv

import pytest
import torch
from helpers import make_samples, tiny_config

from medmtl.balancing import (
    BALANCERS,
    BalancerSpec,
    GradientBalancer,
    GradientBalancerOptions,
    create_balancer,
)
from medmtl.builders import build_model
from medmtl.config import config_from_dict
from medmtl.data.collate import collate_samples
from medmtl.training.lightning_module import MultiTaskModule


class EqualGradientWeights(GradientBalancer):
    """Test double: wᵢ = 1/‖gᵢ‖ (every task's gradient gets the same norm)."""

    def task_weights(self, grads, losses):
        return 1.0 / grads.norm(dim=1).clamp_min(1e-12)


@pytest.fixture
def double(monkeypatch):
    monkeypatch.setitem(BALANCERS, "equal_grad", BalancerSpec(EqualGradientWeights, GradientBalancerOptions))
    return "equal_grad"


def _module(level, tasks=({"kind": "classification"}, {"kind": "segmentation"})):
    raw = tiny_config()
    raw["model"]["tasks"] = list(tasks)
    torch.manual_seed(0)
    model = build_model(config_from_dict(raw))
    balancer = EqualGradientWeights(list(model.tasks), GradientBalancerOptions(level=level))
    return MultiTaskModule(model, balancer)


def test_shared_parameters_get_the_weighted_sum_of_task_gradients():
    module = _module("shared")
    assert module.balancer.gradients == "shared"
    batch = collate_samples(make_samples(n=4, size=32))
    total, losses, _ = module._step(batch, None, module.balancer.gradients)
    shared = [p for p in module.model.encoder.parameters() if p.requires_grad]
    by_hand = {name: torch.cat([g.reshape(-1) for g in torch.autograd.grad(loss, shared, retain_graph=True)])
               for name, loss in losses.items()}
    weights = {name: 1.0 / g.norm() for name, g in by_hand.items()}
    assert module.balancer.current_weights() == pytest.approx({n: float(w) for n, w in weights.items()}, rel=1e-5)
    module.model.zero_grad()
    total.backward()
    got = torch.cat([p.grad.reshape(-1) for p in shared])
    expected = sum(weights[n] * by_hand[n] for n in losses)
    assert torch.allclose(got, expected, rtol=1e-4, atol=1e-7)
    assert set(module._last_cosines) == {"classification~segmentation"}
    cos = float(by_hand["classification"] @ by_hand["segmentation"]
                / (by_hand["classification"].norm() * by_hand["segmentation"].norm()))
    assert module._last_cosines["classification~segmentation"] == pytest.approx(cos, rel=1e-4, abs=1e-6)


def test_representation_level_runs_on_the_feature_maps():
    module = _module("representation")
    batch = collate_samples(make_samples(n=4, size=32))
    features, _, _ = module.model.features_and_outputs(batch["image"], batch)
    total, losses, _ = module._step(batch, None, "representation")
    total.backward()
    weights = module.balancer.current_weights()
    assert set(weights) == {"classification", "segmentation"} and all(w > 0 for w in weights.values())
    assert all(p.grad is not None for p in module.model.encoder.parameters())
    assert float(total) == pytest.approx(sum(weights[n] * float(v) for n, v in losses.items()), rel=1e-5)
    assert sum(f.numel() for f in features) > 0


@pytest.mark.parametrize("level", ["shared", "representation"])
def test_every_parameter_gets_what_backpropagating_the_weighted_losses_gives(level):
    """The training step back-propagates only the combination (the heads' per-task gradients are
    already known); every parameter's gradient must equal that of Σ wᵢ·Lᵢ with the same weights."""
    module = _module(level)
    batch = collate_samples(make_samples(n=4, size=32))
    total, losses, _ = module._step(batch, None, level)
    module.model.zero_grad()
    total.backward()
    fast = {n: p.grad.clone() for n, p in module.model.named_parameters() if p.grad is not None}
    weights = module.balancer.current_weights()
    assert float(total) == pytest.approx(sum(weights[n] * float(v) for n, v in losses.items()), rel=1e-5)
    torch.manual_seed(0)
    _, again, _ = module._step(batch, None, None)  # the same forward, then Σ wᵢ·Lᵢ the slow way
    module.model.zero_grad()
    sum(weights[n] * again[n] for n in again).backward()
    slow = {n: p.grad for n, p in module.model.named_parameters() if p.grad is not None}
    assert set(fast) == set(slow)
    for name in slow:  # float32 sums in another order: agree to 1e-4 of the gradient's scale
        scale = float(slow[name].abs().max())
        assert torch.allclose(fast[name], slow[name], rtol=1e-4, atol=1e-4 * scale + 1e-8), name


@pytest.mark.parametrize("level", ["shared", "representation"])
def test_a_batch_with_one_labelled_task_gives_that_tasks_gradient(level):
    module = _module(level)
    with torch.no_grad():
        module.balancer.last_weights.fill_(0.25)
    batch = collate_samples(make_samples(n=4, size=32, with_mask=False))  # segmentation unlabelled
    total, losses, _ = module._step(batch, None, level)
    assert set(losses) == {"classification"} and module._last_cosines == {}
    shared = [p for p in module.model.encoder.parameters() if p.requires_grad]
    torch.manual_seed(0)
    _, plain, _ = module._step(batch, None, None)  # the same forward without a gradient balancer
    expected = torch.autograd.grad(plain["classification"], shared, retain_graph=True)
    module.model.zero_grad()
    total.backward()
    assert all(torch.allclose(p.grad, g) for p, g in zip(shared, expected))
    assert torch.isfinite(total)
    assert module.balancer.current_weights() == {"classification": 1.0, "segmentation": 0.25}


def test_validation_uses_the_last_weights():
    balancer = EqualGradientWeights(["a", "b"])
    with torch.no_grad():
        balancer.last_weights.copy_(torch.tensor([0.5, 2.0]))
    assert float(balancer({"a": torch.tensor(1.0), "b": torch.tensor(1.0)})) == pytest.approx(2.5)
    assert balancer.gradients == "representation"


def test_level_option_validated(double):
    assert create_balancer(double, ["a", "b"], options={"level": "shared"}).gradients == "shared"
    from medmtl.errors import ConfigError

    with pytest.raises(ConfigError, match="loss.options.level"):
        create_balancer(double, ["a", "b"], options={"level": "encoder"})
    raw = tiny_config()
    raw["loss"] = {"balancer": "nope"}
    with pytest.raises(ConfigError, match="loss.balancer.*equal_grad"):
        config_from_dict(raw)


@pytest.mark.slow
def test_gradient_balancer_trains_checkpoints_resumes_and_logs_cosines(tmp_path, double, monkeypatch):
    from medmtl.training.run import train

    raw = tiny_config(max_epochs=1, n_bootstrap=0, log_every_n_steps=1)
    raw["loss"] = {"balancer": double, "options": {"level": "shared"}}
    run = tmp_path / "run"
    train(config_from_dict(raw), run)
    saved = torch.load(run / "checkpoints" / "last.ckpt", weights_only=False)["state_dict"]["balancer.last_weights"]
    assert not torch.equal(saved, torch.ones(3))
    with (run / "logs" / "csv" / "metrics.csv").open() as handle:
        columns = next(csv.reader(handle))
    assert {"grad_cos/classification~segmentation", "grad_cos/classification~reconstruction",
            "grad_cos/segmentation~reconstruction", "weight/classification"} <= set(columns)

    restored = {}
    original = MultiTaskModule.on_train_start

    def record(self):
        restored["weights"] = self.balancer.last_weights.detach().clone()
        return original(self)

    monkeypatch.setattr(MultiTaskModule, "on_train_start", record)
    raw["trainer"]["max_epochs"] = 2
    train(config_from_dict(raw), run)
    assert torch.equal(restored["weights"], saved)
