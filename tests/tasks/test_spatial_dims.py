"""Every task kind's head, loss and metrics on volumes ``[B, C, D, H, W]`` as on images; detection is 2D only."""

import pytest
import torch

from medmtl.config import config_from_dict
from medmtl.encoders import create_encoder
from medmtl.errors import ConfigError
from medmtl.model import MultiTaskModel
from medmtl.tasks import TASKS, task_class
from medmtl.tasks.heads import PooledHead
from medmtl.encoders.base import FeatureInfo

VOLUME_KINDS = sorted(kind for kind, cls in TASKS.items() if 3 in cls.spatial_dims)
SHAPE = (6, 16, 12)  # non-cubic, and not divisible by every stride


def _volume_batch(n: int = 2) -> dict:
    gen = torch.Generator().manual_seed(0)
    image = torch.rand(n, 1, *SHAPE, generator=gen)
    mask = (image[:, 0] > 0.6).long()
    targets = {"label": torch.tensor([0, 1] * (n // 2)), "mask": mask, "image": image,
               "value": torch.rand(n, generator=gen), "survival": torch.stack([torch.rand(n) * 10 + 1,
                                                                               torch.tensor([1.0, 0.0] * (n // 2))], 1)}
    return {"image": image, "name": [str(i) for i in range(n)], "targets": targets,
            "present": {k: torch.ones(n, dtype=torch.bool) for k in targets}}


@pytest.mark.parametrize("kind", VOLUME_KINDS)
@pytest.mark.parametrize("encoder", ["small_cnn", "resnet10"])
def test_every_volume_kind_forward_loss_backward_metrics(kind, encoder):
    options = {"width": 4, "stages": 3} if encoder == "small_cnn" else {}
    task = task_class(kind)()
    model = MultiTaskModel(create_encoder(encoder, 1, spatial_dims=3, **options), [task])
    batch = _volume_batch(4)
    out = model(batch["image"], batch)
    if task.dense:
        assert out[task.name].shape[0] == 4 and out[task.name].shape[2:] == SHAPE
    loss = model.losses(out, batch)[task.name]
    loss.backward()
    assert torch.isfinite(loss)
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.encoder.parameters())
    prediction, target = task.select(out[task.name], batch)
    metrics = task.compute_metrics(task.summarize(prediction, target), n_resamples=0)
    assert metrics


def test_multiscale_outcome_head_pools_average_and_max_of_each_depth():
    info = [FeatureInfo(4, (1, 1, 1)), FeatureInfo(8, (2, 2, 2)), FeatureInfo(16, (4, 4, 4))]
    head = PooledHead(info, 2, scales=[1, 2], hidden=0, dropout=0.0, pooling="avg_max")
    features = [torch.randn(3, c.channels, 4, 4, 4) for c in info]
    pooled = head.pool(features)
    assert pooled.shape == (3, 2 * (8 + 16))
    torch.testing.assert_close(pooled[:, :8], features[1].mean(dim=(2, 3, 4)))
    torch.testing.assert_close(pooled[:, 8:16], features[1].amax(dim=(2, 3, 4)))
    assert head(features).shape == (3, 2)


def _raw(**model):
    return {"data": {"kind": "phantom", "image_size": 16}, "model": {"encoder": {"name": "small_cnn"}, **model}}


def test_config_asks_each_part_for_3d():
    assert config_from_dict(_raw(tasks=[{"kind": "segmentation"}])).model.spatial_dims == 2
    cfg = config_from_dict(_raw(spatial_dims=3, tasks=[{"kind": "segmentation"}]))
    assert cfg.model.spatial_dims == 3 and cfg.data.spatial_dims == 3 and cfg.data.image_shape == (16, 16, 16)
    with pytest.raises(ConfigError, match="2D images only") as info:
        config_from_dict(_raw(spatial_dims=3, tasks=[{"kind": "classification"}, {"kind": "detection"}]))
    assert info.value.key == "model.tasks.1.kind"
    with pytest.raises(ConfigError, match="2D only"):
        config_from_dict({**_raw(spatial_dims=3, tasks=[{"kind": "segmentation"}]),
                          "model": {"spatial_dims": 3, "encoder": {"name": "vgg13_bn"},
                                    "tasks": [{"kind": "segmentation"}]}})


def test_spatial_dims_inferred_from_the_data_section_and_contradictions_refused():
    raw = _raw(tasks=[{"kind": "segmentation"}])
    raw["data"]["image_size"] = [8, 16, 16]
    assert config_from_dict(raw).model.spatial_dims == 3
    raw = _raw(tasks=[{"kind": "segmentation"}])
    raw["data"]["volume"] = {"spacing": [1, 1, 1]}
    assert config_from_dict(raw).model.spatial_dims == 3
    raw["model"]["spatial_dims"] = 2
    with pytest.raises(ConfigError, match="describes 3D data") as info:
        config_from_dict(raw)
    assert info.value.key == "model.spatial_dims"
