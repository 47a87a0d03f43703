"""Plain MONAI baselines of the LIDC-IDRI benchmark (issue 11), on exactly medmtl's crops, splits and augmentation.

The data are built by medmtl itself: ``load_config("benchmarks/configs/lidc-mtl.yaml",
["data.split_test=FILE", "data.fold=1", "seed=S"])`` and ``build_datasets(cfg.data)``, i.e. 1 mm
isotropic 32³ CT crops centred on the nodule, window [-1000, 400] HU, random crops (±2 voxels) and
x/y/z flips in training, folds 0-3 for training with the k-fold validation fold 1 (grouped by
patient) inside them, and fold 4 (``--split-test``, the file benchmarks/lidc.sh writes) as the test
split, evaluated once with the best validation checkpoint. Same batch size (8) and epochs as
medmtl's rows (``--epochs``; benchmarks/lidc.sh uses 20).

Models (plain MONAI, nothing of medmtl's model code):

- ``unet``: ``monai.networks.nets.UNet(spatial_dims=3, in_channels=1, out_channels=2,
  channels=(16, 32, 64, 128), strides=(2, 2, 2), num_res_units=2)`` trained with
  ``monai.losses.DiceCELoss(to_onehot_y=True, softmax=True)``; the epoch with the best validation
  Dice is kept; test Dice and IoU are per-nodule means (medmtl's ``dice_per_image`` /
  ``iou_per_image`` of the arg-max mask, foreground class) with 95% bootstrap CIs
  (``segmentation_metrics``, 1000 resamples).
- ``resnet18``: ``monai.networks.nets.resnet18(spatial_dims=3, n_input_channels=1, num_classes=2)``
  trained with cross-entropy on benign (0) / malignant (1); the epoch with the best validation AUC
  is kept; test AUC with its 95% CI, accuracy and balanced accuracy (``classification_metrics``,
  softmax probabilities, 1000 resamples).

Optimisation = medmtl's default family, read from the config: AdamW (lr 2e-3 = ``optim.lr``,
weight decay 1e-4 = ``optim.weight_decay``) with a cosine schedule over the epochs
(``CosineAnnealingLR(T_max=epochs)``, stepped once per epoch, as medmtl's trainer). The model's
weights come from ``torch.manual_seed(seed)``; the training order from a ``DataLoader`` with
``collate_samples`` whose shuffling generator is seeded with ``seed`` (augmentation draws come from
torch's global RNG in the main process, so a run is repeatable, but its random crops/flips are not
the very draws of medmtl's loader, only the same distribution). Weights and inputs are kept
channels-last (``--no-channels-last`` to turn it off), as medmtl trains 3D models by default; it
changes speed, not results beyond float rounding.

Output per model: ``OUT/<model>/metrics_test.json`` and ``metrics_val.json`` (best epoch, with CIs),
``history.csv`` (epoch, train loss, validation metric, learning rate, seconds), ``best.pt`` (state
dict), ``run.json`` (settings, best epoch, parameters, time) and ``predictions_test.npz`` (per test
nodule, in medmtl's per-sample format, for ``benchmarks/remedies_paired.py``: medmtl's rows paired
with the baseline on the same nodules). A model whose ``metrics_test.json`` exists is skipped (its
``predictions_test.npz``, when missing, is made from ``best.pt``). A Markdown table row per model is printed at the end.

    .venv/bin/python benchmarks/lidc_baselines.py --out runs/lidc/monai --epochs 20 --seed 0 --threads 2 \\
        --split-test runs/lidc/test_fold4.txt
    # smoke test: --epochs 1 --limit-batches 3
"""

from __future__ import annotations

import argparse
import copy
import csv
import itertools
import json
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from medmtl.config import load_config
from medmtl.data.build import build_datasets
from medmtl.data.collate import collate_samples
from medmtl.metrics import (
    classification_metrics,
    dice_per_image,
    iou_per_image,
    segmentation_metrics,
)

CONFIG = Path(__file__).resolve().parent / "configs" / "lidc-mtl.yaml"
MODELS = ("unet", "resnet18")
N_BOOTSTRAP = 1000
#: per model: the task key its metrics are stored under, the target it reads, the selection metric
SPEC = {
    "unet": {"task": "segmentation", "target": "mask", "metric": "dice",
             "title": "MONAI UNet (segmentation only)"},
    "resnet18": {"task": "malignancy", "target": "label", "metric": "auc",
                 "title": "MONAI ResNet-18 (malignancy only)"},
}


