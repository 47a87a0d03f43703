"""Mean ± std over splits of every ``<model>/split<k>/metrics.json`` under a folder, as Markdown.

    .venv/bin/python benchmarks/summarize_runs.py runs/busi-detection

Columns: image-level AUC (the classification head's, else the detection head's malignant-veto
score), Dice and IoU (segmentation head, else the detection head's masks), the detection head's
TPR at 0.5/1/2/4 false positives per image and AP@0.5.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

COLUMNS = [("AUC", ("classification", "auc"), ("detection", "auc")),
           ("Dice", ("segmentation", "dice"), ("detection", "dice")),
           ("IoU", ("segmentation", "iou"), ("detection", "iou")),
           ("TPR@0.5", ("detection", "tpr_fpi_0.5")), ("TPR@1", ("detection", "tpr_fpi_1")),
           ("TPR@2", ("detection", "tpr_fpi_2")), ("TPR@4", ("detection", "tpr_fpi_4")),
           ("AP50", ("detection", "ap50"))]


def value(metrics: dict, sources: tuple[tuple[str, str], ...], trained: set[str]) -> float | None:
    for task, metric in sources:
        if task in metrics and task in trained and metric in metrics[task] and metrics[task][metric] is not None:
            return float(metrics[task][metric])
    return None


def trained_tasks(run_dir: Path) -> set[str]:
    """Tasks with a non-zero loss weight in the run's resolved config."""
    import yaml

    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    weights = config.get("loss", {}).get("weights", {}) or {}
    names = [t.get("name") or t["kind"] for t in config["model"]["tasks"]]
    return {n for n in names if weights.get(n, 1) > 0}


def main(root: Path) -> None:
    rows = {}
    for metrics_file in sorted(root.glob("**/split*/metrics.json")):
        run_dir = metrics_file.parent
        model = str(run_dir.parent.relative_to(root))
        rows.setdefault(model, []).append((json.loads(metrics_file.read_text()), trained_tasks(run_dir)))
    print("| model | splits | " + " | ".join(c[0] for c in COLUMNS) + " |")
    print("|---|---|" + "---|" * len(COLUMNS))
    for model, runs in rows.items():
        cells = []
        for _, *sources in COLUMNS:
            values = [v for m, trained in runs if (v := value(m, tuple(sources), trained)) is not None]
            cells.append(f"{np.mean(values):.3f} ± {np.std(values):.3f}" if values else "–")
        print(f"| {model} | {len(runs)} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "runs/busi-detection"))
