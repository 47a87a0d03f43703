"""Regression metrics against NumPy, scikit-learn and SciPy."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr
from sklearn.metrics import mean_absolute_error, mean_squared_error

from medmtl.metrics import mae, mse, regression_metrics, spearman


def _data(n: int = 120, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    target = np.round(rng.normal(50, 10, n))  # rounding creates ties
    pred = np.round(target + rng.normal(0, 8, n))
    return target, pred


def test_mae_mse_match_numpy_and_sklearn() -> None:
    target, pred = _data()
    assert mae(target, pred) == pytest.approx(np.mean(np.abs(target - pred)))
    assert mae(target, pred) == pytest.approx(mean_absolute_error(target, pred))
    assert mse(target, pred) == pytest.approx(mean_squared_error(target, pred))
    assert mae(torch.tensor(target), torch.tensor(pred)) == pytest.approx(mean_absolute_error(target, pred))
    assert isinstance(mae(target, pred), float)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_spearman_matches_scipy(seed: int) -> None:
    target, pred = _data(seed=seed)
    assert spearman(target, pred) == pytest.approx(spearmanr(target, pred).statistic, abs=1e-12)


def test_spearman_constant_is_nan() -> None:
    with pytest.warns(Warning):  # scipy warns ConstantInputWarning and returns nan
        assert math.isnan(spearmanr(np.ones(5), np.arange(5.0)).statistic)
    assert math.isnan(spearman(np.ones(5), np.arange(5.0)))
    assert math.isnan(spearman(np.arange(5.0), np.ones(5)))


def test_bad_inputs_raise() -> None:
    with pytest.raises(ValueError):
        mae(np.arange(3.0), np.arange(4.0))
    with pytest.raises(ValueError):
        mse(np.array([]), np.array([]))


def test_regression_metrics_summary() -> None:
    target, pred = _data()
    out = regression_metrics(target, pred, n_resamples=300, seed=0)
    assert set(out) == {"mae", "mae_ci95", "spearman", "spearman_ci95", "n"}
    assert out["n"] == 120
    assert out["mae"] == pytest.approx(mean_absolute_error(target, pred))
    assert out["spearman"] == pytest.approx(spearmanr(target, pred).statistic)
    assert out["mae_ci95"][0] < out["mae"] < out["mae_ci95"][1]
    assert out["spearman_ci95"][0] < out["spearman"] < out["spearman_ci95"][1]
    # The vectorised bootstrap equals the generic one on the same resamples.
    from medmtl.metrics import bootstrap_ci
    assert out["spearman_ci95"] == pytest.approx(list(bootstrap_ci(spearman, target, pred, n_resamples=300)))
    assert out["mae_ci95"] == pytest.approx(list(bootstrap_ci(mae, target, pred, n_resamples=300)))
    const = regression_metrics(target, np.zeros_like(target), n_resamples=50)
    assert math.isnan(const["spearman"]) and math.isnan(const["spearman_ci95"][0])
