"""Heads, losses and partial labels for every task kind."""

import math

import pytest
import torch
import torch.nn.functional as F

from medmtl.encoders import create_encoder
from medmtl.errors import ConfigError
from medmtl.model import MultiTaskModel
from medmtl.tasks import (ClassificationTask, ReconstructionTask, RegressionTask, SegmentationTask,
                          SurvivalTask)


def _model(*tasks, channels=1):
    return MultiTaskModel(create_encoder("small_cnn", channels, width=8, stages=4), list(tasks), image_channels=channels)


def test_output_shapes(batch_factory):
    model = _model(ClassificationTask(num_classes=3), SegmentationTask(num_classes=2), ReconstructionTask(),
                   RegressionTask(num_outputs=2), SurvivalTask())
    batch = batch_factory(n=3, size=32)
    out = model(batch["image"])
    assert out["classification"].shape == (3, 3)
    assert out["segmentation"].shape == (3, 2, 32, 32)
    assert out["reconstruction"].shape == (3, 1, 32, 32)
    assert out["regression"].shape == (3, 2)
    assert out["survival"].shape == (3, 1)
    assert 0 <= out["reconstruction"].min() and out["reconstruction"].max() <= 1


def test_partial_labels_only_labelled_rows_count(batch_factory):
    task = ClassificationTask()
    model = _model(task)
    batch = batch_factory(n=4, with_label=lambda i: i < 2)
    out = model(batch["image"])
    expected = F.cross_entropy(out["classification"][:2], batch["targets"]["label"][:2])
    assert torch.allclose(model.losses(out, batch)["classification"], expected)


def test_task_without_any_target_in_batch_contributes_zero(batch_factory):
    from medmtl.balancing import FixedWeights

    model = _model(ClassificationTask(), SegmentationTask(), SurvivalTask())
    batch = batch_factory(n=4, with_label=False, with_survival=False)
    out = model(batch["image"])
    losses = model.losses(out, batch)
    assert set(losses) == {"segmentation"}
    total = FixedWeights(list(model.tasks))(losses)
    assert torch.isfinite(total) and torch.allclose(total, losses["segmentation"])
    total.backward()
    cls_grads = [p.grad for p in model.tasks["classification"].parameters()]
    assert all(g is None or float(g.abs().sum()) == 0 for g in cls_grads)


def test_survival_no_event_batch_is_zero_not_nan(batch_factory):
    model = _model(SurvivalTask())
    batch = batch_factory(n=3, with_survival=True)
    batch["targets"]["survival"][:, 1] = 0
    loss = model.losses(model(batch["image"]), batch)["survival"]
    assert float(loss) == 0.0
    loss.backward()


def test_bce_classification_probabilities(batch_factory):
    task = ClassificationTask(loss="bce", class_weights=[1.0, 3.0])
    model = _model(task)
    batch = batch_factory(n=4)
    out = model(batch["image"])
    assert out["classification"].shape == (4, 1)
    probs = task.postprocess(out["classification"])
    assert torch.allclose(probs.sum(1), torch.ones(4))
    loss = model.losses(out, batch)["classification"]
    expected = F.binary_cross_entropy_with_logits(out["classification"][:, 0], batch["targets"]["label"].float(),
                                                  pos_weight=torch.tensor(3.0))
    assert torch.allclose(loss, expected)


@pytest.mark.parametrize("loss", ["dice_ce", "dice", "generalized_dice", "ce"])
def test_segmentation_losses_finite_and_decrease(batch_factory, loss):
    torch.manual_seed(0)
    model = _model(SegmentationTask(loss=loss))
    batch = batch_factory(n=4, with_label=False)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    values = []
    for _ in range(15):
        optimizer.zero_grad()
        value = model.losses(model(batch["image"]), batch)["segmentation"]
        value.backward()
        optimizer.step()
        values.append(float(value))
    assert all(math.isfinite(v) for v in values)
    assert values[-1] < values[0]


def test_generalized_dice_matches_monai_reference(batch_factory):
    from monai.losses import GeneralizedDiceLoss

    task = SegmentationTask(loss="generalized_dice")
    logits = torch.randn(2, 2, 16, 16)
    target = (torch.rand(2, 16, 16) > 0.6).long()
    expected = GeneralizedDiceLoss(softmax=True)(logits, F.one_hot(target, 2).permute(0, 3, 1, 2).float())
    assert torch.allclose(task.compute_loss(logits, target), expected, atol=1e-6)


def test_reconstruction_without_skips_ignores_shallow_features():
    model = _model(ReconstructionTask(use_skips=False))
    head = model.tasks["reconstruction"].head
    assert not head.use_skips
    features = model.encoder(torch.rand(1, 1, 32, 32))
    base = head(features, (32, 32))
    perturbed = [f + 1.0 for f in features[:-1]] + [features[-1]]
    assert torch.allclose(base, head(perturbed, (32, 32)))


def test_multiscale_pooled_head_uses_every_depth(batch_factory):
    model = _model(ClassificationTask(pool_from="all"))
    in_features = model.tasks["classification"].head.mlp[-1].in_features
    assert in_features == sum(model.encoder.channels)


def test_pooled_head_from_chosen_scales():
    model = _model(ClassificationTask(pool_from=[1, -1]))  # the second scale and the deepest
    head = model.tasks["classification"].head
    assert head.indices == [1, len(model.encoder.channels) - 1]
    assert head.mlp[-1].in_features == model.encoder.channels[1] + model.encoder.channels[-1]
    with pytest.raises(ConfigError, match="tasks.classification.pool_from"):
        _model(ClassificationTask(pool_from=[7]))


def test_unknown_task_option_lists_the_allowed_ones():
    with pytest.raises(ConfigError, match="tasks.classification.levels.*pool_from"):
        ClassificationTask(levels="all")


def test_metrics_from_summaries(batch_factory):
    task = SegmentationTask()
    logits = torch.zeros(2, 2, 8, 8)
    target = torch.zeros(2, 8, 8, dtype=torch.long)
    target[:, :4] = 1
    logits[:, 1, :4] = 5.0
    summary = task.summarize(logits, target)
    metrics = task.compute_metrics(summary, n_resamples=50)
    assert metrics["dice"] == pytest.approx(1.0)
    assert metrics["iou"] == pytest.approx(1.0)


def test_bad_task_options_name_the_key():
    with pytest.raises(ConfigError, match="tasks.c.num_classes"):
        ClassificationTask("c", num_classes=1)
    with pytest.raises(ConfigError, match="bce"):
        ClassificationTask("c", num_classes=3, loss="bce")
    with pytest.raises(ConfigError, match="class_weights"):
        ClassificationTask("c", num_classes=2, class_weights=[1.0])
    with pytest.raises(ConfigError, match="loss"):
        SegmentationTask("s", loss="jaccard")


def test_ordinal_classification_adds_the_quadratic_weighted_kappa():
    grades = ClassificationTask(name="grade", num_classes=5, ordinal=True)
    assert grades.metric_names[-1] == "qwk" and grades.summary_metrics[-1] == "qwk"
    assert "qwk" not in ClassificationTask(num_classes=5).metric_names
    labels = torch.tensor([0, 1, 2, 3, 4, 4, 3, 2])
    metrics = grades.compute_metrics(grades.summarize(F.one_hot(labels, 5).float() * 5, labels), n_resamples=20)
    assert metrics["qwk"] == pytest.approx(1.0) and len(metrics["qwk_ci95"]) == 2
