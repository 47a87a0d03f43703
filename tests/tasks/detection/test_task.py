"""DetectionTask: losses and detections in both modes, partial labels, feature transfer, errors."""

from __future__ import annotations

import pytest
import torch

from helpers import square_sample
from medmtl.data.collate import collate_samples
from medmtl.encoders import create_encoder
from medmtl.encoders.base import Encoder, FeatureInfo
from medmtl.errors import ConfigError, DataError
from medmtl.model import MultiTaskModel
from medmtl.tasks import ClassificationTask, DetectionTask, SegmentationTask
from medmtl.tasks.detection import Detections

RPN_AND_ROI = {"rpn_objectness", "rpn_box", "roi_class", "roi_box", "mask"}


def make_model(*tasks, width: int = 8) -> MultiTaskModel:
    torch.manual_seed(0)
    return MultiTaskModel(create_encoder("small_cnn", in_channels=1, width=width, stages=4), list(tasks))


def test_training_mode_gives_losses_and_no_detections_by_default(square_batch):
    model = make_model(DetectionTask())
    model.train()
    out = model(square_batch["image"], square_batch)["detection"]
    assert isinstance(out, Detections)
    assert set(out.losses) == RPN_AND_ROI
    assert all(torch.isfinite(v) for v in out.losses.values())
    assert all(len(b) == 0 for b in out.boxes)
    loss = model.losses({"detection": out}, square_batch)["detection"]
    loss.backward()
    assert sum(float(p.grad.abs().sum()) for p in model.encoder.parameters() if p.grad is not None) > 0


def test_detections_in_training_mode_when_asked(square_batch):
    model = make_model(DetectionTask(detect_in_training=True, score_thresh=0.0))
    model.train()
    out = model(square_batch["image"], square_batch)["detection"]
    assert out.losses and sum(len(b) for b in out.boxes) > 0


def test_eval_mode_gives_losses_and_detections(square_batch):
    model = make_model(DetectionTask(score_thresh=0.0, detections_per_img=5))
    model.eval()
    with torch.no_grad():
        out = model(square_batch["image"], square_batch)["detection"]
    assert set(out.losses) == RPN_AND_ROI
    assert len(out.boxes) == 4 and all(len(b) <= 5 for b in out.boxes)
    assert out.masks is not None and out.masks[0].shape[-2:] == (64, 64)
    assert out.image_scores.shape == (4,)
    without_batch = model(square_batch["image"])["detection"]
    assert without_batch.losses == {}


def test_images_without_boxes_key_are_left_out_and_empty_batches_give_none():
    samples = [square_sample(0), square_sample(1)]
    del samples[1]["boxes"], samples[1]["box_labels"], samples[1]["mask"]
    batch = collate_samples(samples)
    task = DetectionTask()
    model = make_model(task)
    model.train()
    out = model(batch["image"], batch)["detection"]
    assert torch.isfinite(task.loss(out, batch))
    unlabelled = collate_samples([{"image": s["image"], "name": s["name"]} for s in samples])
    out = model(unlabelled["image"], unlabelled)["detection"]
    assert task.loss(out, unlabelled) is None
    assert model.losses({"detection": out}, unlabelled) == {}


def test_a_batch_of_negatives_trains():
    batch = collate_samples([square_sample(i, lesion=False) for i in range(3)])
    task = DetectionTask()
    model = make_model(task)
    model.train()
    loss = task.loss(model(batch["image"], batch)["detection"], batch)
    assert torch.isfinite(loss)
    loss.backward()


def test_mask_loss_skips_images_without_masks():
    samples = [square_sample(0), square_sample(1)]
    del samples[0]["mask"], samples[1]["mask"]
    batch = collate_samples(samples)
    model = make_model(DetectionTask())
    model.train()
    out = model(batch["image"], batch)["detection"]
    assert float(out.losses["mask"].detach()) == 0.0 and torch.isfinite(out.losses["roi_class"])


def test_feature_transfer_routes_classification_gradient_through_the_mask_head(square_batch):
    grads = {}
    for transfer in (False, True):
        task = DetectionTask(num_classes=2, label_source="image_label", feature_transfer=transfer)
        model = make_model(task)
        model.train()
        torch.manual_seed(1)
        out = model(square_batch["image"], square_batch)["detection"]
        out.losses["roi_class"].backward()
        head = task.head["roi_heads"].mask_head
        grads[transfer] = sum(float(p.grad.abs().sum()) for p in head.parameters() if p.grad is not None)
        in_features = task.head["roi_heads"].box_predictor.cls_score.in_features
        assert in_features == 256 + (2 * 32 if transfer else 0)
    assert grads[False] == 0.0 and grads[True] > 0.0


def test_image_label_source_gives_class_aware_targets(square_batch):
    task = DetectionTask(num_classes=2, label_source="image_label")
    make_model(task)
    selected = task.select(Detections([torch.zeros(0, 4)] * 4, [torch.zeros(0)] * 4,
                                      [torch.zeros(0, dtype=torch.long)] * 4, None, torch.zeros(4)), square_batch)
    _, truth = selected
    assert [t["labels"].tolist() for t in truth] == [[1], [2], [1], []]


def test_joint_training_with_other_heads_in_one_step(square_batch):
    model = make_model(DetectionTask(), ClassificationTask(), SegmentationTask())
    model.train()
    losses = model.losses(model(square_batch["image"], square_batch), square_batch)
    assert set(losses) == {"detection", "classification", "segmentation"}
    torch.stack(list(losses.values())).sum().backward()


