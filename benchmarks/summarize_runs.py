"""Mean ± sample std over splits of every ``<model>/split<k>/metrics.json`` under a folder, as Markdown,
plus one FROC and one ROC figure with a curve per model.

    .venv/bin/python benchmarks/summarize_runs.py runs/busi-detection

Table 1 columns: image-level AUC (the classification head's, else the detection head's
malignant-veto score), Dice and IoU (segmentation head, else the detection head's masks), the
detection head's TPR at 0.5/1/2/4 false positives per image and class-agnostic (lesion) AP@0.5, so that
a 3-class FT-MTL-Net head and a 1-class lesion head are scored alike. Only trained heads
(loss weight > 0) count. Table 2 (when ``metrics_val_normals.json`` files exist, written by
``medmtl evaluate RUN data.include_normal=true``): the FROC operating points again with the
split's normal images added as lesion-free negatives.

Figures (``froc_models.png``, ``roc_models.png`` in the folder): per model, the mean over splits
of each run's curve from its report (``report/froc_detection.csv``, ``report/roc_<task>.csv``).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import yaml  # noqa: E402

FROC_COLUMNS = [(f"TPR@{level}", ("detection", f"tpr_fpi_{level}")) for level in ("0.5", "1", "2", "4")]
COLUMNS = [("AUC", ("classification", "auc"), ("detection", "auc")),
           ("Dice", ("segmentation", "dice"), ("detection", "dice")),
           ("IoU", ("segmentation", "iou"), ("detection", "iou")),
           *FROC_COLUMNS,
           ("AP50", ("detection", "ap50_lesion"))]
MAX_FPI = 4.0


def value(metrics: dict, sources: tuple[tuple[str, str], ...], trained: set[str]) -> float | None:
    for task, metric in sources:
        if task in metrics and task in trained and metric in metrics[task] and metrics[task][metric] is not None:
            return float(metrics[task][metric])
    return None


def trained_tasks(run_dir: Path) -> set[str]:
    """Tasks with a non-zero loss weight in the run's resolved config."""
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    weights = config.get("loss", {}).get("weights", {}) or {}
    names = [t.get("name") or t["kind"] for t in config["model"]["tasks"]]
    return {n for n in names if weights.get(n, 1) > 0}


def runs_by_model(root: Path) -> dict[str, list[Path]]:
    models: dict[str, list[Path]] = {}
    for metrics_file in sorted(root.glob("**/split*/metrics.json")):
        models.setdefault(str(metrics_file.parent.parent.relative_to(root)), []).append(metrics_file.parent)
    return models


def table(models: dict[str, list[Path]], file_name: str, columns: list) -> str:
    lines = ["| model | splits | " + " | ".join(c[0] for c in columns) + " |", "|---|---|" + "---|" * len(columns)]
    for model, run_dirs in models.items():
        runs = [(json.loads((d / file_name).read_text()), trained_tasks(d)) for d in run_dirs if (d / file_name).exists()]
        if not runs:
            continue
        cells = []
        for _, *sources in columns:
            values = [v for m, trained in runs if (v := value(m, tuple(sources), trained)) is not None]
            spread = np.std(values, ddof=1) if len(values) > 1 else 0.0  # sample std, as `medmtl compare`
            cells.append(f"{np.mean(values):.3f} ± {spread:.3f}" if values else "–")
        lines.append(f"| {model} | {len(runs)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def mean_froc(run_dirs: list[Path], grid: np.ndarray) -> np.ndarray | None:
    """Mean over runs of the highest TPR reached with at most ``grid`` false positives per image."""
    curves = []
    for run_dir in run_dirs:
        path = run_dir / "report" / "froc_detection.csv"
        if "detection" not in trained_tasks(run_dir) or not path.exists():
            continue
        froc = pd.read_csv(path)
        curves.append([froc["tpr"][froc["fpi"] <= level + 1e-12].max() for level in grid])
    return np.mean(curves, axis=0) if curves else None


def mean_roc(run_dirs: list[Path], grid: np.ndarray) -> np.ndarray | None:
    """Mean over runs of the image-level ROC (classification head, else the detection head's score)."""
    curves = []
    for run_dir in run_dirs:
        trained = trained_tasks(run_dir)
        task = "classification" if "classification" in trained else "detection" if "detection" in trained else None
        path = run_dir / "report" / f"roc_{task}.csv"
        if task is None or not path.exists():
            continue
        roc = pd.read_csv(path)
        roc = roc[roc["class"] == 1]
        curves.append(np.interp(grid, roc["fpr"], roc["tpr"]))
    return np.mean(curves, axis=0) if curves else None


def figures(root: Path, models: dict[str, list[Path]]) -> list[Path]:
    written = []
    fpi_grid = np.linspace(0, MAX_FPI, 401)
    fpr_grid = np.linspace(0, 1, 201)
    for name, curve_of, grid, labels in (
            ("froc_models.png", mean_froc, fpi_grid, ("false positives per image", "lesion sensitivity (TPR)")),
            ("roc_models.png", mean_roc, fpr_grid, ("false positive rate", "true positive rate (malignant)"))):
        curves = {model: curve for model, run_dirs in models.items()
                  if (curve := curve_of(run_dirs, grid)) is not None}
        if not curves:
            continue
        fig, ax = plt.subplots(figsize=(6, 4.8))
        for model, curve in curves.items():
            ax.plot(grid, curve, label=model)
        if name == "roc_models.png":
            ax.plot([0, 1], [0, 1], ":", color="grey")
        ax.set_xlabel(labels[0])
        ax.set_ylabel(labels[1])
        ax.set_ylim(0, 1.02)
        ax.grid(alpha=0.3)
        ax.set_title(f"{'FROC' if name.startswith('froc') else 'ROC'}: mean over splits")
        ax.legend(fontsize=7, loc="lower right")
        fig.tight_layout()
        fig.savefig(root / name, dpi=110)
        plt.close(fig)
        written.append(root / name)
    return written


def main(root: Path) -> None:
    models = runs_by_model(root)
    print(table(models, "metrics.json", COLUMNS))
    with_normals = table(models, "metrics_val_normals.json", FROC_COLUMNS)
    if with_normals.count("\n") > 1:
        print("\nWith the split's normal images added to validation as lesion-free negatives:\n")
        print(with_normals)
    for path in figures(root, models):
        print(f"\n![{path.stem}]({path.name})")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "runs/busi-detection"))
