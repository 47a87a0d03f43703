"""Paired multi − single differences on the same images: known answers."""

import math

import numpy as np
import pytest

from medmtl.paired import (HELPED, HURT, MIXED, NO_EVIDENCE, align, combine_verdicts, delta_m, paired_deltas,
                           relative_change, verdict)
from medmtl.tasks import ClassificationTask, RegressionTask


def _classification(labels, p_positive):
    p = np.asarray(p_positive, dtype=np.float64)
    return {"labels": np.asarray(labels), "probs": np.stack([1 - p, p], axis=1)}


def test_align_keeps_the_shared_samples_in_the_first_order():
    names, a, b = align(["x", "y", "z"], {"v": np.array([1, 2, 3])}, ["z", "x", "w"], {"v": np.array([30, 10, 0])})
    assert names == ["x", "z"]
    assert a["v"].tolist() == [1, 3] and b["v"].tolist() == [10, 30]


def test_verdicts():
    assert verdict([0.01, 0.2], higher_is_better=True) == HELPED
    assert verdict([0.01, 0.2], higher_is_better=False) == HURT
    assert verdict([-0.1, 0.2], higher_is_better=True) == NO_EVIDENCE
    assert verdict([math.nan, math.nan], higher_is_better=True) == NO_EVIDENCE
    assert combine_verdicts([HELPED, NO_EVIDENCE]) == HELPED
    assert combine_verdicts([HELPED, HURT]) == MIXED
    assert combine_verdicts([NO_EVIDENCE, NO_EVIDENCE]) == NO_EVIDENCE


def test_identical_models_differ_by_exactly_zero():
    rng = np.random.default_rng(0)
    summary = _classification(rng.integers(0, 2, 60), rng.random(60))
    result = paired_deltas(ClassificationTask(), summary, summary, ("auc", "accuracy"), n_resamples=200)
    for stats in result["metrics"].values():
        assert stats["delta"] == 0.0 and stats["delta_ci95"] == [0.0, 0.0] and stats["verdict"] == NO_EVIDENCE


def test_pairing_detects_a_small_consistent_gain_that_separate_intervals_miss():
    """Both models see the same hard and easy images; multi-task is a little better on every image.
    Separately their AUC intervals overlap, but the paired interval of the difference excludes 0."""
    rng = np.random.default_rng(1)
    n = 200
    labels = rng.integers(0, 2, n)
    difficulty = rng.normal(0, 1.0, n)  # shared by both models: what makes the comparison paired
    single_score = labels * 0.8 + difficulty
    multi_score = labels * 1.0 + difficulty
    single = {"target": np.zeros(n), "prediction": np.zeros(n)}  # unused here
    task = ClassificationTask()
    sigmoid = lambda x: 1 / (1 + np.exp(-x))  # noqa: E731
    multi_summary = _classification(labels, sigmoid(multi_score))
    single_summary = _classification(labels, sigmoid(single_score))
    result = paired_deltas(task, multi_summary, single_summary, ("auc",), n_resamples=500)["metrics"]["auc"]
    assert result["delta"] > 0 and result["delta_ci95"][0] > 0 and result["verdict"] == HELPED
    separate_multi = task.compute_metrics(multi_summary, n_resamples=500)["auc_ci95"]
    separate_single = task.compute_metrics(single_summary, n_resamples=500)["auc_ci95"]
    assert separate_multi[0] < separate_single[1]  # the unpaired intervals overlap
    assert single  # keep the linter quiet about the helper dict


def test_lower_is_better_metrics_turn_the_verdict_and_delta_m():
    rng = np.random.default_rng(2)
    target = rng.normal(size=80)
    multi = {"target": target, "prediction": target + rng.normal(0, 0.1, 80)}
    single = {"target": target, "prediction": target + rng.normal(0, 0.5, 80)}
    result = paired_deltas(RegressionTask(), multi, single, ("mae",), n_resamples=300)
    stats = result["metrics"]["mae"]
    assert stats["delta"] < 0 and stats["delta_ci95"][1] < 0 and stats["verdict"] == HELPED
    expected = -(stats["multi"] - stats["single"]) / stats["single"] * 100
    assert result["relative_point"][0] == pytest.approx(expected)
    summary = delta_m({"regression": result}, 300)
    assert summary["delta_m"] == pytest.approx(expected) and summary["delta_m_ci95"][0] > 0


def test_relative_change_formula():
    change = relative_change(np.array([0.9, 0.2, 1.0]), np.array([0.8, 0.25, 0.0]), np.array([False, True, False]))
    assert change[0] == pytest.approx(12.5) and change[1] == pytest.approx(20.0) and math.isnan(change[2])