def test_summary_and_metrics_of_a_perfect_detector(square_batch):
    task = DetectionTask()
    make_model(task)
    boxes = square_batch["targets"]["boxes"]
    masks = [torch.stack([(square_batch["targets"]["mask"][i] > 0).float()] * len(b)) if len(b) else
             torch.zeros(0, 64, 64) for i, b in enumerate(boxes)]
    perfect = Detections(list(boxes), [torch.ones(len(b)) for b in boxes],
                         [torch.ones(len(b), dtype=torch.long) for b in boxes], masks,
                         torch.tensor([1.0, 1.0, 1.0, 0.0]))
    summary = task.summarize(*task.select(perfect, square_batch))
    metrics = task.compute_metrics(summary, n_resamples=20)
    assert metrics["ap50"] == pytest.approx(1.0) and metrics["tpr_fpi_0.5"] == 1.0
    assert metrics["dice"] == pytest.approx(1.0) and metrics["auc"] == pytest.approx(1.0)
    assert metrics["n"] == 4


class _SingleScaleEncoder(Encoder):
    feature_info = [FeatureInfo(8, 16)]

    def forward(self, x):
        return [x.new_zeros(x.shape[0], 8, x.shape[-2] // 16, x.shape[-1] // 16)]


def test_encoder_without_multi_scale_features_is_a_config_error():
    with pytest.raises(ConfigError, match="at least two feature scales"):
        MultiTaskModel(_SingleScaleEncoder(), [DetectionTask()])


@pytest.mark.parametrize("box,problem", [([10, 10, 10, 20], "zero or negative area"),
                                         ([50, 50, 70, 60], "outside the 64×64 image"),
                                         ([-3, 4, 10, 10], "outside")])
def test_bad_boxes_name_the_sample(box, problem):
    sample = square_sample(0)
    sample["boxes"] = torch.tensor([box], dtype=torch.float32)
    batch = collate_samples([sample])
    model = make_model(DetectionTask())
    with pytest.raises(DataError, match=f"sq0.*{problem}"):
        model(batch["image"], batch)


def test_box_class_outside_num_classes_is_an_error():
    sample = square_sample(0)
    sample["box_labels"] = torch.tensor([3])
    batch = collate_samples([sample])
    with pytest.raises(DataError, match="box class 3 is outside 1..2"):
        make_model(DetectionTask(num_classes=2))(batch["image"], batch)


def test_option_errors():
    with pytest.raises(ConfigError, match="feature_transfer"):
        DetectionTask(mask_head=False, feature_transfer=True)
    with pytest.raises(ConfigError, match="loss_weights"):
        DetectionTask(loss_weights={"boxes": 1.0})
    with pytest.raises(ConfigError, match="veto_class"):
        DetectionTask(num_classes=2, veto_class=3)


def test_loss_weights_scale_the_parts(square_batch):
    task = DetectionTask(loss_weights={"mask": 0.0, "box": 0.0})
    make_model(task).train()
    parts = {"rpn_objectness": torch.tensor(1.0), "rpn_box": torch.tensor(2.0), "roi_class": torch.tensor(3.0),
             "roi_box": torch.tensor(4.0), "mask": torch.tensor(5.0)}
    out = Detections([], [], [], None, torch.zeros(0), parts)
    assert float(task.compute_loss(out, [])) == 4.0
    assert task.loss_parts(out) == parts


@pytest.mark.slow
def test_detector_learns_bright_squares():
    """A few hundred steps on 16 images: the detector finds the squares (AP50 and TPR high)."""
    torch.manual_seed(0)
    batch = collate_samples([square_sample(i, lesion=i % 4 != 3, seed=7) for i in range(16)])
    task = DetectionTask(fpn_channels=32, representation=64, mask_channels=16)
    model = make_model(task, width=8)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(80):
        loss = task.loss(model(batch["image"], batch)["detection"], batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    with torch.no_grad():
        out = model(batch["image"])["detection"]
    metrics = task.compute_metrics(task.summarize(*task.select(out, batch)), n_resamples=0)
    assert metrics["ap50"] > 0.8
    assert metrics["tpr_fpi_0.5"] > 0.8
    assert metrics["dice"] > 0.6


def test_images_without_an_image_label_count_for_froc_but_not_for_the_image_auc():
    samples = [square_sample(0), square_sample(1), square_sample(2, lesion=False)]
    del samples[2]["label"]  # a normal image: no class among benign/malignant, no boxes
    batch = collate_samples(samples)
    task = DetectionTask(num_classes=2, label_source="image_label", fpi_levels=(0.2, 0.5))
    make_model(task)
    boxes = batch["targets"]["boxes"]
    found = Detections([b.clone() for b in boxes[:2]] + [torch.tensor([[1.0, 1, 9, 9]])],
                       [torch.full((1,), 0.9), torch.full((1,), 0.9), torch.tensor([0.95])],
                       [torch.tensor([1]), torch.tensor([2]), torch.tensor([2])], None,
                       torch.tensor([0.0, 0.9, 0.95]))
    summary = task.summarize(*task.select(found, batch))
    assert summary["image_positive"].tolist() == [0, 1, -1]
    metrics = task.compute_metrics(summary, n_resamples=0)
    assert metrics["auc"] == 1.0  # the normal image's confident false positive does not enter the AUC…
    assert metrics["tpr_fpi_0.2"] == 0.0 and metrics["tpr_fpi_0.5"] == 1.0  # …but costs 1/3 FP per image