def build_model(name: str) -> torch.nn.Module:
    from monai.networks.nets import UNet, resnet18

    if name == "unet":
        return UNet(spatial_dims=3, in_channels=1, out_channels=2, channels=(16, 32, 64, 128), strides=(2, 2, 2),
                    num_res_units=2)
    if name == "resnet18":
        return resnet18(spatial_dims=3, n_input_channels=1, num_classes=2)
    raise ValueError(f"unknown model {name!r}; choose from {', '.join(MODELS)}")


def make_loss(name: str) -> Any:
    if name == "unet":
        from monai.losses import DiceCELoss

        dice_ce = DiceCELoss(to_onehot_y=True, softmax=True)
        return lambda logits, target: dice_ce(logits, target.unsqueeze(1))
    return lambda logits, target: F.cross_entropy(logits, target)


def labelled(batch: dict, target: str) -> tuple[torch.Tensor, torch.Tensor] | None:
    """The images and targets of the samples of ``batch`` that have ``target``; None when none has."""
    present = batch["present"].get(target)
    if present is None or not bool(present.any()):
        return None
    return batch["image"][present], batch["targets"][target][present]


def prepare(image: torch.Tensor, channels_last: bool) -> torch.Tensor:
    return image.contiguous(memory_format=torch.channels_last_3d) if channels_last else image


@torch.no_grad()
def predict(name: str, model: torch.nn.Module, loader: DataLoader, channels_last: bool, limit: int | None
            ) -> tuple[list[str], dict[str, np.ndarray]]:
    """Per labelled sample of ``loader``: its name and ``model``'s summary in medmtl's per-sample
    format (``Task.summarize``: ``{"dice", "iou"}`` per nodule, or ``{"labels", "probs"}``)."""
    spec = SPEC[name]
    model.eval()
    names: list[str] = []
    parts: dict[str, list[np.ndarray]] = {}
    for batch in itertools.islice(loader, limit):
        present = batch["present"].get(spec["target"])
        found = labelled(batch, spec["target"])
        if found is None:
            continue
        names += [str(batch["name"][i]) for i in torch.nonzero(present).flatten().tolist()]
        image, target = found
        logits = model(prepare(image, channels_last)).float()
        if name == "unet":
            predicted = logits.argmax(dim=1)
            parts.setdefault("dice", []).append(dice_per_image(predicted, target, 2).mean(dim=1).numpy())
            parts.setdefault("iou", []).append(iou_per_image(predicted, target, 2).mean(dim=1).numpy())
        else:
            parts.setdefault("labels", []).append(target.long().numpy())
            parts.setdefault("probs", []).append(torch.softmax(logits, dim=1).numpy())
    keys = ("dice", "iou") if name == "unet" else ("labels", "probs")
    empty = {"dice": np.zeros(0), "iou": np.zeros(0), "labels": np.zeros(0, dtype=np.int64), "probs": np.zeros((0, 2))}
    return names, {key: np.concatenate(parts[key]) if key in parts else empty[key] for key in keys}


def metrics_of(name: str, summary: dict[str, np.ndarray], n_resamples: int, seed: int) -> dict[str, Any]:
    """``{task: metrics}`` of one model's per-sample summary, CIs with ``n_resamples`` resamples."""
    if name == "unet":
        metrics = segmentation_metrics(summary["dice"], summary["iou"], n_resamples=n_resamples, seed=seed)
    else:
        metrics = classification_metrics(summary["labels"], summary["probs"], n_resamples=n_resamples, seed=seed)
    return {SPEC[name]["task"]: metrics}


def evaluate(name: str, model: torch.nn.Module, loader: DataLoader, channels_last: bool, n_resamples: int,
             seed: int, limit: int | None) -> dict[str, Any]:
    """Metrics of ``model`` over ``loader`` (``{task: metrics}``), CIs with ``n_resamples`` resamples."""
    return metrics_of(name, predict(name, model, loader, channels_last, limit)[1], n_resamples, seed)


def save_predictions(path: Path, task: str, names: list[str], summary: dict[str, np.ndarray]) -> None:
    """``predictions_test.npz``: ``task`` (the medmtl task name), ``names`` and the summary's arrays,
    which ``benchmarks/remedies_paired.py`` pairs with a medmtl run on the same nodules."""
    np.savez(path, task=np.array(task), names=np.array(names), **summary)


