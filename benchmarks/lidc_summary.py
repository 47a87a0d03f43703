"""The LIDC benchmark's test table (fold 4) from the run directories of benchmarks/lidc.sh.

    .venv/bin/python benchmarks/lidc_summary.py runs/lidc
"""

from __future__ import annotations

import json
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


def _cell(metrics: dict, task_kind: str, key: str) -> str:
    for task in metrics.values():
        if isinstance(task, dict) and key in task and (task_kind != "classification" or "auc" in task):
            low, high = task.get(f"{key}_ci95", (None, None))
            interval = f" [{low:.3f}, {high:.3f}]" if low is not None else ""
            return f"{task[key]:.3f}{interval}"
    return "–"


def main(folder: Path) -> None:
    print("| model (fold 4, n = 198) | AUC [95% CI] | accuracy | Dice [95% CI] | IoU [95% CI] | rating MAE |")
    print("|---|---|---|---|---|---|")
    for label, relative in ROWS:
        path = folder / relative
        if not path.is_file():
            print(f"| {label} | not run | | | | |")
            continue
        metrics = json.loads(path.read_text())
        print(f"| {label} | {_cell(metrics, 'classification', 'auc')} | {_cell(metrics, 'classification', 'accuracy')} "
              f"| {_cell(metrics, 'segmentation', 'dice')} | {_cell(metrics, 'segmentation', 'iou')} "
              f"| {_cell(metrics, 'regression', 'mae')} |")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "runs/lidc"))
