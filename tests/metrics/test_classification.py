"""Classification metrics against scikit-learn on the same numbers."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from sklearn.metrics import accuracy_score, balanced_accuracy_score, roc_auc_score, roc_curve

from medmtl.metrics import accuracy, balanced_accuracy, classification_metrics, roc_auc, roc_curve_points, roc_curves


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
                        "balanced_accuracy_ci95", "n"}
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
