"""SurvivalTask memory bank: Cox risk sets across steps, for batches of one sample."""

import pytest
import torch

from medmtl.errors import ConfigError
from medmtl.losses.cox import cox_partial_likelihood_loss
from medmtl.tasks import SurvivalTask


def test_memory_adds_remembered_samples_to_the_risk_sets():
    task = SurvivalTask(memory=3)
    task.train()
    steps = [(0.3, 5.0, 1.0), (-0.2, 9.0, 0.0), (0.8, 2.0, 1.0), (0.1, 7.0, 1.0), (0.5, 4.0, 0.0)]
    seen = []
    for risk_value, time, event in steps:
        risk = torch.tensor([[risk_value]], requires_grad=True)
        loss = task.compute_loss(risk, torch.tensor([[time, event]]))
        bank = seen[-3:]
        expected = cox_partial_likelihood_loss(torch.tensor([risk_value] + [r for r, _, _ in bank]),
                                               torch.tensor([time] + [t for _, t, _ in bank]),
                                               torch.tensor([event] + [e for _, _, e in bank]))
        assert float(loss) == pytest.approx(float(expected), abs=1e-6)
        if bank:  # with company in the risk set, one sample alone gets a gradient
            loss.backward()
            assert risk.grad is not None and float(risk.grad.abs()) > 0
        seen.append((risk_value, time, event))
    assert task.bank.shape == (3, 3)


def test_single_sample_without_memory_gives_zero_or_no_information():
    task = SurvivalTask()
    task.train()
    risk = torch.tensor([[0.4]], requires_grad=True)
    assert float(task.compute_loss(risk, torch.tensor([[3.0, 1.0]]))) == 0.0  # only itself in its risk set


def test_memory_is_not_used_in_evaluation():
    task = SurvivalTask(memory=4)
    task.train()
    task.compute_loss(torch.tensor([[1.0], [0.0]]), torch.tensor([[2.0, 1.0], [3.0, 0.0]]))
    task.eval()
    risk, target = torch.tensor([[0.2], [0.1]]), torch.tensor([[1.0, 1.0], [4.0, 1.0]])
    assert float(task.compute_loss(risk, target)) == pytest.approx(
        float(cox_partial_likelihood_loss(risk[:, 0], target[:, 0], target[:, 1])))
    assert task.bank.shape == (2, 3)


def test_negative_memory_is_a_config_error():
    with pytest.raises(ConfigError, match="memory"):
        SurvivalTask(memory=-1)
