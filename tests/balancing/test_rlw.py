import pytest
import torch

from medmtl.balancing import create_balancer


def test_rlw_weights_positive_sum_to_one_and_change_each_step():
    torch.manual_seed(0)
    balancer = create_balancer("rlw", ["a", "b", "c"])
    balancer.train()
    losses = {"a": torch.tensor(1.0), "b": torch.tensor(2.0), "c": torch.tensor(3.0)}
    seen = []
    for _ in range(5):
        total = balancer(losses)
        weights = balancer.current_weights()
        assert all(w > 0 for w in weights.values())
        assert sum(weights.values()) == pytest.approx(1.0)  # softmax (Lin et al. 2022): no factor T
        assert float(total) == pytest.approx(sum(weights[k] * float(v) for k, v in losses.items()), rel=1e-5)
        seen.append(tuple(weights.values()))
    assert len(set(seen)) == 5


def test_rlw_draws_follow_the_seed_and_absent_tasks_keep_their_weight():
    balancer = create_balancer("rlw", ["a", "b"])
    balancer.train()
    torch.manual_seed(3)
    balancer({"a": torch.tensor(1.0), "b": torch.tensor(1.0)})
    first = balancer.current_weights()
    torch.manual_seed(3)
    draws = torch.softmax(torch.randn(2), dim=0)
    assert list(first.values()) == pytest.approx(draws.tolist())
    loss = torch.tensor(2.0, requires_grad=True)
    total = balancer({"a": loss})
    assert float(total) == pytest.approx(2.0)  # one present task: softmax of one draw = 1
    assert balancer.current_weights()["b"] == first["b"]
