"""Evaluate a trained model on a data loader: per-task metrics with bootstrap 95% CIs."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader

from medmtl.model import MultiTaskModel
from medmtl.progress import progress
from medmtl.tasks.base import concat_summaries


@torch.no_grad()
def collect_summaries(model: MultiTaskModel, loader: DataLoader, description: str = "evaluating",
                      names: dict[str, list[str]] | None = None) -> dict[str, dict[str, np.ndarray]]:
    """Per-task per-sample numbers over the whole loader (only labelled samples).

    ``names``, when given, receives each task's sample names in the order of its summary rows
    (for comparing two models image by image).
    """
    model.eval()
    parts: dict[str, list[dict[str, np.ndarray]]] = {name: [] for name in model.tasks}
    for batch in progress(loader, description=description):
        outputs = model(batch["image"])
        for name, task in model.tasks.items():
            selected = task.select(outputs[name], batch)
            if selected is not None:
                parts[name].append(task.summarize(*selected))
                if names is not None:
                    rows = torch.nonzero(task.labelled(batch)).flatten().tolist()
                    names.setdefault(name, []).extend(str(batch["name"][i]) for i in rows)
    return {name: concat_summaries(p) for name, p in parts.items()}


def metrics_from_summaries(model: MultiTaskModel, summaries: dict[str, dict[str, np.ndarray]],
                           n_bootstrap: int = 1000, seed: int = 0) -> dict[str, dict[str, Any]]:
    """``{task: {metric: value, metric_ci95: [lo, hi], …}}``; tasks without labels are left out."""
    return {
        name: model.tasks[name].compute_metrics(summary, n_resamples=n_bootstrap, seed=seed)
        for name, summary in summaries.items()
        if summary
    }


def evaluate(model: MultiTaskModel, loader: DataLoader, n_bootstrap: int = 1000, seed: int = 0) -> dict[str, dict[str, Any]]:
    return metrics_from_summaries(model, collect_summaries(model, loader), n_bootstrap, seed)
