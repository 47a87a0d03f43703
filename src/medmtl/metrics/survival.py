"""Harrell's concordance index (Harrell et al., 1982) for right-censored survival data.

Conventions (the same as ``lifelines.utils.concordance_index(time, -risk, event)``):

* a HIGHER ``risk`` means a SHORTER expected survival;
* a pair ``(i, j)`` is comparable when subject ``i`` had an event and ``time[i] < time[j]``, or
  ``time[i] == time[j]`` and ``j`` was censored (censored at the event time counts as surviving
  longer); two events at the same time are not comparable;
* a comparable pair is concordant (1) when ``risk[i] > risk[j]``, tied (0.5) when equal.

The pair sums are weighted quadratic forms ``w^T C w``, so a bootstrap resample (a vector of
multiplicities ``w``) is evaluated with a matrix product instead of a Python loop; self-pairs are
never comparable, so this is exactly the C-index of the resampled data set.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from medmtl.metrics.bootstrap import as_numpy, bootstrap_indices, percentile_interval

__all__ = ["concordance_index", "survival_metrics"]

# Entries of one block of the N x N pair matrices.
_BLOCK_ELEMENTS = 2_000_000


def _check_survival(time: Any, event: Any, risk: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    time = as_numpy(time).astype(np.float64)
    event = as_numpy(event)
    risk = as_numpy(risk)
    if time.ndim != 1 or event.shape != time.shape or risk.shape != time.shape:
        raise ValueError(f"time, event and risk must all be [N], got shapes {time.shape}, {event.shape}, {risk.shape}")
    event = event.astype(np.float64)
    risk = risk.astype(np.float64)
    if not np.all(np.isin(event, (0.0, 1.0))):
        raise ValueError("event must hold 0 (censored) or 1 (event) only")
    if not (np.all(np.isfinite(time)) and np.all(np.isfinite(risk))):
        raise ValueError("time and risk must be finite (no NaN or infinity)")
    return time, event.astype(bool), risk


def _pair_sums(time: np.ndarray, event: np.ndarray, risk: np.ndarray,
               weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Weighted concordance numerator and number of comparable pairs.

    Args:
        time, event, risk: ``[N]`` arrays (event bool).
        weights: ``[R, N]`` multiplicity of each subject in each of ``R`` resamples.

    Returns:
        ``(concordant + 0.5 * tied, comparable)``, each ``[R]``.
    """
    n = time.shape[0]
    rows = np.flatnonzero(event)  # only subjects with an event start comparable pairs
    num = np.zeros(weights.shape[0])
    den = np.zeros(weights.shape[0])
    block = max(1, _BLOCK_ELEMENTS // max(n, 1))
    for start in range(0, rows.size, block):
        i = rows[start:start + block]
        ti = time[i, None]
        comparable = (time[None, :] > ti) | ((time[None, :] == ti) & ~event[None, :])
        ri = risk[i, None]
        score = np.where(risk[None, :] < ri, 1.0, np.where(risk[None, :] == ri, 0.5, 0.0))
        score = np.where(comparable, score, 0.0)
        wi = weights[:, i]  # [R, b]
        # sum_i w_i * sum_j M[i, j] w_j  ==  sum over the block of w_i * (M @ w^T)[i]
        num += np.einsum("rb,br->r", wi, score @ weights.T)
        den += np.einsum("rb,br->r", wi, comparable.astype(np.float64) @ weights.T)
    return num, den


def concordance_index(time: Any, event: Any, risk: Any) -> float:
    """Harrell's C-index.

    Args:
        time: ``[N]`` follow-up times.
        event: ``[N]`` 1 for an observed event, 0 for censoring.
        risk: ``[N]`` predicted risk; higher = shorter survival.

    Returns:
        The fraction of comparable pairs ordered correctly (ties in risk count 0.5).

    Raises:
        ValueError: no comparable pair (e.g. no events), or bad inputs.
    """
    time, event, risk = _check_survival(time, event, risk)
    num, den = _pair_sums(time, event, risk, np.ones((1, time.shape[0])))
    if den[0] == 0:
        raise ValueError("C-index is undefined: there is no comparable pair (needs an event before another time)")
    return float(num[0] / den[0])


def survival_metrics(time: Any, event: Any, risk: Any, n_resamples: int = 1000, seed: int = 0,
                     alpha: float = 0.05) -> dict[str, Any]:
    """C-index with a percentile bootstrap interval.

    The resamples are those of :func:`medmtl.metrics.bootstrap.bootstrap_ci` with the same seed
    (resamples without a comparable pair are skipped), computed with a vectorised weighted form.

    Args:
        time: ``[N]`` follow-up times. event: ``[N]`` 0/1. risk: ``[N]`` higher = shorter survival.
        n_resamples: bootstrap resamples. seed: bootstrap seed. alpha: 0.05 for 95 %.

    Returns:
        ``{"c_index", "c_index_ci95": [lo, hi], "n", "events"}``; the C-index and its interval
        are NaN when there is no comparable pair.
    """
    time, event, risk = _check_survival(time, event, risk)
    n = int(time.shape[0])
    events = int(event.sum())
    try:
        c_index = concordance_index(time, event, risk)
    except ValueError:
        return {"c_index": math.nan, "c_index_ci95": [math.nan, math.nan], "n": n, "events": events}
    indices = bootstrap_indices(n, n_resamples, seed)
    values = np.empty(n_resamples)
    chunk = max(1, _BLOCK_ELEMENTS // max(n, 1))
    for start in range(0, n_resamples, chunk):
        idx = indices[start:start + chunk]
        flat = (np.arange(idx.shape[0])[:, None] * n + idx).ravel()
        weights = np.bincount(flat, minlength=idx.shape[0] * n).reshape(idx.shape[0], n).astype(np.float64)
        num, den = _pair_sums(time, event, risk, weights)
        with np.errstate(divide="ignore", invalid="ignore"):
            values[start:start + chunk] = np.where(den > 0, num / den, np.nan)
    return {"c_index": c_index, "c_index_ci95": list(percentile_interval(values, n_resamples, alpha)),
            "n": n, "events": events}
