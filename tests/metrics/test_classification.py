"""Classification metrics against scikit-learn on the same numbers."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from sklearn.metrics import accuracy_score, balanced_accuracy_score, roc_auc_score, roc_curve

from medmtl.metrics import (
    accuracy,
    balanced_accuracy,
    classification_metrics,
    expected_calibration_error,
    reliability_curve,
    roc_auc,
    roc_curve_points,
    roc_curves,
)


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_binary_auc_matches_sklearn(seed: int) -> None:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, 150)
    scores = np.round(rng.normal(size=150) + labels, 1)  # rounding creates tied scores
    assert roc_auc(labels, scores) == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)
    probs = np.stack([1 - scores, scores], axis=1)
    assert roc_auc(labels, probs) == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)
    assert isinstance(roc_auc(labels, scores), float)


def test_binary_auc_non_01_labels_use_larger_label() -> None:
    labels = np.array([3, 7, 7, 3, 7, 3])
    scores = np.array([0.1, 0.8, 0.3, 0.4, 0.9, 0.2])
    assert roc_auc(labels, scores) == pytest.approx(roc_auc_score(labels, scores))


@pytest.mark.parametrize("k", [3, 5])
def test_multiclass_auc_matches_sklearn_ovr_macro(k: int) -> None:
    rng = np.random.default_rng(k)
    labels = rng.integers(0, k, 300)
    logits = rng.normal(size=(300, k))
    logits[np.arange(300), labels] += 1.0
    probs = _softmax(logits)
    expected = roc_auc_score(labels, probs, multi_class="ovr", average="macro")
    assert roc_auc(labels, probs) == pytest.approx(expected, abs=1e-12)
    assert roc_auc(torch.tensor(labels), torch.tensor(probs)) == pytest.approx(expected, abs=1e-12)


def test_multiclass_missing_class_averages_present_classes() -> None:
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 100)  # class 2 never occurs
    probs = _softmax(rng.normal(size=(100, 3)))
    expected = np.mean([roc_auc_score(labels == c, probs[:, c]) for c in (0, 1)])
    assert roc_auc(labels, probs) == pytest.approx(expected)


def test_auc_one_class_raises() -> None:
    with pytest.raises(ValueError, match="one class"):
        roc_auc(np.ones(10, dtype=int), np.linspace(0, 1, 10))
    with pytest.raises(ValueError, match="one class"):
        roc_auc(np.zeros(10, dtype=int), _softmax(np.zeros((10, 3))))


def test_auc_bad_inputs_raise() -> None:
    with pytest.raises(ValueError):
        roc_auc(np.array([0, 1, 2]), np.array([0.1, 0.2, 0.3]))
    with pytest.raises(ValueError):
        roc_auc(np.array([0, 1]), np.array([0.1]))
    with pytest.raises(ValueError):
        roc_auc(np.array([0, 3]), np.ones((2, 3)) / 3)
    with pytest.raises(ValueError):
        roc_auc(np.array([0, 1]), np.array([0.1, np.nan]))


def test_accuracy_and_balanced_accuracy_match_sklearn() -> None:
    rng = np.random.default_rng(4)
    labels = rng.choice(4, size=200, p=[0.6, 0.2, 0.15, 0.05])
    predicted = np.where(rng.random(200) < 0.7, labels, rng.integers(0, 5, 200))  # includes class 4
    assert accuracy(labels, predicted) == pytest.approx(accuracy_score(labels, predicted))
    with pytest.warns(UserWarning):  # sklearn warns about class 4 present only in predictions
        expected = balanced_accuracy_score(labels, predicted)
    assert balanced_accuracy(labels, predicted) == pytest.approx(expected)
    assert balanced_accuracy(torch.tensor(labels), torch.tensor(predicted)) == pytest.approx(expected)
    with pytest.raises(ValueError):
        accuracy(labels, predicted[:-1])


def test_roc_curve_points_match_sklearn() -> None:
    rng = np.random.default_rng(5)
    labels = rng.integers(0, 2, 60)
    scores = rng.random(60)
    fpr, tpr = roc_curve_points(labels, scores)
    ref_fpr, ref_tpr, _ = roc_curve(labels, scores)
    np.testing.assert_allclose(fpr, ref_fpr)
    np.testing.assert_allclose(tpr, ref_tpr)
    assert np.trapezoid(tpr, fpr) == pytest.approx(roc_auc(labels, scores))
    with pytest.raises(ValueError):
        roc_curve_points(np.zeros(5), np.arange(5.0))


def test_roc_curves_binary_and_one_vs_rest() -> None:
    rng = np.random.default_rng(6)
    probs = rng.dirichlet(np.ones(2), 40)
    labels = rng.integers(0, 2, 40)
    curves = roc_curves(labels, probs)
    assert list(curves) == [1]  # two classes: the positive class only
    np.testing.assert_allclose(curves[1][1], roc_curve(labels, probs[:, 1])[1])
    probs = rng.dirichlet(np.ones(3), 40)
    labels = np.where(rng.random(40) < 0.5, 0, 2)  # class 1 absent: no curve for it
    curves = roc_curves(labels, probs)
    assert list(curves) == [0, 2]
    ref_fpr, ref_tpr, _ = roc_curve(labels == 2, probs[:, 2])
    np.testing.assert_allclose(curves[2][0], ref_fpr)
    np.testing.assert_allclose(curves[2][1], ref_tpr)


def test_classification_metrics_summary() -> None:
    rng = np.random.default_rng(6)
    labels = rng.integers(0, 3, 120)
    logits = rng.normal(size=(120, 3))
    logits[np.arange(120), labels] += 1.5
    probs = _softmax(logits)
    out = classification_metrics(labels, probs, n_resamples=300, seed=0)
    assert set(out) == {"auc", "auc_ci95", "accuracy", "accuracy_ci95", "balanced_accuracy",
                        "balanced_accuracy_ci95", "ece", "ece_ci95", "n"}
    assert out["n"] == 120
    assert out["auc"] == pytest.approx(roc_auc_score(labels, probs, multi_class="ovr"))
    assert out["accuracy"] == pytest.approx(accuracy_score(labels, probs.argmax(1)))
    assert out["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(labels, probs.argmax(1)))
    assert out["auc_ci95"][0] < out["auc"] < out["auc_ci95"][1]
    assert out["accuracy_ci95"][0] <= out["accuracy"] <= out["accuracy_ci95"][1]
    # The vectorised AUC bootstrap equals the generic per-resample one on the same resamples.
    from medmtl.metrics import bootstrap_ci
    assert out["auc_ci95"] == pytest.approx(list(bootstrap_ci(roc_auc, labels, probs, n_resamples=300)))
    assert classification_metrics(labels, probs, n_resamples=300, seed=0) == out
    # ECE: the top-label one of expected_calibration_error; its vectorised bootstrap equals the generic one
    assert out["ece"] == pytest.approx(expected_calibration_error(labels, probs), abs=1e-12)
    assert out["ece_ci95"] == pytest.approx(list(bootstrap_ci(expected_calibration_error, labels, probs,
                                                               n_resamples=300)), abs=1e-12)
    assert out["ece_ci95"][0] < out["ece_ci95"][1]


def test_classification_metrics_one_class_gives_nan_auc() -> None:
    labels = np.zeros(10, dtype=int)
    probs = _softmax(np.random.default_rng(0).normal(size=(10, 2)))
    out = classification_metrics(labels, probs, n_resamples=50)
    assert math.isnan(out["auc"]) and all(math.isnan(v) for v in out["auc_ci95"])
    assert out["accuracy"] == pytest.approx(np.mean(probs.argmax(1) == 0))
    assert out["n"] == 10


def test_classification_metrics_binary_1d_probs() -> None:
    rng = np.random.default_rng(7)
    labels = rng.integers(0, 2, 80)
    p = np.clip(0.5 * labels + 0.5 * rng.random(80), 0, 1)
    out = classification_metrics(labels, p, n_resamples=100)
    assert out["auc"] == pytest.approx(roc_auc_score(labels, p))
    assert out["accuracy"] == pytest.approx(accuracy_score(labels, p >= 0.5))


def test_balanced_accuracy_interval_is_the_percentile_bootstrap_of_sklearns_score() -> None:
    from medmtl.metrics.bootstrap import bootstrap_indices

    rng = np.random.default_rng(4)
    labels = rng.integers(0, 3, 60)
    probs = rng.dirichlet(np.ones(3), 60)
    probs[np.arange(60), labels] += 0.4 * rng.random(60)  # better than chance
    result = classification_metrics(labels, probs, n_resamples=200, seed=5)
    predicted = probs.argmax(1)
    per_resample = [balanced_accuracy_score(labels[idx], predicted[idx]) for idx in bootstrap_indices(60, 200, 5)]
    low, high = np.percentile(per_resample, [2.5, 97.5])
    assert result["balanced_accuracy_ci95"] == pytest.approx([low, high], abs=1e-12)
    assert low < result["balanced_accuracy"] < high


def _reference_ece(outcome: np.ndarray, p: np.ndarray, n_bins: int = 10) -> float:
    """ECE by its definition, bin by bin: [0, 1/B], (1/B, 2/B], …, weighted by the bins' sizes."""
    edges = np.linspace(0, 1, n_bins + 1)
    total = 0.0
    for b in range(n_bins):
        members = (p > edges[b]) & (p <= edges[b + 1]) if b else (p <= edges[1])
        if members.any():
            total += members.sum() / len(p) * abs(outcome[members].mean() - p[members].mean())
    return total


