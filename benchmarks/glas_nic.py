"""Issue 14: Neural Image Compression on real tissue (GlaS) — which patch encoder serves slide-level prediction?

Tellez et al. (MIDL 2020) claim that a patch encoder trained with supervised multi-task learning
compresses tissue into features that serve slide-level prediction better than a single-task or an
unsupervised encoder. Here, at GlaS's scale (165 H&E images of 16 patients, each image treated as a
small slide):

1. every ``train`` image (85) is cut into 64-px patches at its native 0.62 µm/px, with the same
   patches of its gland mask (``medmtl extract-patches`` with a ``mask`` column);
2. patch encoders (small_cnn, width 16, 4 stages → 128-d embeddings; validation grouped by patient)
   are trained on them: **multi-task** (gland segmentation + malignancy + grade, the image's labels
   carried to its patches), **single-task** (malignancy), **unsupervised** (reconstruction, the
   original NIC), the **number-of-tasks** series (segmentation only; + malignancy), and a randomly
   initialised encoder as the floor;
3. every image is compressed with each encoder into a grid (``medmtl compress``, 8×12 cells for the
   775×522 images);
4. a slide-level CNN (``nic-slide``-like) is trained on the ``train`` grids for malignancy and,
   separately, for the five-level grade (validation grouped by patient), and evaluated once on
   ``testA`` (60 images) and ``testB`` (20) separately: AUC with its 95% CI for malignancy,
   accuracy and quadratic-weighted kappa with CIs for grade.

Usage::

    MEDMTL_DATA=../shared/data .venv/bin/python benchmarks/glas_nic.py runs/glas-nic \\
        [--encoder-epochs 10] [--slide-epochs 30] [--threads 1]

Every step is resumable (finished runs and stores are reused); ``OUT/results.md`` holds the table.
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from medmtl.config import config_from_dict
from medmtl.paths import data_root

MPP = 0.62  # GlaS: 20× (the data's README)
PATCH = 64
TASKS = {
    "glands": {"kind": "segmentation", "name": "glands"},
    "malignant": {"kind": "classification", "name": "malignant", "num_classes": 2},
    "grade": {"kind": "classification", "name": "grade", "target": "grade", "num_classes": 5, "ordinal": True},
    "reconstruction": {"kind": "reconstruction", "name": "reconstruction", "use_skips": False},
}
ENCODERS = {  # name: tasks (None: randomly initialised, not trained)
    "multi-task": ["glands", "malignant", "grade"],
    "single-task": ["malignant"],
    "unsupervised": ["reconstruction"],
    "random": None,
    "seg-only": ["glands"],
    "seg+malignant": ["glands", "malignant"],
}
TARGETS = {  # slide-level target: label column, classes, whether ordinal
    "malignancy": ("malignant", 2, False),
    "grade": ("grade", 5, True),
}


def encoder_config(manifest: Path, tasks: list[str] | None, epochs: int, threads: int) -> dict[str, Any]:
    return {
        "seed": 0,
        "data": {"kind": "manifest", "manifest": str(manifest), "channels": 3, "image_size": PATCH,
                 "label_col": "malignant", "label_cols": {"grade": "grade"}, "mask_col": "mask",
                 "group_col": "patient", "val_fraction": 0.2, "batch_size": 64,
                 "augment": {"hflip": True, "vflip": True, "rot90": True, "hed": 0.05, "intensity": 0.1}},
        "model": {"encoder": {"name": "small_cnn", "options": {"width": 16, "stages": 4}},
                  "tasks": [copy.deepcopy(TASKS[t]) for t in (tasks or ["malignant"])]},
        "optim": {"lr": 0.002, "weight_decay": 0.0001},
        "trainer": {"max_epochs": epochs, "monitor": "val/loss", "monitor_mode": "min", "progress_bar": False,
                    "num_threads": threads},
    }


def slide_config(manifest: Path, target: str, embedding: int, epochs: int, threads: int) -> dict[str, Any]:
    column, classes, ordinal = TARGETS[target]
    return {
        "seed": 0,
        "data": {"kind": "grid", "manifest": str(manifest), "channels": embedding, "grid_size": 12,
                 "label_col": column, "group_col": "patient", "val_fraction": 0.25, "batch_size": 8},
        "model": {"encoder": {"name": "small_cnn", "options": {"width": 16, "stages": 3, "norm": "group"}},
                  "tasks": [{"kind": "classification", "name": target, "num_classes": classes, "dropout": 0.3,
                             "ordinal": ordinal}]},
        "optim": {"lr": 0.001, "weight_decay": 0.0001},
        "trainer": {"max_epochs": epochs, "monitor": "val/loss", "monitor_mode": "min", "progress_bar": False,
                    "num_threads": threads},
    }


def image_tables(out: Path) -> tuple[Path, Path, pd.DataFrame]:
    """``OUT/images.csv`` (all 165 images, absolute paths) and ``OUT/train_images.csv`` (train split)."""
    root = data_root()
    if root is None or not (root / "glas" / "glas.csv").is_file():
        raise SystemExit("GlaS not found: set MEDMTL_DATA to the folder holding glas/")
    table = pd.read_csv(root / "glas" / "glas.csv", dtype=str)
    for column in ("image", "mask"):
        table[column] = [str(root / "glas" / p) for p in table[column]]
    table = table[["image", "mask", "name", "patient", "split", "malignant", "grade"]]
    out.mkdir(parents=True, exist_ok=True)
    table.to_csv(out / "images.csv", index=False)
    table[table["split"] == "train"].to_csv(out / "train_images.csv", index=False)
    return out / "images.csv", out / "train_images.csv", table


def random_encoder_run(run: Path, config: dict[str, Any]) -> None:
    """A run directory holding an untrained (seeded) model, as a floor for the encoders."""
    import yaml

    from medmtl.builders import build_model

    if (run / "checkpoints" / "last.ckpt").is_file():
        return
    (run / "checkpoints").mkdir(parents=True, exist_ok=True)
    resolved = config_from_dict(config)
    (run / "config.yaml").write_text(yaml.safe_dump(resolved.model_dump(mode="json")))
    torch.manual_seed(0)
    model = build_model(resolved)
    torch.save({"state_dict": {f"model.{k}": v for k, v in model.state_dict().items()}, "epoch": -1,
                "global_step": 0}, run / "checkpoints" / "last.ckpt")


def evaluate_on(run: Path, manifest: Path, split_file: Path) -> dict[str, Any]:
    """The run's selected model on the images of ``split_file`` (the test split of ``manifest``)."""
    from medmtl.evaluation import evaluate
    from medmtl.training.loaders import build_run_datasets, evaluation_loader
    from medmtl.training.run import load_run_checkpoint, with_data_overrides

    config, model, _ = load_run_checkpoint(run)
    config = with_data_overrides(config, [f"data.manifest={manifest}", f"data.split_test={split_file}"])
    loader = evaluation_loader(config, build_run_datasets(config, model)["test"])
    return evaluate(model, loader, config.trainer.n_bootstrap, config.seed)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("out", type=Path, nargs="?", default=Path("runs/glas-nic"))
    parser.add_argument("--encoder-epochs", type=int, default=10)
    parser.add_argument("--slide-epochs", type=int, default=30)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--encoders", default=",".join(ENCODERS), help="comma-separated subset of " + ",".join(ENCODERS))
    args = parser.parse_args()
    out: Path = args.out
    torch.set_num_threads(args.threads)
    from medmtl.console import quiet_dependencies

    quiet_dependencies()  # as the command line: no Lightning tips or dependency deprecation warnings

    from medmtl.training.run import train
    from medmtl.wsi.compress import CompressionSettings, compress_slides
    from medmtl.wsi.patch_encoder import PatchEncoder
    from medmtl.wsi.patches import extract_patches

    _, train_images, table = image_tables(out)
    timings: dict[str, float] = {}
    start = time.perf_counter()
    patches = extract_patches(train_images, out / "patches", 1000, patch_size=PATCH, target_mpp=MPP, slide_mpp=MPP,
                              min_tissue_fraction=0.25)
    timings["extract patches"] = time.perf_counter() - start
    for split in ("testA", "testB"):
        (out / f"{split}.txt").write_text("\n".join(table[table["split"] == split]["name"]) + "\n")
    settings = CompressionSettings(patch_size=PATCH, target_mpp=MPP, slide_mpp=MPP, min_tissue_fraction=0.25)
    results: dict[str, dict[str, dict[str, Any]]] = {}
    for name in args.encoders.split(","):
        tasks = ENCODERS[name]
        run = out / f"encoder-{name}"
        config = encoder_config(patches, tasks, args.encoder_epochs, args.threads)
        start = time.perf_counter()
        if tasks is None:
            random_encoder_run(run, config)
        elif not (run / "metrics.json").is_file():
            train(config_from_dict(config), run)
        timings[f"encoder {name}"] = time.perf_counter() - start
        encoder = PatchEncoder.from_run(run)
        start = time.perf_counter()
        compressed = compress_slides([Path(p) for p in table["image"]], encoder, out / f"grids-{name}", settings)
        timings[f"compress {name}"] = time.perf_counter() - start
        grids = table.assign(grid=[str(r.store) for r in compressed])[["grid", "name", "patient", "split",
                                                                       "malignant", "grade"]]
        grids.to_csv(out / f"grids-{name}.csv", index=False)
        grids[grids["split"] == "train"].to_csv(out / f"grids-{name}-train.csv", index=False)
        results[name] = {}
        for target in TARGETS:
            slide_run = out / f"slide-{name}-{target}"
            cfg = slide_config(out / f"grids-{name}-train.csv", target, encoder.channels, args.slide_epochs,
                               args.threads)
            if not (slide_run / "metrics.json").is_file():
                train(config_from_dict(cfg), slide_run)
            results[name][target] = {split: evaluate_on(slide_run, out / f"grids-{name}.csv", out / f"{split}.txt")
                                     for split in ("testA", "testB")}
        (out / "results.json").write_text(json.dumps({"results": results, "seconds": timings}, indent=1))
    text = markdown(results)
    (out / "results.md").write_text(text)
    print(text)
    print(json.dumps(timings, indent=1))


def _cell(metrics: dict[str, Any], key: str) -> str:
    value, ci = metrics.get(key), metrics.get(f"{key}_ci95")
    if value is None:
        return "–"
    return f"{value:.3f} [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else f"{value:.3f}"


def markdown(results: dict[str, dict[str, dict[str, Any]]]) -> str:
    lines = ["| patch encoder | malignancy AUC, testA (60) | malignancy AUC, testB (20) | grade accuracy, testA | "
             "grade QWK, testA | grade accuracy, testB | grade QWK, testB |", "|---|---|---|---|---|---|---|"]
    for name, targets in results.items():
        m, g = targets["malignancy"], targets["grade"]
        lines.append(f"| {name} | {_cell(m['testA']['malignancy'], 'auc')} | {_cell(m['testB']['malignancy'], 'auc')} "
                     f"| {_cell(g['testA']['grade'], 'accuracy')} | {_cell(g['testA']['grade'], 'qwk')} "
                     f"| {_cell(g['testB']['grade'], 'accuracy')} | {_cell(g['testB']['grade'], 'qwk')} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
