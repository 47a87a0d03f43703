"""Detection metrics: matching, FROC / TPR at FPI by hand, AP against pycocotools."""

from __future__ import annotations

import contextlib
import io
import math

import numpy as np
import pytest

from medmtl.metrics.detection import (
    average_precision,
    box_iou,
    froc_curve,
    froc_metrics,
    image_matches,
    match_detections,
    tpr_at_fpi,
)


def test_box_iou_known_values():
    iou = box_iou(np.array([[0, 0, 10, 10]]), np.array([[0, 0, 10, 10], [5, 0, 15, 10], [20, 20, 30, 30]]))
    np.testing.assert_allclose(iou, [[1.0, 50 / 150, 0.0]])


def test_matching_is_greedy_by_score_and_one_to_one():
    gt = np.array([[0, 0, 10, 10]])
    boxes = np.array([[0, 0, 10, 10], [1, 1, 10, 10]])
    flags = match_detections(boxes, [0.2, 0.9], gt, iou_threshold=0.2)
    assert flags.tolist() == [False, True]  # the higher score takes the lesion; the other is an FP


def test_matching_threshold_is_strict_unless_inclusive():
    gt = np.array([[0, 0, 10, 10]])
    box = np.array([[5, 0, 15, 10]])  # IoU 1/3
    assert not match_detections(box, [1.0], gt, iou_threshold=1 / 3)[0]
    assert match_detections(box, [1.0], gt, iou_threshold=1 / 3, inclusive=True)[0]


def test_froc_by_hand():
    # image 1: one lesion, found with score 0.9, FP at 0.8; image 2 (normal): FP at 0.7;
    # image 3: one lesion, found with 0.6
    lesion = np.array([[10, 10, 20, 20]])
    matches = [
        image_matches(np.array([[10, 10, 20, 20], [50, 50, 60, 60]]), [0.9, 0.8], lesion),
        image_matches(np.array([[0, 0, 5, 5]]), [0.7], np.zeros((0, 4))),
        image_matches(np.array([[11, 11, 20, 20]]), [0.6], lesion),
    ]
    fpi, tpr, thresholds = froc_curve(matches)
    np.testing.assert_allclose(fpi, [0, 0, 1 / 3, 2 / 3, 2 / 3])
    np.testing.assert_allclose(tpr, [0, 0.5, 0.5, 0.5, 1.0])
    np.testing.assert_allclose(thresholds[1:], [0.9, 0.8, 0.7, 0.6])
    at = tpr_at_fpi(fpi, tpr, [0.25, 0.5, 1.0])
    assert at == {0.25: 0.5, 0.5: 0.5, 1.0: 1.0}
    metrics = froc_metrics(matches, levels=(0.5, 1.0), n_resamples=200)
    assert metrics["tpr_fpi_0.5"] == 0.5 and metrics["tpr_fpi_1"] == 1.0
    assert metrics["froc_score"] == 0.75
    lo, hi = metrics["tpr_fpi_1_ci95"]
    assert 0 <= lo <= hi <= 1


def test_froc_counts_ties_together():
    lesion = np.array([[0, 0, 10, 10]])
    matches = [image_matches(np.array([[0, 0, 10, 10], [30, 30, 40, 40]]), [0.5, 0.5], lesion)]
    fpi, tpr, _ = froc_curve(matches)
    np.testing.assert_allclose(fpi, [0, 1])  # both detections enter at the same threshold
    np.testing.assert_allclose(tpr, [0, 1])


def test_froc_without_lesions_is_nan():
    matches = [image_matches(np.array([[0, 0, 4, 4]]), [0.3], np.zeros((0, 4)))]
    assert math.isnan(froc_metrics(matches, n_resamples=0)["tpr_fpi_1"])