def test_ece_by_hand() -> None:
    labels = np.array([0, 1, 1, 0])
    p1 = np.array([0.05, 0.95, 0.35, 0.35])
    # bins [0, .1]: |0 - .05|; (.9, 1]: |1 - .95|; (.3, .4]: |.5 - .35| for 2 of 4 samples
    expected = 0.25 * 0.05 + 0.25 * 0.05 + 0.5 * 0.15
    assert expected_calibration_error(labels, np.stack([1 - p1, p1], axis=1)) == pytest.approx(expected, abs=1e-12)
    assert expected_calibration_error(labels, p1) == pytest.approx(expected, abs=1e-12)  # [N] positive-class probs
    # an edge value belongs to the lower bin (as calibration_curve): 0.1 with label 0 sits in [0, 0.1]
    assert expected_calibration_error([0, 0], [0.1, 0.0]) == pytest.approx(0.05, abs=1e-12)
    # three classes: confidence 0.6 right, 0.6 wrong, 0.9 right -> |0.5 - 0.6| * 2/3 + |1 - 0.9| * 1/3
    probs = np.array([[0.6, 0.3, 0.1], [0.6, 0.2, 0.2], [0.05, 0.05, 0.9]])
    assert expected_calibration_error([0, 1, 2], probs) == pytest.approx(0.1 * 2 / 3 + 0.1 / 3, abs=1e-12)
    assert expected_calibration_error([0, 1, 0, 1], [0.0, 1.0, 0.0, 1.0]) == 0.0


