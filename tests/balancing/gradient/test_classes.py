"""The balancer classes: options, registry dict, weights through forward, state buffers."""

import pytest
import torch
from pydantic import ValidationError

from medmtl.balancing.base import GradientBalancer
from medmtl.balancing.gradient import (
    DBMTL,
    GRADIENT_BALANCERS,
    MGDA,
    CAGrad,
    NashMTL,
    PCGrad,
)
from medmtl.balancing.gradient import functional as F

TASKS = ["seg", "cls", "surv"]


def grads(t=3, d=6, seed=0):
    return torch.randn(t, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def losses(names):
    return {n: torch.tensor(float(i + 1), dtype=torch.float64) for i, n in enumerate(names)}


@pytest.mark.parametrize("name", sorted(GRADIENT_BALANCERS))
def test_every_class_defaults_forward_and_weights(name):
    cls = GRADIENT_BALANCERS[name]
    assert issubclass(cls, GradientBalancer)
    balancer = cls(TASKS)
    assert balancer.options.level == "representation"
    g = grads()
    total = balancer(losses(TASKS), g)
    w = balancer.last_weights
    assert torch.isfinite(w).all()
    assert float(total) == pytest.approx(float((w.double() * torch.tensor([1.0, 2.0, 3.0])).sum()), rel=1e-6)
    with pytest.raises(ValidationError):
        cls.Options(unknown=1)


def test_options_ranges():
    with pytest.raises(ValidationError):
        CAGrad.Options(c=-0.5)
    with pytest.raises(ValidationError):
        NashMTL.Options(update_weights_every=0)
    with pytest.raises(ValidationError):
        DBMTL.Options(beta=1.0)
    with pytest.raises(ValidationError):
        MGDA.Options(normalization="l1")
    assert MGDA(TASKS, MGDA.Options(level="shared")).gradients == "shared"


def test_class_matches_function():
    g = grads()
    balancer = CAGrad(TASKS, CAGrad.Options(c=0.4, rescale=0))
    assert torch.allclose(balancer.task_weights(g, list(losses(TASKS).values())),
                          F.cagrad_weights(g, c=0.4, rescale=0))
    a = PCGrad(TASKS, PCGrad.Options(seed=3)).task_weights(g, [])
    b = F.pcgrad_weights(g, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b)


def test_nash_reuses_alpha_between_updates():
    balancer = NashMTL(TASKS, NashMTL.Options(update_weights_every=2))
    balancer(losses(TASKS), grads(seed=1))
    first = balancer.last_weights.clone()
    balancer(losses(TASKS), grads(seed=2))  # step 1: reused
    assert torch.equal(balancer.last_weights, first)
    balancer(losses(TASKS), grads(seed=2))  # step 2: solved again
    assert not torch.equal(balancer.last_weights, first)
    assert int(balancer.step) == 3


def test_db_mtl_ema_buffer_only_for_present_tasks():
    balancer = DBMTL(TASKS, DBMTL.Options(beta=0.5, beta_sigma=0.0))
    g = grads(2, 4, seed=5)
    balancer(losses(["seg", "surv"]), g)
    assert balancer.grad_ema.shape == (3, 4)
    assert torch.all(balancer.grad_ema[1] == 0) and balancer.seen.tolist() == [True, False, True]
    expected = g / torch.tensor([1.0, 2.0], dtype=torch.float64)[:, None] * 0.5  # h + 0.5·(0 − h)
    assert torch.allclose(balancer.grad_ema[[0, 2]].double(), expected, rtol=1e-6)
    assert "grad_ema" in balancer.state_dict()
