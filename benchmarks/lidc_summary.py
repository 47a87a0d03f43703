"""The LIDC benchmark's test table (fold 4) from the run directories of benchmarks/lidc.sh.

    .venv/bin/python benchmarks/lidc_summary.py runs/lidc
    .venv/bin/python benchmarks/lidc_summary.py runs/lidc runs/lidc-seed1 runs/lidc-seed2

The first folder gives the table with 95% intervals; given several folders (the same benchmark run
with other seeds), a second table gives each row's mean ± standard deviation over the folders that
have it.
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

ROWS = [  # (row label, metrics file relative to the benchmark folder)
    ("medmtl single-task malignancy", "compare/single-malignancy/split1/metrics_test.json"),
    ("medmtl single-task segmentation", "compare/single-segmentation/split1/metrics_test.json"),
    ("medmtl multi-task (malignancy + seg + recon)", "compare/multi-task/split1/metrics_test.json"),
    ("medmtl MTMS (multi-scale outcome head + seg + recon)", "mtms/metrics_test.json"),
    ("medmtl multi-task + malignancy rating (regression)", "rating/metrics_test.json"),
    ("plain MONAI 3D U-Net (segmentation)", "baselines/unet/metrics_test.json"),
    ("plain MONAI 3D ResNet-18 (malignancy)", "baselines/resnet18/metrics_test.json"),
]
COLUMNS = [  # (header, task kind, metric key)
    ("AUC", "classification", "auc"), ("accuracy", "classification", "accuracy"),
    ("Dice", "segmentation", "dice"), ("IoU", "segmentation", "iou"), ("rating MAE", "regression", "mae"),
]


def _metric(metrics: dict, task_kind: str, key: str) -> tuple[float, tuple | None] | None:
    """(value, 95% interval or None) of the first task that reports ``key``; the classification
    columns come from the task that reports an AUC (a regression task has no accuracy)."""
    for task in metrics.values():
        if isinstance(task, dict) and key in task and (task_kind != "classification" or "auc" in task):
            return task[key], task.get(f"{key}_ci95")
    return None


def _row_metrics(folder: Path, relative: str) -> dict | None:
    path = folder / relative
    return json.loads(path.read_text()) if path.is_file() else None


def interval_table(folder: Path) -> list[str]:
    """One benchmark folder: every metric with its 95% interval."""
    lines = ["| model (fold 4, n = 198) | " + " | ".join(f"{header} [95% CI]" for header, _, _ in COLUMNS) + " |",
             "|---" * (len(COLUMNS) + 1) + "|"]
    for label, relative in ROWS:
        metrics = _row_metrics(folder, relative)
        if metrics is None:
            lines.append(f"| {label} | not run |" + " |" * (len(COLUMNS) - 1))
            continue
        cells = []
        for _, kind, key in COLUMNS:
            found = _metric(metrics, kind, key)
            if found is None:
                cells.append("–")
                continue
            value, ci = found
            cells.append(f"{value:.3f}" + (f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else ""))
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return lines


def spread_table(folders: list[Path]) -> list[str]:
    """Several folders (seeds): each row's mean ± standard deviation over the folders that have it."""
    lines = ["| model (fold 4) | seeds | " + " | ".join(f"{header} mean ± std" for header, _, _ in COLUMNS) + " |",
             "|---" * (len(COLUMNS) + 2) + "|"]
    for label, relative in ROWS:
        runs = [metrics for folder in folders if (metrics := _row_metrics(folder, relative)) is not None]
        if not runs:
            continue
        cells = []
        for _, kind, key in COLUMNS:
            values = [found[0] for metrics in runs if (found := _metric(metrics, kind, key)) is not None]
            spread = f" ± {statistics.stdev(values):.3f}" if len(values) > 1 else ""
            cells.append(f"{statistics.mean(values):.3f}{spread}" if values else "–")
        lines.append(f"| {label} | {len(runs)} | " + " | ".join(cells) + " |")
    return lines


def main(folders: list[Path]) -> str:
    lines = interval_table(folders[0])
    if len(folders) > 1:
        lines += ["", f"Spread over {len(folders)} seeds ({', '.join(str(folder) for folder in folders)}):", ""]
        lines += spread_table(folders)
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(main([Path(argument) for argument in sys.argv[1:]] or [Path("runs/lidc")]), end="")