@pytest.mark.parametrize("seed", [0, 1])
def test_reliability_curve_matches_sklearn_calibration_curve(seed: int) -> None:
    from sklearn.calibration import calibration_curve

    rng = np.random.default_rng(seed)
    p = np.round(rng.beta(2, 2, 400), 2)  # rounding puts values on the bin edges
    labels = (rng.random(400) < p ** 1.5).astype(int)  # over-confident for class 1
    curve = reliability_curve(labels, np.stack([1 - p, p], axis=1))
    observed, predicted = calibration_curve(labels, p, n_bins=10, strategy="uniform")
    filled = curve.count > 0
    np.testing.assert_allclose(curve.observed[filled], observed, atol=1e-12)
    np.testing.assert_allclose(curve.predicted[filled], predicted, atol=1e-12)
    assert curve.count.sum() == 400 and np.isnan(curve.observed[~filled]).all()
    assert curve.ece == pytest.approx(_reference_ece(labels.astype(float), p), abs=1e-12)
    assert curve.ece == pytest.approx(np.sum(curve.count[filled] / 400 * np.abs(observed - predicted)), abs=1e-12)
    assert "class 1" in curve.quantity
    # more classes: the confidence against the accuracy
    logits = rng.normal(size=(300, 4)) * 2
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    labels = rng.integers(0, 4, 300)
    correct = (probs.argmax(axis=1) == labels).astype(int)
    curve = reliability_curve(labels, probs)
    observed, predicted = calibration_curve(correct, probs.max(axis=1), n_bins=10, strategy="uniform")
    np.testing.assert_allclose(curve.observed[curve.count > 0], observed, atol=1e-12)
    np.testing.assert_allclose(curve.predicted[curve.count > 0], predicted, atol=1e-12)
    assert curve.ece == pytest.approx(_reference_ece(correct.astype(float), probs.max(axis=1)), abs=1e-12)
    assert "confidence" in curve.quantity and curve.ece > 0.2  # random labels, confident predictions