def _better(value: float, best: float) -> bool:
    return not math.isnan(value) and (math.isnan(best) or value > best)


def train_one(name: str, datasets: dict, args: argparse.Namespace, batch_size: int, optim: Any, out: Path
              ) -> dict[str, Any]:
    """Train ``name``, keep the best validation epoch, write its val/test metrics; returns the test metrics."""
    spec = SPEC[name]
    out.mkdir(parents=True, exist_ok=True)
    limit = args.limit_batches
    torch.manual_seed(args.seed)
    model = build_model(name)
    if args.channels_last:
        model = model.to(memory_format=torch.channels_last_3d)
    n_params = sum(p.numel() for p in model.parameters())
    loss_fn = make_loss(name)
    optimizer = torch.optim.AdamW(model.parameters(), lr=optim.lr, weight_decay=optim.weight_decay)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, args.epochs))
    train_loader = DataLoader(datasets["train"], batch_size=batch_size, shuffle=True, num_workers=0,
                              collate_fn=collate_samples, generator=torch.Generator().manual_seed(args.seed))
    val_loader = DataLoader(datasets["val"], batch_size=batch_size, shuffle=False, collate_fn=collate_samples)
    test_loader = DataLoader(datasets["test"], batch_size=batch_size, shuffle=False, collate_fn=collate_samples)
    print(f"[{name}] {n_params / 1e6:.2f} M parameters, {len(datasets['train'])} train / {len(datasets['val'])} val / "
          f"{len(datasets['test'])} test volumes, {args.epochs} epochs, batch {batch_size}"
          + (f", at most {limit} batches per pass (debug)" if limit else ""), flush=True)

    history, best_value, best_epoch, best_state = [], math.nan, 0, None
    started = time.perf_counter()
    for epoch in range(1, args.epochs + 1):
        epoch_start = time.perf_counter()
        model.train()
        total, count = 0.0, 0
        lr = optimizer.param_groups[0]["lr"]
        for batch in itertools.islice(train_loader, limit):
            found = labelled(batch, spec["target"])
            if found is None:
                continue
            image, target = found
            loss = loss_fn(model(prepare(image, args.channels_last)), target)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += float(loss.detach()) * len(image)
            count += len(image)
        scheduler.step()
        train_seconds = time.perf_counter() - epoch_start
        # per-epoch validation without CIs (as medmtl's trainer); the CIs come once, at the end
        value = float(evaluate(name, model, val_loader, args.channels_last, 0, args.seed, limit)
                      [spec["task"]][spec["metric"]])
        seconds = time.perf_counter() - epoch_start
        improved = _better(value, best_value) or best_state is None
        if improved:
            best_value, best_epoch = value, epoch
            best_state = copy.deepcopy(model.state_dict())
            torch.save(best_state, out / "best.pt")
        row = {"epoch": epoch, "train_loss": total / max(count, 1), f"val_{spec['metric']}": value, "lr": lr,
               "train_seconds": round(train_seconds, 2), "seconds": round(seconds, 2)}
        history.append(row)
        print(f"[{name}] epoch {epoch}/{args.epochs}  train loss {row['train_loss']:.4f}  "
              f"val {spec['metric']} {value:.4f}{' *' if improved else ''}  {seconds:.1f} s", flush=True)
        with open(out / "history.csv", "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(row))
            writer.writeheader()
            writer.writerows(history)
    train_time = time.perf_counter() - started

    model.load_state_dict(best_state)
    val_metrics = evaluate(name, model, val_loader, args.channels_last, N_BOOTSTRAP, args.seed, limit)
    names, summary = predict(name, model, test_loader, args.channels_last, limit)
    save_predictions(out / "predictions_test.npz", spec["task"], names, summary)
    test_metrics = metrics_of(name, summary, N_BOOTSTRAP, args.seed)
    (out / "metrics_val.json").write_text(json.dumps(val_metrics, indent=2))
    run = {"model": name, "definition": spec["title"], "epochs": args.epochs, "seed": args.seed,
           "batch_size": batch_size, "optimizer": f"AdamW lr {optim.lr} weight decay {optim.weight_decay}, cosine",
           "threads": args.threads, "channels_last": args.channels_last, "limit_batches": limit,
           "parameters": n_params, "best_epoch": best_epoch, f"best_val_{spec['metric']}": best_value,
           "train_seconds": round(train_time, 1), "split_test": str(Path(args.split_test).resolve())}
    (out / "run.json").write_text(json.dumps(run, indent=2))
    (out / "metrics_test.json").write_text(json.dumps(test_metrics, indent=2))  # last: marks the model done
    print(f"[{name}] best epoch {best_epoch} (val {spec['metric']} {best_value:.4f}); {train_time / 60:.1f} min",
          flush=True)
    return test_metrics


def predict_finished(name: str, test_set: Any, args: argparse.Namespace, batch_size: int, out: Path) -> None:
    """A model finished before ``predictions_test.npz`` existed: its test predictions from ``best.pt``,
    checked against the ``metrics_test.json`` it wrote then."""
    model = build_model(name)
    model.load_state_dict(torch.load(out / "best.pt", map_location="cpu", weights_only=True))
    if args.channels_last:
        model = model.to(memory_format=torch.channels_last_3d)
    loader = DataLoader(test_set, batch_size=batch_size, shuffle=False, collate_fn=collate_samples)
    names, summary = predict(name, model, loader, args.channels_last, args.limit_batches)
    spec = SPEC[name]
    again = metrics_of(name, summary, 0, args.seed)[spec["task"]][spec["metric"]]
    recorded = json.loads((out / "metrics_test.json").read_text())[spec["task"]][spec["metric"]]
    if not math.isclose(again, recorded, abs_tol=1e-4):
        raise SystemExit(f"[{name}] {out / 'best.pt'} gives test {spec['metric']} {again:.4f}, not the recorded "
                         f"{recorded:.4f}: not the model of {out / 'metrics_test.json'}")
    save_predictions(out / "predictions_test.npz", spec["task"], names, summary)
    print(f"[{name}] wrote {out / 'predictions_test.npz'} from best.pt (test {spec['metric']} {again:.4f})", flush=True)


def _ci(metrics: dict[str, Any], key: str) -> str:
    value = metrics.get(key)
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    lo, hi = metrics.get(f"{key}_ci95", [math.nan, math.nan])
    interval = f" [{lo:.3f}, {hi:.3f}]" if not (math.isnan(lo) or math.isnan(hi)) else ""
    return f"{value:.3f}{interval}"


def markdown_row(name: str, metrics: dict[str, Any]) -> str:
    spec = SPEC[name]
    task = metrics[spec["task"]]
    if name == "unet":
        cells = ["–", "–", _ci(task, "dice"), _ci(task, "iou")]
    else:
        cells = [_ci(task, "auc"), f"{task['accuracy']:.3f}" if not math.isnan(task["accuracy"]) else "n/a",
                 "–", "–"]
    return f"| {spec['title']} | " + " | ".join(cells) + f" | {task.get('n', '')} |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="output folder (one sub-folder per model)")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--models", default=",".join(MODELS), help="comma-separated: unet, resnet18")
    parser.add_argument("--split-test", required=True, help="file of the test (fold 4) nodule names")
    parser.add_argument("--config", default=str(CONFIG), help="medmtl config whose data section is used")
    parser.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--limit-batches", type=int, default=None,
                        help="debug: at most this many batches per training epoch and per evaluation pass")
    args = parser.parse_args()
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    for name in models:
        if name not in SPEC:
            parser.error(f"unknown model {name!r}; choose from {', '.join(MODELS)}")
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    results: dict[str, dict[str, Any]] = {}
    todo, unpredicted = [], []
    for name in models:
        done = out / name / "metrics_test.json"
        if done.is_file():
            print(f"[{name}] done before: {done} (skipped)")
            results[name] = json.loads(done.read_text())
            if not (out / name / "predictions_test.npz").is_file():
                unpredicted.append(name)
        else:
            todo.append(name)
    if todo or unpredicted:
        split_test = Path(args.split_test).resolve()
        cfg = load_config(args.config, [f"data.split_test={split_test}", "data.fold=1", f"seed={args.seed}",
                                        f"trainer.max_epochs={args.epochs}"])
        datasets = build_datasets(cfg.data)
        for name in todo:
            results[name] = train_one(name, datasets, args, cfg.data.batch_size, cfg.optim, out / name)
        for name in unpredicted:
            predict_finished(name, datasets["test"], args, cfg.data.batch_size, out / name)
    print("\n| model | AUC [95% CI] | accuracy | Dice [95% CI] | IoU [95% CI] | n test |\n|---|---|---|---|---|---|")
    for name in models:
        print(markdown_row(name, results[name]))


if __name__ == "__main__":
    main()
