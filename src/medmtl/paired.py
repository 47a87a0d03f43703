"""Did multi-task learning help? Paired differences of two models on the same evaluation images.

For one task, both models' per-sample summaries (``Task.summarize``) are aligned by sample name;
the difference ``multi − single`` of each metric gets a **paired** bootstrap 95% interval: every
resample draws the same images for both models, so the interval reflects the models' difference
and not the spread of the images. A verdict reads the interval: "helped" when it lies entirely on
the better side of 0 (higher, or lower for ``Task.lower_is_better`` metrics), "hurt" when entirely
on the worse side, "no evidence" otherwise.

Δm% (Maninis et al., CVPR 2019): the mean over the compared metrics of the relative change
``(−1)^l · (M_multi − M_single) / |M_single| · 100``, ``l = 1`` where lower is better; positive
means multi-task is better on average; a metric whose single-task value is 0 (or undefined) is left
out. Its interval comes from the same resamples.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from medmtl.metrics.bootstrap import bootstrap_indices, percentile_interval
from medmtl.tasks.base import Summary, Task

HELPED, HURT, NO_EVIDENCE, MIXED = "helped", "hurt", "no evidence", "mixed"


def align(names_a: list[str], summary_a: Summary, names_b: list[str], summary_b: Summary
          ) -> tuple[list[str], Summary, Summary]:
    """The rows of both summaries for the samples both have, in ``names_a``'s order."""
    index_b = {name: i for i, name in enumerate(names_b)}
    shared = [name for name in names_a if name in index_b]
    rows_a = np.array([i for i, name in enumerate(names_a) if name in index_b], dtype=np.int64)
    rows_b = np.array([index_b[name] for name in shared], dtype=np.int64)
    return shared, subset(summary_a, rows_a), subset(summary_b, rows_b)


def subset(summary: Summary, rows: np.ndarray) -> Summary:
    """The summary's rows ``rows`` (per-sample arrays indexed alike; object arrays too)."""
    return {key: values[rows] for key, values in summary.items()}


def _scalars(task: Task, summary: Summary, metrics: tuple[str, ...]) -> np.ndarray:
    values = task.compute_metrics(summary, n_resamples=0)
    return np.array([_number(values.get(metric)) for metric in metrics], dtype=np.float64)


def _number(value: Any) -> float:
    return float(value) if isinstance(value, (int, float)) else math.nan  # None (undefined) -> NaN


def verdict(ci: list[float], higher_is_better: bool) -> str:
    """What a paired interval of ``multi − single`` says."""
    low, high = ci
    if not (math.isfinite(low) and math.isfinite(high)):
        return NO_EVIDENCE
    if low > 0:
        return HELPED if higher_is_better else HURT
    if high < 0:
        return HURT if higher_is_better else HELPED
    return NO_EVIDENCE


def combine_verdicts(verdicts: list[str]) -> str:
    """One verdict over several splits: helped (hurt) when some split says so and none the opposite."""
    helped, hurt = HELPED in verdicts, HURT in verdicts
    if helped and hurt:
        return MIXED
    return HELPED if helped else HURT if hurt else NO_EVIDENCE


def relative_change(multi: np.ndarray, single: np.ndarray, lower_better: np.ndarray) -> np.ndarray:
    """Per metric ``(−1)^l (multi − single) / |single| · 100`` (NaN where single is 0 or missing)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        change = (multi - single) / np.abs(single) * 100.0
    change = np.where(lower_better, -change, change)
    return np.where(np.isfinite(change), change, np.nan)


def paired_deltas(task: Task, multi: Summary, single: Summary, metrics: tuple[str, ...],
                  n_resamples: int = 1000, seed: int = 0) -> dict[str, Any]:
    """``{"n", "metrics": {metric: {"multi", "single", "delta", "delta_ci95", "verdict"}},
    "relative": [R, M] resampled relative changes}`` of two aligned summaries of ``task``."""
    n = len(next(iter(multi.values()))) if multi else 0
    point_multi, point_single = _scalars(task, multi, metrics), _scalars(task, single, metrics)
    lower = np.array([metric in task.lower_is_better for metric in metrics])
    resampled = np.full((max(n_resamples, 0), len(metrics)), math.nan)
    relative = np.full_like(resampled, math.nan)
    if n > 1:
        for r, rows in enumerate(bootstrap_indices(n, n_resamples, seed)):
            m, s = _scalars(task, subset(multi, rows), metrics), _scalars(task, subset(single, rows), metrics)
            resampled[r] = m - s
            relative[r] = relative_change(m, s, lower)
    out: dict[str, Any] = {"n": n, "metrics": {}, "relative": relative,
                           "relative_point": relative_change(point_multi, point_single, lower)}
    for column, metric in enumerate(metrics):
        ci = list(percentile_interval(resampled[:, column], n_resamples)) if n > 1 else [math.nan, math.nan]
        out["metrics"][metric] = {"multi": float(point_multi[column]), "single": float(point_single[column]),
                                  "delta": float(point_multi[column] - point_single[column]), "delta_ci95": ci,
                                  "verdict": verdict(ci, higher_is_better=metric not in task.lower_is_better)}
    return out


def delta_m(per_task: dict[str, dict[str, Any]], n_resamples: int) -> dict[str, Any]:
    """Δm% over every compared (task, metric) with its interval from the tasks' resamples."""
    points = np.concatenate([p["relative_point"] for p in per_task.values()]) if per_task else np.zeros(0)
    finite = np.isfinite(points)
    if not finite.any():
        return {"delta_m": math.nan, "delta_m_ci95": [math.nan, math.nan]}
    resampled = np.concatenate([p["relative"] for p in per_task.values()], axis=1)[:, finite]
    with np.errstate(invalid="ignore"):
        per_resample = np.nanmean(resampled, axis=1) if resampled.size else np.zeros(0)
    return {"delta_m": float(points[finite].mean()),
            "delta_m_ci95": list(percentile_interval(per_resample, n_resamples))}
