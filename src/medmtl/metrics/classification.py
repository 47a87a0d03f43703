"""Classification metrics: ROC AUC (binary and one-vs-rest multiclass), accuracy, balanced
accuracy, and a summary with bootstrap confidence intervals.

The AUC is computed from ranks (the Mann-Whitney U statistic, ties in score count one half),
which equals the area under the trapezoidal ROC curve that scikit-learn integrates, and is
vectorised over bootstrap resamples.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np

from medmtl.metrics.bootstrap import as_numpy, batched_mean, bootstrap_ci, paired_samples

__all__ = ["accuracy", "balanced_accuracy", "classification_metrics", "roc_auc", "roc_curve_points"]


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


def _nan_ci() -> list[float]:
    return [math.nan, math.nan]


def classification_metrics(labels: Any, probs: Any, n_resamples: int = 1000, seed: int = 0) -> dict[str, Any]:
    """AUC, accuracy and balanced accuracy with 95 % bootstrap intervals.

    Args:
        labels: ``[N]`` int class indices.
        probs: ``[N, K]`` class probabilities (the prediction is the arg-max), or ``[N]``
            positive-class probabilities of a binary problem (prediction ``probs >= 0.5``).
        n_resamples: bootstrap resamples for the intervals.
        seed: bootstrap seed.

    Returns:
        ``{"auc", "auc_ci95": [lo, hi], "accuracy", "accuracy_ci95", "balanced_accuracy",
        "balanced_accuracy_ci95", "n"}``;
        ``auc`` (and its interval) is NaN when only one class is present; everything but ``n``
        is NaN when ``N == 0``.
    """
    labels = _integer_labels(as_numpy(labels))
    probs = as_numpy(probs).astype(np.float64)
    if probs.ndim not in (1, 2) or probs.shape[0] != labels.shape[0]:
        raise ValueError(f"probs must be [N] or [N, K] with N = {labels.shape[0]}, got shape {probs.shape}")
    n = int(labels.shape[0])
    if n == 0:
        return {"auc": math.nan, "auc_ci95": _nan_ci(), "accuracy": math.nan, "accuracy_ci95": _nan_ci(),
                "balanced_accuracy": math.nan, "balanced_accuracy_ci95": _nan_ci(), "n": 0}
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
    return {"auc": auc, "auc_ci95": auc_ci, "accuracy": float(correct.mean()), "accuracy_ci95": acc_ci,
            "balanced_accuracy": balanced_accuracy(labels, predicted), "balanced_accuracy_ci95": balanced_ci, "n": n}
