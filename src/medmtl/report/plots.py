"""Figures for a run: loss curves, ROC curves, reliability diagrams, confusion matrices,
Kaplan–Meier curves, image/mask/prediction overlays."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from medmtl.metrics import ReliabilityCurve, roc_auc, roc_curves  # noqa: E402


def plot_loss_curves(metrics_csv: Path, out_png: Path) -> Path | None:
    """Train/val loss per epoch (total and per task) from Lightning's CSV log."""
    if not metrics_csv.is_file():
        return None
    log = pd.read_csv(metrics_csv)
    if "epoch" not in log:
        return None
    columns = [c for c in log.columns if c.endswith("loss") and (c.startswith("train/") or c.startswith("val/"))]
    if not columns:
        return None
    per_epoch = log.groupby("epoch")[columns].mean()
    fig, ax = plt.subplots(figsize=(7, 4))
    for column in columns:
        series = per_epoch[column].dropna()
        if len(series):
            style = "-" if column.startswith("train/") else "--"
            ax.plot(series.index + 1, series.values, style, marker="o", markersize=3, label=column)
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    ax.set_title("Training and validation losses")
    return _save(fig, out_png)


def plot_balancing(metrics_csv: Path, out_png: Path) -> Path | None:
    """Per-task loss weights (``weight/<task>``) and, for gradient balancers, the cosine between task
    gradients (``grad_cos/<a>~<b>``) per epoch from Lightning's CSV log; None when the weights never
    changed and no cosine was logged (fixed weights)."""
    if not metrics_csv.is_file():
        return None
    log = pd.read_csv(metrics_csv)
    weights = [c for c in log.columns if c.startswith("weight/")]
    cosines = [c for c in log.columns if c.startswith("grad_cos/")]
    if "epoch" not in log or not (cosines or any(log[c].dropna().nunique() > 1 for c in weights)):
        return None
    per_epoch = log.groupby("epoch")[weights + cosines].mean()
    panels = [(weights, "loss weight")] + ([(cosines, "cosine of task gradients")] if cosines else [])
    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 3.8), squeeze=False)
    for ax, (columns, label) in zip(axes[0], panels):
        for column in columns:
            series = per_epoch[column].dropna()
            ax.plot(series.index + 1, series.values, marker="o", markersize=3, label=column.split("/", 1)[1])
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    if cosines:
        axes[0][-1].axhline(0, color="grey", linestyle=":")  # below 0: the tasks pull the shared part apart
    fig.suptitle("Loss balancing (epoch means of the training steps)", fontsize=9)
    return _save(fig, out_png)


def plot_roc(labels: np.ndarray, probs: np.ndarray, out_png: Path, title: str = "ROC") -> Path | None:
    """Binary ROC (positive = class 1), or one-vs-rest curves for more classes."""
    curves = roc_curves(labels, probs)
    if not curves:
        return None
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    for cls, (fpr, tpr) in curves.items():
        ax.plot(fpr, tpr, label=f"class {cls}: AUC {roc_auc((labels == cls).astype(int), probs[:, cls]):.3f}")
    ax.plot([0, 1], [0, 1], ":", color="grey")
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.set_title(title)
    ax.legend(loc="lower right", fontsize=8)
    return _save(fig, out_png)