def test_ece_small_when_calibrated_and_rejects_bad_input() -> None:
    rng = np.random.default_rng(0)
    p = rng.random(20000)
    labels = (rng.random(20000) < p).astype(int)
    assert expected_calibration_error(labels, p) < 0.02
    assert expected_calibration_error(labels, np.clip(2 * p - 0.5, 0, 1)) > 0.1
    with pytest.raises(ValueError, match="zero samples"):
        expected_calibration_error(np.zeros(0, int), np.zeros((0, 2)))
    with pytest.raises(ValueError, match=r"in \[0, 1\]"):
        expected_calibration_error([0, 1], [[0.5, 0.5], [-0.5, 1.5]])
    with pytest.raises(ValueError, match="n_bins"):
        expected_calibration_error([0, 1], [0.2, 0.8], n_bins=0)
    with pytest.raises(ValueError, match=r"\[N\] or \[N, K\]"):
        expected_calibration_error([0, 1, 1], [[0.5, 0.5], [0.5, 0.5]])
    out = classification_metrics([0, 1, 1], np.array([[2.0, -1.0], [0.5, 0.5], [0.1, 0.9]]), n_resamples=20)
    assert math.isnan(out["ece"]) and all(math.isnan(v) for v in out["ece_ci95"])  # not probabilities


def test_quadratic_weighted_kappa_matches_scikit_learn():
    from sklearn.metrics import cohen_kappa_score

    from medmtl.metrics.classification import quadratic_weighted_kappa

    rng = np.random.default_rng(5)
    labels = rng.integers(0, 5, 200)
    predicted = np.clip(labels + rng.integers(-1, 2, 200), 0, 4)
    expected = cohen_kappa_score(labels, predicted, weights="quadratic")
    assert quadratic_weighted_kappa(labels, predicted, 5) == pytest.approx(expected, abs=1e-12)
    assert quadratic_weighted_kappa(labels, labels) == pytest.approx(1.0)
    probs = np.eye(5)[predicted] * 0.9 + 0.02
    metrics = classification_metrics(labels, probs, n_resamples=200, ordinal=True)
    assert metrics["qwk"] == pytest.approx(expected, abs=1e-12)
    low, high = metrics["qwk_ci95"]
    assert low < expected < high and high - low < 0.2
    assert "qwk" not in classification_metrics(labels, probs, n_resamples=10)
