"""The paper presets build with the papers' backbones and train one joint step on phantom images."""

import pytest
import torch

from medmtl.builders import build_model
from medmtl.config import load_config
from medmtl.data.build import build_datasets
from medmtl.data.collate import collate_samples

pytestmark = pytest.mark.slow

PHANTOM = "data={kind: phantom, image_size: 64, channels: 1, batch_size: 4, phantom: {n_train: 4, n_val: 2, seed: 2}}"


@pytest.mark.parametrize("preset, encoder, tasks", [
    ("four-task", "vgg13_bn", {"classification", "segmentation", "reconstruction", "detection"}),
    ("four-task", "resnet50", {"classification", "segmentation", "reconstruction", "detection"}),
    ("ft-mtl-net", "resnet50", {"detection"}),
])
def test_preset_with_paper_backbone_trains_a_step(preset, encoder, tasks):
    config = load_config(preset, [PHANTOM, f"model.encoder.name={encoder}"])
    torch.manual_seed(0)
    model = build_model(config)
    dataset = build_datasets(config.data, boxes_from_masks=model.wants_boxes_from_masks)["train"]
    batch = collate_samples([dataset[i] for i in range(4)])
    model.train()
    outputs = model(batch["image"], batch)
    losses = model.losses(outputs, batch)
    assert set(losses) == tasks and all(torch.isfinite(v) for v in losses.values())
    sum(losses.values()).backward()
    assert all(p.grad is not None for p in model.encoder.parameters() if p.requires_grad), "encoder not trained"
