"""A Markdown report of a run: metrics table, loss curves, each task's figures and prediction overlays.

The report knows no task kinds: each task writes its own figures (``Task.report_figures``: e.g.
ROC or FROC curves, with their points as CSV beside the PNG so curves of several runs can be drawn
together) and says what a picture of a sample shows for it (``Task.overlay``).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from medmtl.io_utils import atomic_write_text
from medmtl.report.html import write_html_report
from medmtl.report.plots import plot_balancing, plot_loss_curves, plot_overlays, plot_volume_overlays
from medmtl.report.tables import markdown_table
from medmtl.tasks.outputs import merge_overlays
from medmtl.evaluation import collect_summaries

if TYPE_CHECKING:
    from medmtl.config import RunConfig
    from medmtl.model import MultiTaskModel


def write_report(run_dir: Path, config: RunConfig, model: MultiTaskModel, loader: Any,
                 metrics: dict[str, dict[str, Any]], split: str = "val", n_overlays: int = 8,
                 summaries: dict[str, dict[str, np.ndarray]] | None = None) -> Path:
    """Write ``run_dir/report/report.md`` with its figures beside it, and ``report.html`` (the
    same, one self-contained page: :func:`medmtl.report.html.write_html_report`); returns the
    Markdown's path.

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
    balancing_png = plot_balancing(run_dir / "logs" / "csv" / "metrics.csv", report_dir / "balancing.png")
    if balancing_png:
        sections.append("## Loss balancing\n\nTask weights and, for gradient-level balancers, the cosine "
                        "between task gradients (negative: the tasks conflict).\n\n![balancing](balancing.png)")

    if summaries is None:
        summaries = collect_summaries(model, loader, description="report")
    for name, task in model.tasks.items():
        if summaries.get(name):
            sections.extend(task.report_figures(summaries[name], report_dir, split))

    if _overlays(model, loader, report_dir / "overlays.png", n_overlays):
        sections.append("## Predictions\n\n![overlays](overlays.png)")
    path = report_dir / "report.md"
    atomic_write_text(path, "\n\n".join(sections) + "\n")
    write_html_report(path)
    return path


@torch.no_grad()
def _overlays(model: MultiTaskModel, loader: Any, out_png: Path, count: int) -> Path | None:
    """A grid of the first ``count`` samples with what each task shows for them (volumes: three
    orthogonal slices each); None when no task shows anything."""
    batch = next(iter(loader))
    images = batch["image"][:count]
    if images.shape[1] not in (1, 3):  # embedding grids, not pictures
        return None
    predictions = model.predict(images)
    pictures = []
    for i in range(len(images)):
        layers = [task.overlay(predictions[name], batch, i) for name, task in model.tasks.items()]
        pictures.append(merge_overlays([layer for layer in layers if layer is not None]) if any(layers) else None)
    if not any(pictures):
        return None
    captions = [str(batch["name"][i])[:28] + (f"\n{p.caption}" if p is not None and p.caption else "")
                for i, p in enumerate(pictures)]
    plot = plot_volume_overlays if images.dim() == 5 else plot_overlays
    return plot(images.numpy(), [p.true_mask if p else None for p in pictures],
                [p.pred_mask if p else None for p in pictures], captions, out_png)
