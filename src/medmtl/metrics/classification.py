"""Classification metrics: ROC AUC (binary and one-vs-rest multiclass), accuracy, balanced
accuracy, the expected calibration error, and a summary with bootstrap confidence intervals; the
confusion matrix, per-class metrics and the reliability curve for reports.

The AUC is computed from ranks (the Mann-Whitney U statistic, ties in score count one half),
which equals the area under the trapezoidal ROC curve that scikit-learn integrates, and is
vectorised over bootstrap resamples.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np

from medmtl.metrics.bootstrap import as_numpy, batched_mean, bootstrap_ci, paired_samples

__all__ = ["ReliabilityCurve", "accuracy", "balanced_accuracy", "classification_metrics", "confusion_matrix",
           "expected_calibration_error", "per_class_metrics", "reliability_curve", "roc_auc", "roc_curve_points"]


def _integer_labels(labels: np.ndarray, name: str = "labels") -> np.ndarray:
    """``labels`` ``[N]`` as int64, refusing non-integral values."""
    if labels.ndim != 1:
        raise ValueError(f"{name} must be 1-D [N], got shape {labels.shape}")
    if labels.dtype.kind in "biu":
        return labels.astype(np.int64)
    if labels.dtype.kind == "f":
        if not np.all(np.isfinite(labels)) or not np.all(labels == np.round(labels)):
            raise ValueError(f"{name} must hold integer class indices")
        return labels.astype(np.int64)
    raise ValueError(f"{name} must hold integer class indices, got dtype {labels.dtype}")


def _binary_auc_rows(positive: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Rank-based AUC along the last axis.

    Args:
        positive: ``[..., N]`` bool, True for the positive class.
        scores: ``[..., N]`` float, higher = more likely positive.

    Returns:
        ``[...]`` AUC values; NaN where a row holds only one class.
    """
    from scipy.stats import rankdata  # scipy.stats is slow to import

    ranks = rankdata(scores, axis=-1)
    n = positive.shape[-1]
    n_pos = positive.sum(axis=-1).astype(np.float64)
    n_neg = n - n_pos
    rank_sum = np.where(positive, ranks, 0.0).sum(axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        auc = (rank_sum - n_pos * (n_pos + 1.0) / 2.0) / (n_pos * n_neg)
    return np.where((n_pos > 0) & (n_neg > 0), auc, np.nan)


def _ovr_auc_rows(labels: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """One-vs-rest macro AUC along the sample axis.

    Args:
        labels: ``[..., N]`` int class indices in ``[0, K)``.
        probs: ``[..., N, K]`` class scores.

    Returns:
        ``[...]`` mean of the per-class AUCs over the classes that are defined (present and not
        the only class); NaN where fewer than two classes are present.
    """
    k = probs.shape[-1]
    per_class = np.stack([_binary_auc_rows(labels == c, probs[..., c]) for c in range(k)], axis=-1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(per_class, axis=-1)


def _auc_batched(labels: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """AUC per resample: ``labels`` ``[R, N]`` (bool positive for 1-D scores, else int) and
    ``scores`` ``[R, N]`` or ``[R, N, K]`` → ``[R]`` (NaN where undefined)."""
    if scores.ndim == labels.ndim:
        return _binary_auc_rows(labels.astype(bool), scores)
    if scores.shape[-1] == 2:
        return _binary_auc_rows(labels == 1, scores[..., 1])
    return _ovr_auc_rows(labels, scores)


def roc_auc(labels: Any, scores: Any) -> float:
    """Area under the ROC curve.

    Args:
        labels: ``[N]`` class labels. With 1-D ``scores`` they must take exactly two values and
            the larger one is the positive class (as scikit-learn); with 2-D ``scores`` they are
            class indices in ``[0, K)``.
        scores: ``[N]`` positive-class scores, or ``[N, K]`` class probabilities. ``K == 2`` uses
            column 1; ``K > 2`` gives the one-vs-rest macro average (scikit-learn's
            ``roc_auc_score(multi_class="ovr", average="macro")``). When some of the K classes
            are absent from ``labels`` the average runs over the present classes (scikit-learn
            raises instead); rows need not sum to one.

    Returns:
        The AUC as a Python float.

    Raises:
        ValueError: only one class is present, shapes disagree, scores are not finite or labels
            are out of range.
    """
    labels = as_numpy(labels)
    scores = as_numpy(scores).astype(np.float64)
    if labels.ndim != 1:
        raise ValueError(f"labels must be 1-D [N], got shape {labels.shape}")
    if scores.ndim not in (1, 2) or scores.shape[0] != labels.shape[0]:
        raise ValueError(f"scores must be [N] or [N, K] with N = {labels.shape[0]}, got shape {scores.shape}")
    if not np.all(np.isfinite(scores)):
        raise ValueError("scores contain NaN or infinite values")
    classes = np.unique(labels)
    if classes.size < 2:
        raise ValueError(f"ROC AUC is undefined when only one class is present (classes: {classes.tolist()})")
    if scores.ndim == 1:
        if classes.size > 2:
            raise ValueError(f"1-D scores need binary labels, got classes {classes.tolist()}; pass [N, K] scores")
        return float(_binary_auc_rows(labels == classes[-1], scores))
    int_labels = _integer_labels(labels)
    k = scores.shape[1]
    if k < 2:
        raise ValueError(f"scores [N, K] need K >= 2, got K = {k}")
    if int_labels.min() < 0 or int_labels.max() >= k:
        raise ValueError(f"labels must be class indices in [0, {k}), got classes {classes.tolist()}")
    return float(_auc_batched(int_labels, scores))


def roc_curve_points(labels: Any, scores: Any) -> tuple[np.ndarray, np.ndarray]:
    """ROC curve of a binary problem for plotting.

    Args:
        labels: ``[N]`` binary labels (the larger value is the positive class).
        scores: ``[N]`` positive-class scores.

    Returns:
        ``(fpr, tpr)``, two float arrays ``[M]`` from ``sklearn.metrics.roc_curve``.
    """
    from sklearn.metrics import roc_curve

    labels = as_numpy(labels)
    scores = as_numpy(scores).astype(np.float64)
    if labels.ndim != 1 or scores.shape != labels.shape:
        raise ValueError(f"labels and scores must both be [N], got {labels.shape} and {scores.shape}")
    classes = np.unique(labels)
    if classes.size != 2:
        raise ValueError(f"roc_curve_points needs exactly two classes, got {classes.tolist()}")
    fpr, tpr, _ = roc_curve(labels == classes[-1], scores)
    return fpr.astype(np.float64), tpr.astype(np.float64)


def roc_curves(labels: Any, probs: Any) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """ROC curves of class probabilities: class 1 when there are two classes, else one-vs-rest.

    Args:
        labels: ``[N]`` integer class labels.
        probs: ``[N, K]`` class probabilities.

    Returns:
        ``{class: (fpr, tpr)}``; a class that is absent (or the only one present) is left out.
    """
    labels = as_numpy(labels)
    probs = as_numpy(probs)
    classes = [1] if probs.shape[1] == 2 else list(range(probs.shape[1]))
    curves = {}
    for cls in classes:
        positive = (labels == cls).astype(int)
        if positive.min() != positive.max():
            curves[cls] = roc_curve_points(positive, probs[:, cls])
    return curves


def accuracy(labels: Any, predicted: Any) -> float:
    """Fraction of ``predicted`` ``[N]`` labels equal to ``labels`` ``[N]``."""
    labels, predicted = paired_samples(labels, predicted, ("labels", "predicted"), "accuracy")
    return float(np.mean(labels == predicted))


def balanced_accuracy(labels: Any, predicted: Any) -> float:
    """Mean per-class recall over the classes present in ``labels`` ``[N]`` (scikit-learn's
    ``balanced_accuracy_score`` with ``adjusted=False``); ``predicted`` is ``[N]``."""
    labels, predicted = paired_samples(labels, predicted, ("labels", "predicted"), "balanced accuracy")
    recalls = [np.mean(predicted[labels == c] == c) for c in np.unique(labels)]
    return float(np.mean(recalls))


def _balanced_accuracy_batched(labels: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    """:func:`balanced_accuracy` of each row of ``labels`` / ``predicted`` ``[R, N]`` → ``[R]`` (the mean
    recall over the classes present in that row)."""
    classes = np.unique(labels)
    truth = labels[..., None] == classes  # [R, N, C]
    hits = (truth & (predicted[..., None] == classes)).sum(axis=-2)
    counts = truth.sum(axis=-2)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.nanmean(np.where(counts > 0, hits / counts, np.nan), axis=-1)


def quadratic_weighted_kappa(labels: Any, predicted: Any, num_classes: int | None = None) -> float:
    """Cohen's kappa with quadratic weights ``(i − j)² / (K − 1)²`` of ``predicted`` ``[N]`` against
    ``labels`` ``[N]`` (int classes in ``[0, K)``; ``K`` = ``num_classes`` or 1 + the largest class seen):
    the agreement of ordered grades beyond chance, 1 = perfect, 0 = chance (scikit-learn's
    ``cohen_kappa_score(weights="quadratic")``); NaN when every sample has one and the same class."""
    labels, predicted = paired_samples(labels, predicted, ("labels", "predicted"), "quadratic-weighted kappa")
    labels, predicted = _integer_labels(labels), _integer_labels(predicted, "predicted")
    k = num_classes or int(max(labels.max(initial=0), predicted.max(initial=0))) + 1
    return float(_qwk_batched(labels[None], predicted[None], k)[0])


def _qwk_batched(labels: np.ndarray, predicted: np.ndarray, k: int) -> np.ndarray:
    """:func:`quadratic_weighted_kappa` of each row of ``labels`` / ``predicted`` ``[R, N]`` → ``[R]``."""
    classes = np.arange(k)
    truth = (labels[..., None] == classes).astype(np.float64)  # [R, N, K]
    guess = (predicted[..., None] == classes).astype(np.float64)
    observed = np.einsum("rni,rnj->rij", truth, guess)  # [R, K, K]
    n = labels.shape[-1]
    expected = np.einsum("ri,rj->rij", truth.sum(axis=1), guess.sum(axis=1)) / max(n, 1)
    weights = (classes[:, None] - classes[None, :]) ** 2 / max(k - 1, 1) ** 2
    with np.errstate(invalid="ignore", divide="ignore"):
        return 1.0 - (weights * observed).sum(axis=(1, 2)) / (weights * expected).sum(axis=(1, 2))


def _predicted_classes(labels: Any, probs: Any, metric: str) -> tuple[np.ndarray, np.ndarray, int]:
    """``(labels, predicted, K)``: int ``[N]`` labels, the arg-max of ``probs`` ``[N, K]`` (``[N]``
    positive-class probabilities: class 1 when ``>= 0.5``, K = 2); a ``ValueError`` on bad input."""
    labels = _integer_labels(as_numpy(labels))
    probs = as_numpy(probs).astype(np.float64)
    if probs.ndim not in (1, 2) or probs.shape[0] != labels.shape[0]:
        raise ValueError(f"probs must be [N] or [N, K] with N = {labels.shape[0]}, got shape {probs.shape}")
    if labels.shape[0] == 0:
        raise ValueError(f"{metric} is undefined for zero samples")
    k = 2 if probs.ndim == 1 else probs.shape[1]
    if k < 2:
        raise ValueError(f"probs [N, K] need K >= 2, got K = {k}")
    if labels.min() < 0 or labels.max() >= k:
        raise ValueError(f"labels must be class indices in [0, {k}), got range [{labels.min()}, {labels.max()}]")
    predicted = (probs >= 0.5).astype(np.int64) if probs.ndim == 1 else probs.argmax(axis=1)
    return labels, predicted, k


def confusion_matrix(labels: Any, probs: Any) -> np.ndarray:
    """Counts ``[K, K]`` int64 of (true class = row, predicted class = column) at the operating
    point: the arg-max of ``probs`` ``[N, K]`` (binary: class 1 when its probability exceeds
    the other's), or ``probs >= 0.5`` for ``[N]`` positive-class probabilities.
    ``labels`` ``[N]``: class indices in ``[0, K)``. Equals ``sklearn.metrics.confusion_matrix(
    labels, predicted, labels=range(K))``."""
    labels, predicted, k = _predicted_classes(labels, probs, "the confusion matrix")
    return np.bincount(labels * k + predicted, minlength=k * k).reshape(k, k).astype(np.int64)


def per_class_metrics(labels: Any, probs: Any) -> dict[str, np.ndarray]:
    """Per class ``c`` of ``probs`` ``[N, K]``: precision, recall and F1 of the arg-max prediction
    (as ``sklearn.metrics.precision_recall_fscore_support`` with ``zero_division=0``: 0 where a
    class is never predicted / never true), the one-vs-rest AUC of ``probs[:, c]`` (NaN where the
    class is absent or the only one present) and the support (number of true samples).

    Returns ``{"class", "precision", "recall", "f1", "auc", "support"}``, each ``[K]``."""
    labels, _, k = _predicted_classes(labels, probs, "per-class metrics")
    probs = as_numpy(probs).astype(np.float64)
    scores = np.stack([1 - probs, probs], axis=1) if probs.ndim == 1 else probs
    counts = confusion_matrix(labels, probs).astype(np.float64)
    hits = np.diag(counts)
    support = counts.sum(axis=1)
    predicted_count = counts.sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(predicted_count > 0, hits / predicted_count, 0.0)
        recall = np.where(support > 0, hits / support, 0.0)
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
    auc = np.array([_binary_auc_rows(labels == c, scores[:, c]) for c in range(k)], dtype=np.float64)
    return {"class": np.arange(k), "precision": precision, "recall": recall, "f1": f1, "auc": auc,
            "support": support.astype(np.int64)}


def _calibration_inputs(labels: Any, probs: Any, n_bins: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, str]:
    """``(outcome, predicted, bin, quantity)``: per sample ``[N]`` the observed outcome (0/1), the
    predicted probability of it and its bin in ``[0, n_bins)``; ``quantity`` says what is binned.

    Binary (``probs`` ``[N]`` or ``[N, 2]``): the outcome is "the label is class 1" and the
    probability that of class 1. More classes: the outcome is "the arg-max class is right" and the
    probability its (the confidence). The bins are those of ``sklearn.calibration.calibration_curve(
    strategy="uniform")``: ``[0, 1/B], (1/B, 2/B], …, ((B-1)/B, 1]``.
    """
    if int(n_bins) != n_bins or n_bins < 1:
        raise ValueError(f"n_bins must be a positive integer, got {n_bins}")
    labels, predicted, k = _predicted_classes(labels, probs, "the expected calibration error")
    probs = as_numpy(probs).astype(np.float64)
    if not np.all(np.isfinite(probs)) or probs.min() < -1e-6 or probs.max() > 1 + 1e-6:
        raise ValueError("probs must be probabilities in [0, 1] (finite)")
    probs = np.clip(probs, 0.0, 1.0)
    if k == 2:
        outcome = labels == 1
        predicted_probability = probs if probs.ndim == 1 else probs[:, 1]
        quantity = "predicted probability of class 1"
    else:
        outcome = predicted == labels
        predicted_probability = probs.max(axis=1)
        quantity = "confidence (predicted probability of the arg-max class)"
    edges = np.linspace(0.0, 1.0, int(n_bins) + 1)
    bins = np.searchsorted(edges[1:-1], predicted_probability)
    return outcome.astype(np.float64), predicted_probability, bins.astype(np.int64), quantity


def _ece_rows(outcome: np.ndarray, predicted: np.ndarray, bins: np.ndarray, n_bins: int) -> np.ndarray:
    """ECE along the last axis of ``[..., N]`` arrays: ``sum_b |sum_{i in b} (y_i - p_i)| / N``
    (= ``sum_b n_b / N * |observed_b - mean predicted_b|``)."""
    gap = outcome - predicted
    total = np.zeros(gap.shape[:-1])
    for b in range(n_bins):
        total += np.abs(np.where(bins == b, gap, 0.0).sum(axis=-1))
    return total / gap.shape[-1]


def expected_calibration_error(labels: Any, probs: Any, n_bins: int = 10) -> float:
    """Expected calibration error (Naeini et al., 2015; Guo et al., 2017) over ``n_bins`` equal-width
    bins of the predicted probability: ``sum_b n_b / N * |observed_b - mean predicted_b|``.

    Args:
        labels: ``[N]`` class indices.
        probs: ``[N, K]`` class probabilities, or ``[N]`` positive-class probabilities.
        n_bins: number of bins of ``[0, 1]``.

    Binary problems bin the predicted probability of class 1 against the fraction of class 1 (the
    reliability curve of ``sklearn.calibration.calibration_curve``); with more classes the
    confidence (the arg-max class's probability) against the accuracy (the "top-label" ECE).

    Raises:
        ValueError: zero samples, shapes disagree, probabilities outside [0, 1] or bad labels.
    """
    outcome, predicted, bins, _ = _calibration_inputs(labels, probs, n_bins)
    return float(_ece_rows(outcome, predicted, bins, int(n_bins)))


@dataclass(frozen=True)
class ReliabilityCurve:
    """The bins of a reliability diagram (see :func:`reliability_curve`); arrays ``[n_bins]``."""

    lower: np.ndarray
    upper: np.ndarray
    count: np.ndarray
    #: mean predicted probability in the bin (NaN when empty)
    predicted: np.ndarray
    #: fraction of class 1 (binary) or accuracy (more classes) in the bin (NaN when empty)
    observed: np.ndarray
    ece: float
    #: what is binned: the probability of class 1, or the confidence
    quantity: str


def reliability_curve(labels: Any, probs: Any, n_bins: int = 10) -> ReliabilityCurve:
    """Per equal-width bin: the number of samples, their mean predicted probability and the observed
    frequency, with the ECE; inputs and conventions as :func:`expected_calibration_error`. The
    non-empty bins' ``(observed, predicted)`` equal ``calibration_curve(..., strategy="uniform")``."""
    outcome, predicted, bins, quantity = _calibration_inputs(labels, probs, n_bins)
    n_bins = int(n_bins)
    count = np.bincount(bins, minlength=n_bins)
    with np.errstate(divide="ignore", invalid="ignore"):
        mean_predicted = np.bincount(bins, weights=predicted, minlength=n_bins) / count
        observed = np.bincount(bins, weights=outcome, minlength=n_bins) / count
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    return ReliabilityCurve(lower=edges[:-1], upper=edges[1:], count=count.astype(np.int64),
                            predicted=np.where(count > 0, mean_predicted, np.nan),
                            observed=np.where(count > 0, observed, np.nan),
                            ece=float(_ece_rows(outcome, predicted, bins, n_bins)), quantity=quantity)


#: bins of the ECE that :func:`classification_metrics` reports
_ECE_BINS = 10


def _nan_ci() -> list[float]:
    return [math.nan, math.nan]


def classification_metrics(labels: Any, probs: Any, n_resamples: int = 1000, seed: int = 0,
                           ordinal: bool = False) -> dict[str, Any]:
    """AUC, accuracy, balanced accuracy and the expected calibration error (10 bins, see
    :func:`expected_calibration_error`) with 95 % bootstrap intervals; with ``ordinal`` (ordered
    classes such as grades) also the quadratic-weighted kappa ``qwk`` (:func:`quadratic_weighted_kappa`).

    Args:
        labels: ``[N]`` int class indices.
        probs: ``[N, K]`` class probabilities (the prediction is the arg-max), or ``[N]``
            positive-class probabilities of a binary problem (prediction ``probs >= 0.5``).
        n_resamples: bootstrap resamples for the intervals.
        seed: bootstrap seed.

    Returns:
        ``{"auc", "auc_ci95": [lo, hi], "accuracy", "accuracy_ci95", "balanced_accuracy",
        "balanced_accuracy_ci95", "ece", "ece_ci95", "n"}``;
        ``auc`` (and its interval) is NaN when only one class is present; everything but ``n``
        is NaN when ``N == 0``; ``ece`` is NaN when ``probs`` are not probabilities in [0, 1].
    """
    labels = _integer_labels(as_numpy(labels))
    probs = as_numpy(probs).astype(np.float64)
    if probs.ndim not in (1, 2) or probs.shape[0] != labels.shape[0]:
        raise ValueError(f"probs must be [N] or [N, K] with N = {labels.shape[0]}, got shape {probs.shape}")
    n = int(labels.shape[0])
    if n == 0:
        return {"auc": math.nan, "auc_ci95": _nan_ci(), "accuracy": math.nan, "accuracy_ci95": _nan_ci(),
                "balanced_accuracy": math.nan, "balanced_accuracy_ci95": _nan_ci(), "ece": math.nan,
                "ece_ci95": _nan_ci(), "n": 0}
    predicted = (probs >= 0.5).astype(np.int64) if probs.ndim == 1 else probs.argmax(axis=1)
    try:
        auc = roc_auc(labels, probs)
    except ValueError:
        auc = math.nan
    if math.isnan(auc):
        auc_ci = _nan_ci()
    else:
        auc_labels = labels == 1 if probs.ndim == 1 else labels
        auc_ci = list(bootstrap_ci(_auc_batched, auc_labels, probs, n_resamples=n_resamples, seed=seed,
                                   vectorized=True))
    correct = (predicted == labels).astype(np.float64)
    acc_ci = list(bootstrap_ci(batched_mean, correct, n_resamples=n_resamples, seed=seed, vectorized=True))
    balanced_ci = list(bootstrap_ci(_balanced_accuracy_batched, labels, predicted, n_resamples=n_resamples,
                                    seed=seed, vectorized=True))
    try:
        outcome, predicted_probability, bins, _ = _calibration_inputs(labels, probs, _ECE_BINS)
    except ValueError:  # not probabilities (or labels out of range): no calibration to speak of
        ece, ece_ci = math.nan, _nan_ci()
    else:
        ece = float(_ece_rows(outcome, predicted_probability, bins, _ECE_BINS))
        ece_ci = list(bootstrap_ci(partial(_ece_rows, n_bins=_ECE_BINS), outcome, predicted_probability, bins,
                                   n_resamples=n_resamples, seed=seed, vectorized=True))
    result = {"auc": auc, "auc_ci95": auc_ci, "accuracy": float(correct.mean()), "accuracy_ci95": acc_ci,
              "balanced_accuracy": balanced_accuracy(labels, predicted), "balanced_accuracy_ci95": balanced_ci,
              "ece": ece, "ece_ci95": ece_ci, "n": n}
    if ordinal:
        k = 2 if probs.ndim == 1 else probs.shape[1]
        result["qwk"] = float(_qwk_batched(labels[None], predicted[None], k)[0])
        result["qwk_ci95"] = list(bootstrap_ci(partial(_qwk_batched, k=k), labels, predicted, n_resamples=n_resamples,
                                               seed=seed, vectorized=True))
    return result
