"""Staged training: which parameters train in which epoch."""

import pytest
import torch
from torch import nn

from medmtl.errors import ConfigError
from medmtl.training.stages import StagedTraining, check_stage_prefixes


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.encoder = nn.Linear(2, 2)
        self.tasks = nn.ModuleDict({"detection": nn.ModuleDict({"rpn": nn.Linear(2, 1), "roi": nn.Linear(2, 1)})})


def trainable(model):
    return sorted({name.rsplit(".", 1)[0] for name, p in model.named_parameters() if p.requires_grad})


def test_stages_then_everything():
    model = Tiny()
    stages = StagedTraining([(2, ["encoder", "tasks.detection.rpn"]), (1, ["tasks.detection.roi"])])
    for epoch, expected in [(0, ["encoder", "tasks.detection.rpn"]), (1, ["encoder", "tasks.detection.rpn"]),
                            (2, ["tasks.detection.roi"]), (3, ["encoder", "tasks.detection.roi", "tasks.detection.rpn"])]:
        stages.apply(model, epoch)
        assert trainable(model) == expected


def test_frozen_parameters_are_not_updated():
    model = Tiny()
    stages = StagedTraining([(1, ["tasks.detection.rpn"])])
    stages.apply(model, 0)
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.1, weight_decay=0.1)
    before = model.encoder.weight.detach().clone()
    loss = model.tasks["detection"]["rpn"](model.encoder(torch.ones(1, 2))).sum()
    loss.backward()
    optimizer.step()
    assert torch.equal(model.encoder.weight, before)


def test_unknown_prefix_is_a_config_error():
    with pytest.raises(ConfigError, match="trainer.stages.0.train.*'tasks.detection.rpm' matches no parameter"):
        check_stage_prefixes(Tiny(), [(1, ["tasks.detection.rpm"])])
