"""Evaluation metrics with bootstrap confidence intervals.

All metrics take NumPy arrays (torch tensors are accepted and converted) and return Python
floats; the ``*_metrics`` summaries return dicts ready for JSON.
"""

from medmtl.metrics.bootstrap import bootstrap_ci, bootstrap_indices, percentile_interval
from medmtl.metrics.classification import (
    ReliabilityCurve,
    accuracy,
    balanced_accuracy,
    classification_metrics,
    confusion_matrix,
    expected_calibration_error,
    per_class_metrics,
    reliability_curve,
    roc_auc,
    roc_curve_points,
    roc_curves,
)
from medmtl.metrics.regression import mae, mse, regression_metrics, spearman
from medmtl.metrics.segmentation import dice_per_image, iou_per_image, segmentation_metrics
from medmtl.metrics.survival import concordance_index, survival_metrics

__all__ = [
    "ReliabilityCurve",
    "accuracy",
    "balanced_accuracy",
    "bootstrap_ci",
    "bootstrap_indices",
    "classification_metrics",
    "concordance_index",
    "confusion_matrix",
    "dice_per_image",
    "expected_calibration_error",
    "iou_per_image",
    "mae",
    "mse",
    "per_class_metrics",
    "percentile_interval",
    "regression_metrics",
    "reliability_curve",
    "roc_auc",
    "roc_curve_points",
    "roc_curves",
    "segmentation_metrics",
    "spearman",
    "survival_metrics",
]