def plot_calibration(curve: ReliabilityCurve, out_png: Path, title: str = "Calibration") -> Path | None:
    """Reliability diagram: observed frequency against mean predicted probability per non-empty bin
    (marker area ~ samples in the bin), the diagonal of perfect calibration, the bins' sample
    counts below; None when every bin is empty."""
    filled = curve.count > 0
    if not filled.any():
        return None
    fig, (ax, hist) = plt.subplots(2, 1, figsize=(4.5, 5.6), sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    ax.plot([0, 1], [0, 1], ":", color="grey", label="perfect calibration")
    sizes = 12 + 120 * curve.count[filled] / curve.count.max()
    ax.plot(curve.predicted[filled], curve.observed[filled], "-", color="tab:blue")
    ax.scatter(curve.predicted[filled], curve.observed[filled], s=sizes, color="tab:blue", zorder=3,
               label=f"ECE {curve.ece:.3f}")
    binary = "class 1" in curve.quantity
    ax.set_ylabel("fraction of class 1" if binary else "accuracy")
    ax.set_xlim(0, 1)
    ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", fontsize=8)
    ax.set_title(title, fontsize=9)
    hist.bar(curve.lower, curve.count, width=curve.upper - curve.lower, align="edge", color="tab:blue",
             alpha=0.5, edgecolor="white")
    hist.set_xlabel(curve.quantity, fontsize=8)
    hist.set_ylabel("samples")
    return _save(fig, out_png)


def plot_confusion(counts: np.ndarray, out_png: Path, title: str = "Confusion matrix",
                   class_names: list[str] | None = None) -> Path:
    """Two panels of a ``[K, K]`` confusion matrix (rows: true class, columns: predicted): the
    counts and the row-normalised fractions (each true class's recall on the diagonal); cells are
    annotated up to 15 classes."""
    k = counts.shape[0]
    names = class_names or [str(c) for c in range(k)]
    rows = counts.sum(axis=1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        fractions = np.where(rows > 0, counts / np.maximum(rows, 1), np.nan)
    size = min(4.0 + 0.35 * k, 12.0)
    fig, axes = plt.subplots(1, 2, figsize=(2 * size + 1, size))
    for ax, values, label, fmt in ((axes[0], counts, "count", "d"), (axes[1], fractions, "fraction of the true class", ".2f")):
        image = ax.imshow(values, cmap="Blues", vmin=0, vmax=None if fmt == "d" else 1)
        fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label=label)
        ax.set_xticks(range(k), names, fontsize=7, rotation=90 if k > 8 else 0)
        ax.set_yticks(range(k), names, fontsize=7)
        ax.set_xlabel("predicted class")
        ax.set_ylabel("true class")
        if k <= 15:
            top = np.nanmax(values) if np.isfinite(values).any() else 1
            for i in range(k):
                for j in range(k):
                    value = values[i, j]
                    text = "–" if not np.isfinite(value) else format(int(value) if fmt == "d" else value, fmt)
                    ax.text(j, i, text, ha="center", va="center", fontsize=9 if k <= 6 else 7,
                            color="white" if np.isfinite(value) and value > 0.6 * top else "black")
    axes[0].set_title("counts", fontsize=9)
    axes[1].set_title("row-normalised", fontsize=9)
    fig.suptitle(title, fontsize=9)
    return _save(fig, out_png)


def plot_kaplan_meier(fitters: list, out_png: Path, title: str = "Kaplan–Meier",
                      at_risk_labels: list[str] | None = None) -> Path:
    """Kaplan–Meier curves (lifelines ``KaplanMeierFitter`` objects, fitted and labelled) with
    their 95% confidence bands, censoring ticks and the numbers at risk under the axis (rows named
    ``at_risk_labels``, default the fitters' labels)."""
    import warnings

    from lifelines.plotting import add_at_risk_counts  # lifelines only when a survival report is drawn

    fig, ax = plt.subplots(figsize=(6.4, 4.2 + 0.35 * len(fitters)))
    with warnings.catch_warnings():  # lifelines' and pandas' chatter stays off the user's console
        warnings.simplefilter("ignore")
        for fitter in fitters:
            fitter.plot_survival_function(ax=ax, ci_show=True, ci_alpha=0.15, show_censors=True,
                                          censor_styles={"ms": 4, "marker": "|"})
        ax.set_xlabel("time")
        ax.set_ylabel("survival probability")
        ax.set_ylim(0, 1.05)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="best")
        ax.set_title(title, fontsize=9)
        add_at_risk_counts(*fitters, ax=ax, rows_to_show=["At risk"], labels=at_risk_labels, fig=fig)
        return _save(fig, out_png)


