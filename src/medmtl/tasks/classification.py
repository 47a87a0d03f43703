"""Image classification: binary or multi-class, softmax cross-entropy or binary cross-entropy."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field, ValidationInfo, field_validator

from medmtl.encoders.base import FeatureInfo
from medmtl.io_utils import atomic_write_text
from medmtl.metrics import (
    bootstrap_ci,
    classification_metrics,
    confusion_matrix,
    expected_calibration_error,
    per_class_metrics,
    reliability_curve,
    roc_curves,
)
from medmtl.tasks.base import Batch, Outputs, Summary, Task, mean_log_probabilities
from medmtl.tasks.heads import PooledHead, PooledHeadOptions
from medmtl.tasks.outputs import Overlay


class ClassificationOptions(PooledHeadOptions):
    kind: Literal["classification"] = "classification"
    target: str = "label"
    num_classes: int = Field(2, ge=2)
    loss: Literal["ce", "bce"] = Field("ce", description="softmax cross-entropy, or binary cross-entropy "
                                                         "on one logit (two classes only)")
    class_weights: list[float] | None = Field(None, description="loss weight per class")
    label_smoothing: float = Field(0.0, ge=0, lt=1)
    ordinal: bool = Field(False, description="the classes are ordered (e.g. grades 0-4): the metrics add the "
                                             "quadratic-weighted Cohen's kappa (qwk) with its 95% CI")

    @field_validator("loss")
    @classmethod
    def _bce_is_binary(cls, loss: str, info: ValidationInfo) -> str:
        if loss == "bce" and info.data.get("num_classes", 2) != 2:
            raise ValueError("'bce' needs num_classes == 2; use 'ce' for more classes")
        return loss

    @field_validator("class_weights")
    @classmethod
    def _one_weight_per_class(cls, weights: list[float] | None, info: ValidationInfo) -> list[float] | None:
        classes = info.data.get("num_classes", 2)
        if weights is not None and len(weights) != classes:
            raise ValueError(f"class_weights has {len(weights)} values for {classes} classes")
        return weights


class ClassificationTask(Task[torch.Tensor, torch.Tensor]):
    """Predicts one class per image from the pooled encoder features.

    ``loss="ce"``: ``num_classes`` logits with softmax cross-entropy. ``loss="bce"`` (binary
    only): one logit with binary cross-entropy. Targets: LongTensor ``[B]`` of class indices.
    Prediction: logits ``[B, num_classes]`` or ``[B, 1]``; :meth:`postprocess` gives probabilities
    ``[B, num_classes]``.
    """

    kind = "classification"
    Options = ClassificationOptions
    monitor = ("auc", "max")
    lower_is_better = frozenset({"loss", "ece"})
    options: ClassificationOptions

    def __init__(self, name: str | None = None, options: ClassificationOptions | None = None, **values: Any) -> None:
        super().__init__(name, options, **values)
        weights = self.options.class_weights
        self.register_buffer("class_weights", torch.tensor(weights, dtype=torch.float32) if weights else None,
                             persistent=False)

    @property
    def num_classes(self) -> int:
        return self.options.num_classes

    @property
    def summary_metrics(self) -> tuple[str, ...]:  # type: ignore[override]
        return ("auc", "balanced_accuracy", "accuracy") + (("qwk",) if self.options.ordinal else ())

    @property
    def metric_names(self) -> tuple[str, ...]:
        return ("auc", "accuracy", "balanced_accuracy", "ece") + (("qwk",) if self.options.ordinal else ())

    def build_head(self, feature_info: list[FeatureInfo], image_channels: int) -> None:
        outputs = 1 if self.options.loss == "bce" else self.num_classes
        self.head = PooledHead.for_task(self, feature_info, outputs)

    def forward(self, features: list[torch.Tensor], image: torch.Tensor, context: Outputs,
                batch: Batch | None = None) -> torch.Tensor:
        return self.head(features)

    def compute_loss(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        target = target.long()
        if self.options.loss == "bce":
            pos_weight = None
            if self.class_weights is not None:
                pos_weight = self.class_weights[1] / self.class_weights[0]
            return F.binary_cross_entropy_with_logits(prediction[:, 0], target.float(), pos_weight=pos_weight)
        return F.cross_entropy(prediction, target, weight=self.class_weights,
                               label_smoothing=self.options.label_smoothing)

    def postprocess(self, prediction: torch.Tensor) -> torch.Tensor:
        """Class probabilities ``[B, num_classes]``."""
        if self.options.loss == "bce":
            p = torch.sigmoid(prediction[:, 0])
            return torch.stack([1 - p, p], dim=1)
        return prediction.softmax(dim=1)

    def merge_outputs(self, outputs: list[torch.Tensor]) -> torch.Tensor:
        """Merged outputs (TTA copies, ensemble members): the mean of the class probabilities, returned as
        **log-probabilities** ``[B, num_classes]`` (``ce``; their softmax is that mean, so :meth:`postprocess`,
        the summaries and the cross-entropy work on them as on logits) or, for ``bce``, as the **logit**
        ``[B, 1]`` of the mean probability of class 1."""
        if self.options.loss == "bce":
            log_p = mean_log_probabilities([F.logsigmoid(out) for out in outputs])
            log_q = mean_log_probabilities([F.logsigmoid(-out) for out in outputs])
            return log_p - log_q
        return mean_log_probabilities([out.float().log_softmax(dim=1).to(out.dtype) for out in outputs])

    def explained_columns(self, prediction: torch.Tensor) -> list[tuple[int, str]]:
        """The probability of class 1 (two classes) or of the predicted class."""
        column = 1 if prediction.shape[1] == 2 else int(prediction[0].argmax())
        return [(column, f"P(class {column})")]

    def summarize(self, prediction: torch.Tensor, target: torch.Tensor) -> Summary:
        probs = self.postprocess(prediction.detach().float()).cpu().numpy()
        return {"labels": target.detach().long().cpu().numpy(), "probs": probs}

    def compute_metrics(self, summary: Summary, n_resamples: int = 1000, seed: int = 0) -> dict[str, Any]:
        return classification_metrics(summary["labels"], summary["probs"], n_resamples=n_resamples, seed=seed,
                                      ordinal=self.options.ordinal)

    # -- results for people ---------------------------------------------------------------
    def report_figures(self, summary: Summary, out_dir: Path, split: str) -> list[str]:
        """ROC curves (:func:`roc_section`), the reliability diagram with the ECE
        (:func:`calibration_section`) and the confusion matrix with, for more than two classes, a
        per-class table (:func:`confusion_section`)."""
        labels, probs = summary["labels"], summary["probs"]
        return (roc_section(self.name, labels, probs, out_dir, f"ROC — {self.name} ({split})", f"ROC — {self.name}")
                + calibration_section(self.name, labels, probs, out_dir, split)
                + confusion_section(self.name, labels, probs, out_dir, split))

    def overlay(self, prediction: torch.Tensor, batch: Batch, index: int) -> Overlay:
        probs = prediction[index].cpu().numpy()
        present = batch["present"].get(self.target)
        truth = int(batch["targets"][self.target][index]) if present is not None and present[index] else "?"
        return Overlay(caption=f"true {truth}, pred {int(np.argmax(probs))} (p={probs.max():.2f})")

    def write_prediction(self, prediction: torch.Tensor, sink: Any) -> list[float]:
        probs = prediction[0].tolist()
        sink.overlays.append(Overlay(caption=f"{self.name}: " + ", ".join(f"{p:.2f}" for p in probs)))
        return probs


def roc_section(name: str, labels: np.ndarray, probs: np.ndarray, out_dir: Path, title: str,
                heading: str) -> list[str]:
    """Write ``roc_<name>.png`` and its points ``roc_<name>.csv`` (class, fpr, tpr) of ``probs``
    ``[N, K]`` against ``labels`` ``[N]``; the Markdown section showing the figure (none when no
    curve can be drawn)."""
    import pandas as pd

    from medmtl.report.plots import plot_roc  # matplotlib only when a report is written

    rows = [pd.DataFrame({"class": cls, "fpr": fpr, "tpr": tpr}) for cls, (fpr, tpr) in roc_curves(labels, probs).items()]
    if rows:
        atomic_write_text(out_dir / f"roc_{name}.csv", pd.concat(rows).to_csv(index=False))
    png = plot_roc(labels, probs, out_dir / f"roc_{name}.png", title=title)
    return [f"## {heading}\n\n![ROC {name}]({png.name})"] if png else []


def _number(value: float) -> str:
    return "n/a" if not np.isfinite(value) else f"{value:.3f}"


def calibration_section(name: str, labels: np.ndarray, probs: np.ndarray, out_dir: Path, split: str,
                        n_bins: int = 10) -> list[str]:
    """Write the reliability diagram ``calibration_<name>.png`` and its bins ``calibration_<name>.csv``
    (lower, upper, count, predicted, observed) of ``probs`` ``[N, K]`` against ``labels`` ``[N]``;
    the Markdown section with the ECE and its 95% bootstrap interval (none for zero samples)."""
    import pandas as pd

    from medmtl.report.plots import plot_calibration  # matplotlib only when a report is written

    if len(labels) == 0:
        return []
    try:
        curve = reliability_curve(labels, probs, n_bins)
    except ValueError as error:  # e.g. NaN probabilities of a diverged model
        return [f"## Calibration — {name}\n\nNo reliability diagram: {error}."]
    table = pd.DataFrame({"lower": curve.lower, "upper": curve.upper, "count": curve.count,
                          "predicted": curve.predicted, "observed": curve.observed})
    atomic_write_text(out_dir / f"calibration_{name}.csv", table.to_csv(index=False))
    low, high = bootstrap_ci(lambda y, p: expected_calibration_error(y, p, n_bins), labels, probs, n_resamples=1000)
    observed = "fraction of class 1" if "class 1" in curve.quantity else "accuracy"
    png = plot_calibration(curve, out_dir / f"calibration_{name}.png",
                           title=f"Calibration — {name} ({split}): ECE {curve.ece:.3f}")
    text = (f"## Calibration — {name}\n\nExpected calibration error (ECE) {curve.ece:.3f} "
            f"[{_number(low)}, {_number(high)}] (95% bootstrap CI): the {observed} against the {curve.quantity}, "
            f"in {n_bins} equal-width bins, weighted by the bins' sizes (0 = perfectly calibrated). "
            f"Bins in `calibration_{name}.csv`.")
    return [text + (f"\n\n![calibration {name}]({png.name})" if png else "")]


def confusion_section(name: str, labels: np.ndarray, probs: np.ndarray, out_dir: Path, split: str) -> list[str]:
    """Write the confusion matrix at the arg-max prediction as ``confusion_<name>.png`` (counts and
    row-normalised) and ``confusion_<name>.csv`` (a row per true class, a column per predicted
    class, counts); the Markdown section, with the per-class precision, recall, F1, one-vs-rest
    AUC and support as a table when there are more than two classes. Classes are named by their
    indices (none for zero samples)."""
    import pandas as pd

    from medmtl.report.plots import plot_confusion  # matplotlib only when a report is written

    if len(labels) == 0:
        return []
    counts = confusion_matrix(labels, probs)
    k = counts.shape[0]
    table = pd.DataFrame(counts, index=pd.Index(range(k), name="true"), columns=[str(c) for c in range(k)])
    atomic_write_text(out_dir / f"confusion_{name}.csv", table.to_csv())
    png = plot_confusion(counts, out_dir / f"confusion_{name}.png", title=f"Confusion matrix — {name} ({split})")
    threshold = "class 1 when its probability exceeds 0.5" if k == 2 else "the class of highest probability"
    text = (f"## Confusion matrix — {name}\n\nAt the operating point of the reported accuracy ({threshold}); "
            f"rows: true class, columns: predicted class; right: each row divided by its total (the recall "
            f"on the diagonal). Counts in `confusion_{name}.csv`.\n\n![confusion matrix {name}]({png.name})")
    if k > 2:
        per_class = per_class_metrics(labels, probs)
        rows = ["| class | precision | recall | F1 | AUC (one-vs-rest) | support |", "|---|---|---|---|---|---|"]
        rows += [f"| {c} | {_number(per_class['precision'][c])} | {_number(per_class['recall'][c])} | "
                 f"{_number(per_class['f1'][c])} | {_number(per_class['auc'][c])} | {per_class['support'][c]} |"
                 for c in range(k)]
        text += "\n\nPer class (precision, recall and F1 of the arg-max prediction):\n\n" + "\n".join(rows)
    return [text]
