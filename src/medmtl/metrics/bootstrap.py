"""Percentile bootstrap confidence intervals (Efron & Tibshirani, 1993).

Samples (rows) are resampled with replacement, jointly across all arrays, so that paired
quantities (labels and scores, times and risks) stay paired. Resamples on which the metric is
undefined (it raises ``ValueError`` or returns NaN, e.g. a resample holding one class only for
the AUC) are skipped; when fewer than half of the resamples are valid the interval is
``(nan, nan)``.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

# Upper bound on the number of elements one vectorised chunk of resamples may hold.
_CHUNK_ELEMENTS = 4_000_000


def as_numpy(values: Any) -> np.ndarray:
    """A NumPy array from a NumPy array, a list or a torch tensor (detached, moved to the CPU)."""
    if hasattr(values, "detach") and hasattr(values, "cpu"):
        values = values.detach().cpu()
        if str(values.dtype) == "torch.bfloat16":
            values = values.float()
        return np.asarray(values.numpy())
    return np.asarray(values)


def undefined_metrics(*names: str) -> dict[str, Any]:
    """``{name: NaN, name_ci95: [NaN, NaN], …, "n": 0}``: the result of a metric summary on zero samples."""
    result: dict[str, Any] = {}
    for name in names:
        result[name], result[f"{name}_ci95"] = math.nan, [math.nan, math.nan]
    return {**result, "n": 0}


def paired_samples(first: Any, second: Any, names: tuple[str, str], metric: str,
                   dtype: Any = None) -> tuple[np.ndarray, np.ndarray]:
    """Two ``[N]`` arrays of the same length ``N > 0`` (as ``dtype`` when given); a ``ValueError``
    naming them (``names``) and the ``metric`` otherwise."""
    first, second = as_numpy(first), as_numpy(second)
    if dtype is not None:
        first, second = first.astype(dtype), second.astype(dtype)
    if first.ndim != 1 or second.shape != first.shape:
        raise ValueError(f"{names[0]} and {names[1]} must both be [N], got {first.shape} and {second.shape}")
    if first.shape[0] == 0:
        raise ValueError(f"{metric} is undefined for zero samples")
    return first, second


def bootstrap_indices(n: int, n_resamples: int, seed: int = 0) -> np.ndarray:
    """Row indices of the bootstrap resamples, ``[n_resamples, n]`` int64.

    The same ``(n, n_resamples, seed)`` always gives the same indices, so that metrics computed
    through different code paths (generic or vectorised) see identical resamples.
    """
    if n < 0:
        raise ValueError(f"n must be non-negative, got {n}")
    if n_resamples < 0:
        raise ValueError(f"n_resamples must be non-negative, got {n_resamples}")
    rng = np.random.default_rng(seed)
    return rng.integers(0, n, size=(n_resamples, n), dtype=np.int64)


def percentile_interval(values: np.ndarray, n_resamples: int, alpha: float = 0.05) -> tuple[float, float]:
    """The ``(alpha/2, 1 - alpha/2)`` percentiles of the finite entries of ``values`` ``[R]``.

    ``(nan, nan)`` when fewer than half of the ``n_resamples`` resamples gave a finite value.
    """
    values = np.asarray(values, dtype=np.float64).ravel()
    valid = values[np.isfinite(values)]
    if valid.size == 0 or 2 * valid.size < n_resamples:
        return (math.nan, math.nan)
    lo, hi = np.percentile(valid, [100.0 * alpha / 2.0, 100.0 * (1.0 - alpha / 2.0)])
    return (float(lo), float(hi))


def _check_arrays(arrays: tuple[Any, ...]) -> list[np.ndarray]:
    if not arrays:
        raise ValueError("bootstrap_ci needs at least one array to resample")
    converted = [as_numpy(a) for a in arrays]
    for a in converted:
        if a.ndim == 0:
            raise ValueError("bootstrap_ci arrays must have a sample axis (got a scalar)")
    lengths = {a.shape[0] for a in converted}
    if len(lengths) != 1:
        raise ValueError(f"bootstrap_ci arrays must have the same number of rows, got {sorted(lengths)}")
    return converted


def _safe_value(metric: Callable[..., Any], arrays: list[np.ndarray]) -> float:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            value = float(metric(*arrays))
    except (ValueError, ZeroDivisionError, FloatingPointError):
        return math.nan
    return value


def bootstrap_ci(metric: Callable[..., Any], *arrays: Any, n_resamples: int = 1000, alpha: float = 0.05,
                 seed: int = 0, vectorized: bool = False) -> tuple[float, float]:
    """Percentile bootstrap confidence interval of ``metric(*arrays)``.

    Args:
        metric: called as ``metric(*resampled_arrays)`` and returning a scalar. With
            ``vectorized=True`` it is instead called on arrays with a leading resample axis,
            ``[R, N, ...]``, and must return ``[R]`` values (NaN where undefined).
        *arrays: arrays (NumPy or torch) with the same first dimension ``N``; rows are resampled
            jointly.
        n_resamples: number of bootstrap resamples ``R``; 0 skips the bootstrap and gives
            ``(nan, nan)`` (used for cheap per-epoch validation).
        alpha: ``1 - alpha`` is the coverage (0.05 gives a 95 % interval).
        seed: seed of the NumPy generator; the same seed gives the same interval.
        vectorized: see ``metric``.

    Returns:
        ``(lower, upper)`` as Python floats; ``(nan, nan)`` when ``N == 0`` or fewer than half of
        the resamples gave a defined (finite, non-raising) metric.
    """
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    data = _check_arrays(arrays)
    n = data[0].shape[0]
    indices = bootstrap_indices(n, n_resamples, seed)
    if n == 0:
        return (math.nan, math.nan)
    values = np.full(n_resamples, np.nan)
    if vectorized:
        per_resample = max(1, n * max(int(np.prod(a.shape[1:], dtype=np.int64)) for a in data))
        chunk = max(1, _CHUNK_ELEMENTS // per_resample)
        for start in range(0, n_resamples, chunk):
            idx = indices[start:start + chunk]
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                out = np.asarray(metric(*(a[idx] for a in data)), dtype=np.float64).reshape(-1)
            if out.shape[0] != idx.shape[0]:
                raise ValueError(f"vectorized metric returned {out.shape[0]} values for {idx.shape[0]} resamples")
            values[start:start + chunk] = out
    else:
        for r in range(n_resamples):
            values[r] = _safe_value(metric, [a[indices[r]] for a in data])
    return percentile_interval(values, n_resamples, alpha)


def batched_mean(values: np.ndarray) -> np.ndarray:
    """Row means of ``[R, N]`` resampled values (a ``vectorized=True`` metric)."""
    return np.mean(values, axis=1)
