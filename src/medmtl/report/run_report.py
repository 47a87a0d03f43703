"""A Markdown report of a run: metrics table, loss curves, ROC/FROC curves and overlays.

Beside each curve's PNG the report writes its points as CSV (``roc_<task>.csv``: class, fpr, tpr;
``froc_<task>.csv``: fpi, tpr) so curves of several runs can be drawn together.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from medmtl.config import RunConfig
from medmtl.io_utils import atomic_write_text
from medmtl.model import MultiTaskModel
from medmtl.metrics import roc_curves
from medmtl.metrics.detection import froc_curve, image_matches
from medmtl.report.plots import plot_froc, plot_loss_curves, plot_overlays, plot_roc
from medmtl.report.tables import markdown_table
from medmtl.tasks import ClassificationTask, DetectionTask, SegmentationTask
from medmtl.training.evaluation import collect_summaries


def write_report(run_dir: Path, config: RunConfig, model: MultiTaskModel, loader: Any,
                 metrics: dict[str, dict[str, Any]], split: str = "val", n_overlays: int = 8,
                 summaries: dict[str, dict[str, np.ndarray]] | None = None) -> Path:
    """Write ``run_dir/report/report.md`` with its figures beside it; returns the path.

    ``summaries`` (from ``collect_summaries`` over ``loader``) spares a second pass over the data
    when the caller has them already.
    """
    report_dir = run_dir / "report"
    report_dir.mkdir(parents=True, exist_ok=True)
    sections = [f"# medmtl run report\n\nRun: `{run_dir}`  \nSplit evaluated: **{split}**  \n"
                f"Encoder: `{config.model.encoder.name}`; tasks: "
                + ", ".join(f"`{n}` ({t.kind})" for n, t in model.tasks.items()),
                "## Metrics (95% bootstrap CIs)\n\n" + markdown_table(metrics)]

    loss_png = plot_loss_curves(run_dir / "logs" / "csv" / "metrics.csv", report_dir / "loss_curves.png")
    if loss_png:
        sections.append("## Loss curves\n\n![loss curves](loss_curves.png)")

    if summaries is None:
        summaries = collect_summaries(model, loader, description="report")
    for name, task in model.tasks.items():
        if isinstance(task, ClassificationTask) and summaries.get(name):
            labels, probs = summaries[name]["labels"], summaries[name]["probs"]
            _write_roc_points(labels, probs, report_dir / f"roc_{name}.csv")
            png = plot_roc(labels, probs, report_dir / f"roc_{name}.png", title=f"ROC — {name} ({split})")
            if png:
                sections.append(f"## ROC — {name}\n\n![ROC {name}]({png.name})")
        if isinstance(task, DetectionTask) and summaries.get(name):
            sections.extend(_detection_figures(name, task, summaries[name], report_dir, split))

    overlay = _overlays(model, loader, report_dir / "overlays.png", n_overlays)
    if overlay:
        sections.append("## Predictions\n\n![overlays](overlays.png)")
    path = report_dir / "report.md"
    atomic_write_text(path, "\n\n".join(sections) + "\n")
    return path


def report_run(run_dir: str | Path, metrics: dict[str, dict[str, Any]], split: str = "val") -> Path:
    """Load a run's best model and write its report for ``split`` (the training split if the data has no such split)."""
    from medmtl.data.build import build_datasets
    from medmtl.training.loaders import make_loader
    from medmtl.training.run import load_run

    run_dir = Path(run_dir)
    config, model = load_run(run_dir)
    datasets = build_datasets(config.data)
    split = split if split in datasets else "train"
    loader = make_loader(datasets[split], config.data.batch_size, 0, shuffle=False)
    return write_report(run_dir, config, model, loader, metrics, split=split)


def _detection_figures(name: str, task: DetectionTask, summary: dict[str, np.ndarray], report_dir: Path,
                       split: str) -> list[str]:
    """FROC curve of the lesion detections and ROC of the image-level (malignant-veto) score."""
    sections = []
    matches = [image_matches(b, s, g, task.froc_iou)
               for b, s, g in zip(summary["lesion_boxes"], summary["lesion_scores"], summary["gt_boxes"])]
    fpi, tpr, _ = froc_curve(matches)
    atomic_write_text(report_dir / f"froc_{name}.csv", pd.DataFrame({"fpi": fpi, "tpr": tpr}).to_csv(index=False))
    png = plot_froc({name: (fpi, tpr)}, report_dir / f"froc_{name}.png", title=f"FROC — {name} ({split})")
    if png:
        sections.append(f"## FROC — {name}\n\n![FROC {name}]({png.name})")
    known = summary["image_positive"] >= 0
    score = summary["image_score"][known]
    probs = np.stack([1 - score, score], axis=1)
    _write_roc_points(summary["image_positive"][known], probs, report_dir / f"roc_{name}.csv")
    png = plot_roc(summary["image_positive"][known], probs, report_dir / f"roc_{name}.png",
                   title=f"ROC — {name}, image level ({split})")
    if png:
        sections.append(f"## ROC — {name} (image level)\n\n![ROC {name}]({png.name})")
    return sections


def _write_roc_points(labels: np.ndarray, probs: np.ndarray, out_csv: Path) -> None:
    """ROC points (class, fpr, tpr) of ``probs`` ``[N, K]`` against ``labels`` ``[N]``, as ``plot_roc`` draws them."""
    rows = [pd.DataFrame({"class": cls, "fpr": fpr, "tpr": tpr}) for cls, (fpr, tpr) in roc_curves(labels, probs).items()]
    if rows:
        atomic_write_text(out_csv, pd.concat(rows).to_csv(index=False))


@torch.no_grad()
def _overlays(model: MultiTaskModel, loader: Any, out_png: Path, count: int) -> Path | None:
    seg = next((n for n, t in model.tasks.items() if isinstance(t, SegmentationTask)), None)
    cls = next((n for n, t in model.tasks.items() if isinstance(t, ClassificationTask)), None)
    if seg is None and cls is None:
        return None
    batch = next(iter(loader))
    images = batch["image"][:count]
    if images.shape[1] not in (1, 3):  # embedding grids, not pictures
        return None
    predictions = model.predict(images)
    true_masks, pred_masks, captions = [], [], []
    for i in range(len(images)):
        if seg is not None:
            key = model.tasks[seg].target_key
            has = batch["present"].get(key)
            true_masks.append(batch["targets"][key][i].numpy() if has is not None and has[i] else None)
            pred_masks.append(predictions[seg][i].numpy())
        else:
            true_masks.append(None)
            pred_masks.append(None)
        caption = str(batch["name"][i])[:28]
        if cls is not None:
            probs = predictions[cls][i].numpy()
            key = model.tasks[cls].target_key
            has = batch["present"].get(key)
            truth = int(batch["targets"][key][i]) if has is not None and has[i] else "?"
            caption += f"\ntrue {truth}, pred {int(np.argmax(probs))} (p={probs.max():.2f})"
        captions.append(caption)
    return plot_overlays(images.numpy(), true_masks, pred_masks, captions, out_png)