def _random_case(rng: np.random.Generator, n_images: int, n_classes: int):
    preds, gts = [], []
    for _ in range(n_images):
        n_gt = int(rng.integers(0, 4))
        xy = rng.uniform(0, 80, size=(n_gt, 2))
        wh = rng.uniform(5, 30, size=(n_gt, 2))
        gt_boxes = np.concatenate([xy, xy + wh], axis=1)
        gt_labels = rng.integers(1, n_classes + 1, size=n_gt)
        # detections: jittered copies of the ground truth (some with the wrong class) plus clutter
        jitter = gt_boxes + rng.normal(0, 4, size=gt_boxes.shape)
        clutter_xy = rng.uniform(0, 80, size=(int(rng.integers(0, 5)), 2))
        clutter = np.concatenate([clutter_xy, clutter_xy + rng.uniform(5, 30, size=clutter_xy.shape)], axis=1)
        boxes = np.concatenate([jitter, clutter])
        boxes[:, 2:] = np.maximum(boxes[:, 2:], boxes[:, :2] + 1)
        labels = np.concatenate([np.where(rng.random(n_gt) < 0.8, gt_labels, rng.integers(1, n_classes + 1, n_gt)),
                                 rng.integers(1, n_classes + 1, size=len(clutter))])
        scores = rng.random(len(boxes))
        preds.append((boxes, scores, labels))
        gts.append((gt_boxes, gt_labels))
    return preds, gts


def _coco_ap50(preds, gts, n_classes: int) -> float:
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    images = [{"id": i, "width": 128, "height": 128} for i in range(len(gts))]
    annotations = []
    for i, (boxes, labels) in enumerate(gts):
        for box, label in zip(boxes, labels):
            w, h = box[2] - box[0], box[3] - box[1]
            annotations.append({"id": len(annotations) + 1, "image_id": i, "category_id": int(label),
                                "bbox": [float(box[0]), float(box[1]), float(w), float(h)], "area": float(w * h),
                                "iscrowd": 0})
    truth = COCO()
    truth.dataset = {"images": images, "annotations": annotations,
                     "categories": [{"id": c} for c in range(1, n_classes + 1)]}
    truth.createIndex()
    results = [{"image_id": i, "category_id": int(label), "score": float(score),
                "bbox": [float(b[0]), float(b[1]), float(b[2] - b[0]), float(b[3] - b[1])]}
               for i, (boxes, scores, labels) in enumerate(preds) for b, score, label in zip(boxes, scores, labels)]
    with contextlib.redirect_stdout(io.StringIO()):
        detected = truth.loadRes(results)
        evaluation = COCOeval(truth, detected, "bbox")
        evaluation.params.iouThrs = np.array([0.5])
        evaluation.params.areaRng = [[0, 1e10]]
        evaluation.params.areaRngLbl = ["all"]
        evaluation.params.maxDets = [100]
        evaluation.evaluate()
        evaluation.accumulate()
    precision = evaluation.eval["precision"][0, :, :, 0, 0]  # [recall, class]
    valid = precision[:, (precision > -1).all(axis=0)]
    return float(valid.mean())


@pytest.mark.parametrize("seed,n_classes", [(0, 1), (1, 1), (2, 2), (3, 3)])
def test_ap50_matches_pycocotools(seed, n_classes):
    pytest.importorskip("pycocotools")
    rng = np.random.default_rng(seed)
    preds, gts = _random_case(rng, n_images=25, n_classes=n_classes)
    ours = average_precision([p[0] for p in preds], [p[1] for p in preds], [p[2] for p in preds],
                             [g[0] for g in gts], [g[1] for g in gts], iou_threshold=0.5)
    assert ours == pytest.approx(_coco_ap50(preds, gts, n_classes), abs=1e-9)


def test_ap_perfect_and_empty():
    gt = [np.array([[0, 0, 10, 10]]), np.zeros((0, 4))]
    labels = [np.array([1]), np.zeros(0, dtype=int)]
    assert average_precision(gt, [np.array([0.9]), np.zeros(0)], labels, gt, labels) == pytest.approx(1.0)
    assert average_precision([np.zeros((0, 4))] * 2, [np.zeros(0)] * 2, [np.zeros(0)] * 2, gt, labels) == 0.0
    assert math.isnan(average_precision([], [], [], [], []))
