"""Harrell's C-index against lifelines (``concordance_index(time, -risk, event)``)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from lifelines.utils import concordance_index as lifelines_cindex

from medmtl.metrics import bootstrap_ci, concordance_index, survival_metrics


def _data(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    time = rng.integers(1, 30, n).astype(float)  # many tied times
    event = rng.integers(0, 2, n)
    risk = np.round(rng.normal(size=n) - 0.05 * time, 1)  # tied risks
    return time, event, risk


@pytest.mark.parametrize("seed", range(5))
def test_matches_lifelines_with_ties(seed: int) -> None:
    time, event, risk = _data(150, seed)
    expected = lifelines_cindex(time, -risk, event)
    assert concordance_index(time, event, risk) == pytest.approx(expected, abs=1e-12)


def test_small_hand_example() -> None:
    time = np.array([1.0, 2.0, 2.0, 3.0])
    event = np.array([1, 1, 0, 0])
    risk = np.array([3.0, 2.0, 2.0, 1.0])
    # comparable: (0,1) (0,2) (0,3) (1,2: censored at the same time) (1,3); (1,2) is tied in risk.
    assert concordance_index(time, event, risk) == pytest.approx(4.5 / 5)
    assert lifelines_cindex(time, -risk, event) == pytest.approx(4.5 / 5)


def test_no_comparable_pair_raises() -> None:
    with pytest.raises(ValueError, match="comparable"):
        concordance_index(np.array([1.0, 2.0]), np.array([0, 0]), np.array([0.1, 0.2]))
    with pytest.raises(ValueError, match="comparable"):
        concordance_index(np.array([2.0, 2.0]), np.array([1, 1]), np.array([0.1, 0.2]))


def test_bad_inputs_raise() -> None:
    with pytest.raises(ValueError, match="event"):
        concordance_index(np.array([1.0, 2.0]), np.array([2, 0]), np.array([0.1, 0.2]))
    with pytest.raises(ValueError):
        concordance_index(np.array([1.0, 2.0]), np.array([1, 0]), np.array([0.1]))


def test_survival_metrics_summary() -> None:
    time, event, risk = _data(200, 7)
    out = survival_metrics(torch.tensor(time), torch.tensor(event), torch.tensor(risk), n_resamples=300, seed=0)
    assert set(out) == {"c_index", "c_index_ci95", "n", "events"}
    assert out["n"] == 200 and out["events"] == int(event.sum())
    assert out["c_index"] == pytest.approx(lifelines_cindex(time, -risk, event))
    assert out["c_index_ci95"][0] < out["c_index"] < out["c_index_ci95"][1]
    # The weighted vectorised bootstrap equals resampling rows and calling the metric.
    generic = bootstrap_ci(concordance_index, time, event, risk, n_resamples=300, seed=0)
    assert out["c_index_ci95"] == pytest.approx(list(generic), abs=1e-12)


def test_survival_metrics_without_events_is_nan() -> None:
    out = survival_metrics(np.arange(1.0, 6.0), np.zeros(5), np.arange(5.0), n_resamples=20)
    assert math.isnan(out["c_index"]) and out["events"] == 0 and out["n"] == 5
