"""Regression metrics: mean absolute error, mean squared error, Spearman rank correlation."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from medmtl.metrics.bootstrap import as_numpy, batched_mean, bootstrap_ci, paired_samples, undefined_metrics

__all__ = ["mae", "mse", "regression_metrics", "spearman"]


def mae(target: Any, pred: Any) -> float:
    """Mean absolute error of ``pred`` ``[N]`` against ``target`` ``[N]``."""
    target, pred = paired_samples(target, pred, ("target", "pred"), "regression metrics", np.float64)
    return float(np.mean(np.abs(pred - target)))


def mse(target: Any, pred: Any) -> float:
    """Mean squared error of ``pred`` ``[N]`` against ``target`` ``[N]``."""
    target, pred = paired_samples(target, pred, ("target", "pred"), "regression metrics", np.float64)
    return float(np.mean((pred - target) ** 2))


def _spearman_rows(target: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """Spearman's rho along the last axis of ``[..., N]`` arrays (average ranks for ties);
    NaN where either row is constant."""
    from scipy.stats import rankdata  # scipy.stats is slow to import

    rt = rankdata(target, axis=-1)
    rp = rankdata(pred, axis=-1)
    rt = rt - rt.mean(axis=-1, keepdims=True)
    rp = rp - rp.mean(axis=-1, keepdims=True)
    num = (rt * rp).sum(axis=-1)
    den = np.sqrt((rt * rt).sum(axis=-1) * (rp * rp).sum(axis=-1))
    with np.errstate(divide="ignore", invalid="ignore"):
        rho = num / den
    return np.where(den > 0, np.clip(rho, -1.0, 1.0), np.nan)


def spearman(target: Any, pred: Any) -> float:
    """Spearman rank correlation of ``target`` ``[N]`` and ``pred`` ``[N]``, as
    ``scipy.stats.spearmanr``: NaN when either is constant (or N < 2), NaN inputs propagate."""
    target, pred = paired_samples(target, pred, ("target", "pred"), "regression metrics", np.float64)
    if target.shape[0] < 2 or np.isnan(target).any() or np.isnan(pred).any():
        return math.nan
    return float(_spearman_rows(target, pred))


def _mae_rows(target: np.ndarray, pred: np.ndarray) -> np.ndarray:
    return batched_mean(np.abs(pred - target))


def regression_metrics(target: Any, pred: Any, n_resamples: int = 1000, seed: int = 0) -> dict[str, Any]:
    """MAE and Spearman correlation with 95 % bootstrap intervals.

    Args:
        target: ``[N]`` true values.
        pred: ``[N]`` predictions.
        n_resamples: bootstrap resamples.
        seed: bootstrap seed.

    Returns:
        ``{"mae", "mae_ci95": [lo, hi], "spearman", "spearman_ci95": [lo, hi], "n"}``; values are
        NaN where undefined (N == 0, constant input for Spearman).
    """
    target = as_numpy(target).astype(np.float64).reshape(-1)
    pred = as_numpy(pred).astype(np.float64).reshape(-1)
    if pred.shape != target.shape:
        raise ValueError(f"target and pred must have the same length, got {target.shape[0]} and {pred.shape[0]}")
    n = int(target.shape[0])
    if n == 0:
        return undefined_metrics("mae", "spearman")
    rho = spearman(target, pred)
    rho_ci = (list(bootstrap_ci(_spearman_rows, target, pred, n_resamples=n_resamples, seed=seed, vectorized=True))
              if not math.isnan(rho) else [math.nan, math.nan])
    return {
        "mae": mae(target, pred),
        "mae_ci95": list(bootstrap_ci(_mae_rows, target, pred, n_resamples=n_resamples, seed=seed, vectorized=True)),
        "spearman": rho,
        "spearman_ci95": rho_ci,
        "n": n,
    }