def plot_overlays(images: np.ndarray, true_masks: list[np.ndarray | None], pred_masks: list[np.ndarray | None],
                  captions: list[str], out_png: Path) -> Path:
    """A grid: each image with the true mask outline (green) and the predicted one (red).

    ``images`` ``[N, C, H, W]`` in [0, 1]; masks ``[H, W]`` label maps or None.
    """
    n = len(images)
    cols = min(n, 4)
    rows = int(np.ceil(n / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(3 * cols, 3.2 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for i, ax in enumerate(axes.flat[:n]):
        image = images[i]
        ax.imshow(image[0] if image.shape[0] == 1 else np.moveaxis(image, 0, -1), cmap="gray", vmin=0, vmax=1)
        for mask, color in ((true_masks[i], "lime"), (pred_masks[i], "red")):
            if mask is not None and mask.any():
                ax.contour(mask > 0, levels=[0.5], colors=color, linewidths=1.2)
        ax.set_title(captions[i], fontsize=8)
    fig.suptitle(overlay_title(true_masks, pred_masks), fontsize=9)
    return _save(fig, out_png)


def overlay_title(true_masks: list[np.ndarray | None], pred_masks: list[np.ndarray | None]) -> str:
    """What an overlay figure shows: the contour colours only when some mask is drawn."""
    if any(mask is not None and mask.any() for mask in (*true_masks, *pred_masks)):
        return "green: reference mask, red: prediction"
    return "predictions (under each image: reference and predicted values)"


def lesion_centre(volume_shape: tuple[int, ...], *masks: np.ndarray | None) -> tuple[int, int, int]:
    """``(z, y, x)`` of the first non-empty mask's foreground centre, else the volume centre."""
    for mask in masks:
        if mask is not None and mask.any():
            return tuple(int(round(float(c.mean()))) for c in np.nonzero(mask > 0))
    return tuple(size // 2 for size in volume_shape)


def plot_volume_overlays(volumes: np.ndarray, true_masks: list[np.ndarray | None],
                         pred_masks: list[np.ndarray | None], captions: list[str], out_png: Path) -> Path:
    """Per volume one row of three orthogonal slices (axial, coronal, sagittal) through the lesion
    (the reference mask's centre, else the prediction's, else the volume centre), with the reference
    outline (green) and the predicted one (red).

    ``volumes`` ``[N, C, D, H, W]`` in [0, 1] (channel 0 is shown); masks ``[D, H, W]`` or None.
    """
    n = len(volumes)
    fig, axes = plt.subplots(n, 3, figsize=(8.4, 2.9 * n), squeeze=False)
    views = (("axial", 0), ("coronal", 1), ("sagittal", 2))
    for i in range(n):
        volume = volumes[i][0]
        centre = lesion_centre(volume.shape, true_masks[i], pred_masks[i])
        for ax, (view, axis) in zip(axes[i], views):
            ax.axis("off")
            ax.imshow(np.take(volume, centre[axis], axis=axis), cmap="gray", vmin=0, vmax=1,
                      origin="lower" if axis else "upper")
            for mask, color in ((true_masks[i], "lime"), (pred_masks[i], "red")):
                if mask is None:
                    continue
                section = np.take(mask, centre[axis], axis=axis) > 0
                if section.any() and not section.all():
                    ax.contour(section, levels=[0.5], colors=color, linewidths=1.2)
            ax.set_title(f"{view} {'zyx'[axis]}={centre[axis]}" + (f"\n{captions[i]}" if view == "axial" else ""),
                         fontsize=7)
    fig.suptitle(overlay_title(true_masks, pred_masks), fontsize=9)
    return _save(fig, out_png)


def plot_froc(curves: dict[str, tuple[np.ndarray, np.ndarray]], out_png: Path, max_fpi: float = 4.0,
              title: str = "FROC") -> Path | None:
    """Lesion TPR against false positives per image, one line per ``{label: (fpi, tpr)}``."""
    fig, ax = plt.subplots(figsize=(5, 4.2))
    drawn = False
    for label, (fpi, tpr) in curves.items():
        if len(fpi) == 0 or not np.isfinite(tpr).any():
            continue
        # the sensitivity reached stays reached at higher FP rates: extend the last point
        ax.step(np.minimum(np.r_[fpi, max_fpi], max_fpi), np.r_[tpr, tpr[-1]], where="post", label=label)
        drawn = True
    if not drawn:
        plt.close(fig)
        return None
    ax.set_xlim(0, max_fpi)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("false positives per image")
    ax.set_ylabel("lesion sensitivity (TPR)")
    ax.grid(alpha=0.3)
    ax.set_title(title)
    ax.legend(loc="lower right", fontsize=8)
    return _save(fig, out_png)


def plot_prediction(image: np.ndarray, out_png: Path, boxes: np.ndarray | None = None,
                    scores: np.ndarray | None = None, labels: np.ndarray | None = None,
                    mask: np.ndarray | None = None, caption: str = "") -> Path:
    """One image ``[C, H, W]`` in [0, 1] with predicted boxes (score, class) and a mask outline."""
    height, width = image.shape[-2:]
    fig, ax = plt.subplots(figsize=(5, 5 * height / max(width, 1)))
    ax.imshow(image[0] if image.shape[0] == 1 else np.moveaxis(image, 0, -1), cmap="gray", vmin=0, vmax=1)
    ax.axis("off")
    if mask is not None and mask.any():
        ax.contour(mask > 0, levels=[0.5], colors="red", linewidths=1.0)
    colors = plt.get_cmap("tab10")
    for index, box in enumerate(np.asarray(boxes if boxes is not None else np.zeros((0, 4))).reshape(-1, 4)):
        x1, y1, x2, y2 = box
        label = int(labels[index]) if labels is not None else 1
        color = colors(label % 10)
        ax.add_patch(plt.Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, edgecolor=color, linewidth=1.4))
        text = f"{label}: {scores[index]:.2f}" if scores is not None else str(label)
        ax.text(x1, y1, text, color="white", fontsize=7, va="bottom",
                bbox={"facecolor": color, "alpha": 0.7, "pad": 1, "linewidth": 0})
    if caption:
        ax.set_title(caption, fontsize=8)
    return _save(fig, out_png)


def plot_intervals(rows: list[tuple[str, str, float, float, float]], out_png: Path, xlabel: str) -> Path | None:
    """A forest plot: one line per ``(label, group, value, low, high)``, a colour per group, 0 marked."""
    rows = [r for r in rows if np.isfinite(r[2])]
    if not rows:
        return None
    groups = list(dict.fromkeys(r[1] for r in rows))
    colors = plt.get_cmap("tab10")
    fig, ax = plt.subplots(figsize=(7, 0.35 * len(rows) + 1.2))
    for y, (label, group, value, low, high) in enumerate(reversed(rows)):
        color = colors(groups.index(group) % 10)
        if np.isfinite(low) and np.isfinite(high):
            ax.plot([low, high], [y, y], color=color, linewidth=1.5)
        ax.plot([value], [y], "o", color=color, markersize=4)
    ax.axvline(0, color="grey", linestyle=":")
    ax.set_yticks(range(len(rows)), [r[0] for r in reversed(rows)], fontsize=7)
    ax.set_xlabel(xlabel)
    for index, group in enumerate(groups):
        ax.plot([], [], "o-", color=colors(index % 10), label=group)
    ax.legend(fontsize=7, loc="best")
    ax.grid(alpha=0.3, axis="x")
    return _save(fig, out_png)


def _save(fig: plt.Figure, out_png: Path) -> Path:
    out_png.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(out_png, dpi=110)
    plt.close(fig)
    return out_png
