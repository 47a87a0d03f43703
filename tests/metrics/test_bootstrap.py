"""Percentile bootstrap: coverage of the point estimate, width, determinism, degenerate resamples."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest
import torch

from medmtl.metrics import bootstrap_ci, roc_auc
from medmtl.metrics.bootstrap import batched_mean, bootstrap_indices, percentile_interval


def _binary_data(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n)
    scores = rng.normal(size=n) + labels
    return labels, scores


def test_interval_contains_point_estimate() -> None:
    labels, scores = _binary_data(200)
    lo, hi = bootstrap_ci(roc_auc, labels, scores, n_resamples=500)
    assert lo < roc_auc(labels, scores) < hi
    values = np.random.default_rng(1).normal(3.0, 1.0, 300)
    lo, hi = bootstrap_ci(np.mean, values, n_resamples=500)
    assert lo < values.mean() < hi


def test_interval_narrower_with_more_samples() -> None:
    small = bootstrap_ci(roc_auc, *_binary_data(50), n_resamples=400)
    large = bootstrap_ci(roc_auc, *_binary_data(1000), n_resamples=400)
    assert (large[1] - large[0]) < (small[1] - small[0])


def test_deterministic_with_seed() -> None:
    labels, scores = _binary_data(100)
    a = bootstrap_ci(roc_auc, labels, scores, n_resamples=200, seed=3)
    b = bootstrap_ci(roc_auc, labels, scores, n_resamples=200, seed=3)
    c = bootstrap_ci(roc_auc, labels, scores, n_resamples=200, seed=4)
    assert a == b
    assert a != c
    assert all(isinstance(v, float) for v in a)


def test_vectorized_path_matches_loop() -> None:
    values = np.random.default_rng(2).exponential(size=150)
    loop = bootstrap_ci(np.mean, values, n_resamples=300, seed=5)
    vec = bootstrap_ci(batched_mean, values, n_resamples=300, seed=5, vectorized=True)
    assert loop == pytest.approx(vec, rel=1e-12)


def test_degenerate_resamples_are_skipped() -> None:
    # One positive among 20: about 36 % of the resamples hold no positive and raise ValueError.
    labels = np.zeros(20, dtype=int)
    labels[0] = 1
    scores = np.linspace(0.0, 1.0, 20)
    lo, hi = bootstrap_ci(roc_auc, labels, scores, n_resamples=300)
    assert math.isfinite(lo) and math.isfinite(hi) and lo <= hi

    calls = []

    def counting(y, s):
        calls.append(1)
        return roc_auc(y, s)

    bootstrap_ci(counting, labels, scores, n_resamples=300)
    assert len(calls) == 300  # every resample tried; invalid ones skipped, not fatal


def test_mostly_invalid_gives_nan() -> None:
    values = np.arange(10.0)

    def mostly_undefined(x: np.ndarray) -> float:
        if x[0] < 7:  # about 70 % of the resamples
            raise ValueError("undefined")
        return float(x.mean())

    lo, hi = bootstrap_ci(mostly_undefined, values, n_resamples=300)
    assert math.isnan(lo) and math.isnan(hi)
    nan_metric = lambda x: float("nan")  # noqa: E731
    assert all(math.isnan(v) for v in bootstrap_ci(nan_metric, values, n_resamples=50))


def test_percentile_interval_half_rule() -> None:
    values = np.array([np.nan] * 5 + [1.0, 2.0, 3.0, 4.0, 5.0])
    assert not math.isnan(percentile_interval(values, 10)[0])
    assert math.isnan(percentile_interval(values[:9], 9)[0])


def test_accepts_torch_and_checks_lengths() -> None:
    labels, scores = _binary_data(80)
    a = bootstrap_ci(roc_auc, torch.tensor(labels), torch.tensor(scores), n_resamples=100)
    b = bootstrap_ci(roc_auc, labels, scores, n_resamples=100)
    assert a == b
    with pytest.raises(ValueError, match="same number of rows"):
        bootstrap_ci(roc_auc, labels, scores[:-1])
    with pytest.raises(ValueError, match="alpha"):
        bootstrap_ci(np.mean, scores, alpha=1.5)
    assert bootstrap_indices(5, 3, seed=0).shape == (3, 5)


def test_auc_bootstrap_is_fast() -> None:
    labels, scores = _binary_data(200)
    roc_auc(labels, scores)  # warm-up imports
    start = time.perf_counter()
    bootstrap_ci(roc_auc, labels, scores, n_resamples=1000)
    assert time.perf_counter() - start < 0.5
