"""The cost side of 3D (issue 11): step times, framework overhead and peak memory of volume training.

Model everywhere: the LIDC benchmark's multi-task model (benchmarks/configs/lidc-mtl.yaml) on
phantom CT-like volumes (``medmtl.data.phantom3d``): encoder ``unet`` (``--channels``, default
16,32,64,128), classification (2 classes, dropout 0.2) + segmentation (Dice+CE) + reconstruction
(MSE, no skips), fixed weights 1, AdamW, channels-last weights and inputs (``use_channels_last()``,
what training does for 3D by default). Three parts (``--parts``, default all):

(a) ``step``: training-step time (forward, backward, AdamW; the training module's own ``_step``,
    ``training_steps.time_training_steps`` as in step_time.py) of the multi-task model against the
    three single-task models with the same encoder, on one fixed batch (``--batch`` volumes of
    ``--size``³); all in this process. One reference row: the multi-task model without channels-last.
(b) ``throughput``: training volumes/s of medmtl's own training path against a plain PyTorch loop,
    in this process, on the same cached training dataset (``--train-volumes`` phantoms of
    ``--size``³, flips as LIDC; its cache is filled before either is timed), same batch size,
    threads, epochs (``--epochs``) and so the same number of steps, same initial weights (the same
    ``MultiTaskModel`` built by ``medmtl.builders.build_model`` after seeding with ``--seed``), same
    ``torch.use_deterministic_algorithms`` setting (the trainer's default, on), no validation in
    either.
    - medmtl: ``MultiTaskModule`` fitted by the ``lightning.Trainer`` that ``medmtl.training.run``
      makes (``run._make_trainer``: checkpoint callbacks writing ``last.ckpt`` every epoch, per-epoch
      reseeding, CSV + TensorBoard loggers, ``log_every_n_steps`` 10, progress bar off) over the loader
      ``medmtl.training.loaders.make_loader`` makes (epoch sampler, per-sample seeded augmentation).
      Everything it does per step stays in: ``self.log`` of the losses and weights, the finite-loss check.
      What ``train()`` adds around the fit (run lock, config files, the final evaluation) is not timed.
    - plain: ``DataLoader(shuffle=True, collate_fn=collate_samples)``, ``model(image, batch)``,
      ``model.losses`` summed, ``zero_grad``/``backward``/``AdamW.step``, the cosine schedule stepped
      per epoch, the epoch's mean loss from ``loss.item()``; no checkpoints, no logging.
    Times are the whole fit (first epoch included) and the steady state from the start of epoch 2
    to the end (checkpoint writes included); ``--repeats`` alternates which of the two runs first.
(c) ``memory``: peak resident memory (``getrusage(RUSAGE_SELF).ru_maxrss``) of a fresh Python
    process that trains the multi-task model on a batch of ``--memory-batch`` volumes of
    ``--memory-sizes``³ for ``--memory-steps`` steps (after one warm-up step) on CPU; also the peak
    before the first step (torch, the model and the data).

Full size (``--size 32 --batch 8`` as LIDC; memory at 64³)::

    .venv/bin/python benchmarks/volume_cost.py --threads 2
    # smoke test: --size 16 --batch 2 --steps 2 --warmup 1 --train-volumes 4 --epochs 2 --memory-sizes 16 --memory-steps 2
"""

from __future__ import annotations

import argparse
import json
import logging
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import torch

REPO = Path(__file__).resolve().parent.parent


# ------------------------------------------------------------------------------------------ models
def task_specs(names: list[str]) -> list[dict[str, Any]]:
    """The LIDC config's task entries (benchmarks/configs/lidc-mtl.yaml) for ``names``."""
    specs = {
        "classification": {"kind": "classification", "name": "classification", "num_classes": 2, "dropout": 0.2},
        "segmentation": {"kind": "segmentation", "name": "segmentation", "num_classes": 2, "loss": "dice_ce"},
        "reconstruction": {"kind": "reconstruction", "name": "reconstruction", "loss": "mse", "use_skips": False},
    }
    return [dict(specs[name]) for name in names]


def make_model(names: list[str], channels: list[int], channels_last: bool = True):
    """``MultiTaskModel`` of a 3D ``unet`` encoder and the tasks ``names`` (channels-last by default)."""
    from medmtl.encoders import create_encoder
    from medmtl.model import MultiTaskModel
    from medmtl.tasks import task_class

    encoder = create_encoder("unet", in_channels=1, spatial_dims=3, channels=list(channels))
    tasks = []
    for spec in task_specs(names):
        kind = spec.pop("kind")
        tasks.append(task_class(kind)(**spec))
    model = MultiTaskModel(encoder, tasks, image_channels=1)
    return model.use_channels_last() if channels_last else model


def make_module(model):
    from medmtl.balancing import create_balancer
    from medmtl.training.lightning_module import MultiTaskModule

    return MultiTaskModule(model, create_balancer("fixed", list(model.tasks), {}))


def phantom_batch(n: int, size: int, seed: int = 0) -> dict:
    """One collated batch of ``n`` phantom volumes of ``size``³ (image, mask, label, value, survival)."""
    from medmtl.data.collate import collate_samples
    from medmtl.data.phantom3d import make_phantom3d_records
    from medmtl.data.volume_dataset import VolumeDataset

    records = make_phantom3d_records(n, image_shape=(size,) * 3, seed=seed, malignant_fraction=0.5, stream=0,
                                     name_prefix="bench")
    dataset = VolumeDataset(records, channels=1, image_shape=(size,) * 3)
    return collate_samples([dataset[i] for i in range(n)])


# ------------------------------------------------------------------------------------ (a) step time
def part_step(args: argparse.Namespace) -> None:
    from training_steps import time_training_steps

    batch = phantom_batch(args.batch, args.size, args.seed)
    three = ["classification", "segmentation", "reconstruction"]
    variants = {
        "classification only": (["classification"], True),
        "segmentation only (Dice + CE)": (["segmentation"], True),
        "reconstruction only (MSE, no skips)": (["reconstruction"], True),
        "**multi-task** (cls + seg + recon)": (three, True),
        "multi-task, channels-last off (reference)": (three, False),
    }
    print(f"\n### (a) Training-step time: encoder unet {args.channels}, {args.batch} volumes of {args.size}³, "
          f"{args.threads} threads, median of {args.steps} steps after {args.warmup} warm-up steps\n")
    print("| model | parameters (M) | step time (s) | min – max (s) |\n|---|---|---|---|")
    medians = {}
    for name, (tasks, channels_last) in variants.items():
        torch.manual_seed(args.seed)
        model = make_model(tasks, args.channels, channels_last)
        params = sum(p.numel() for p in model.parameters()) / 1e6
        times = time_training_steps(make_module(model), batch, args.steps, args.warmup)
        medians[name] = statistics.median(times)
        print(f"| {name} | {params:.2f} | {medians[name]:.3f} | {min(times):.3f} – {max(times):.3f} |", flush=True)
    single = sum(medians[name] for name in list(variants)[:3])
    multi = medians["**multi-task** (cls + seg + recon)"]
    print(f"| sum of the three single-task models | | {single:.3f} | |")
    print(f"\nmulti-task / sum of single-task = {multi / single:.2f}; "
          f"channels-last speed-up of the multi-task step = "
          f"{medians['multi-task, channels-last off (reference)'] / multi:.2f}×")


# ----------------------------------------------------------------------------------- (b) throughput
def phantom_config(args: argparse.Namespace) -> Any:
    from medmtl.config import config_from_dict

    raw = {
        "seed": args.seed,
        "data": {"kind": "phantom", "image_size": args.size, "channels": 1, "batch_size": args.batch,
                 "phantom": {"n_train": args.train_volumes, "n_val": 0, "malignant_fraction": 0.5, "seed": 0},
                 "augment": {"hflip": True, "vflip": True, "zflip": True}},
        "model": {"spatial_dims": 3, "encoder": {"name": "unet", "options": {"channels": list(args.channels)}},
                  "tasks": task_specs(["classification", "segmentation", "reconstruction"])},
        "loss": {"balancer": "fixed"},
        "optim": {"lr": 0.002, "scheduler": "cosine"},
        "trainer": {"max_epochs": args.epochs, "progress_bar": False, "num_threads": args.threads,
                    "monitor": "val/classification/auc"},
    }
    return config_from_dict(raw, source="volume_cost.py")


class EpochClock:
    """perf_counter at the start of each training epoch (same hook point in both loops)."""

    def __init__(self) -> None:
        self.starts: list[float] = []

    def mark(self) -> None:
        self.starts.append(time.perf_counter())


def run_medmtl(config: Any, dataset: Any, workdir: Path) -> tuple[float, float, int]:
    """Fit with medmtl's trainer; returns (whole fit s, from epoch 2 start to the end s, steps)."""
    from lightning.pytorch import Callback

    from medmtl.builders import build_balancer, build_model
    from medmtl.training.lightning_module import MultiTaskModule
    from medmtl.training.loaders import make_loader
    from medmtl.training.run import _make_trainer, monitor_for
    from medmtl.training.seeding import seed_globals

    clock = EpochClock()

    class Clock(Callback):
        def on_train_epoch_start(self, trainer, pl_module) -> None:
            clock.mark()

    seed_globals(config.seed)
    model = build_model(config)  # channels-last for 3D, as training builds it
    module = MultiTaskModule(model, build_balancer(config, model), config.optim)
    loader = make_loader(dataset, config.data.batch_size, config.data.num_workers, shuffle=True, seed=config.seed)
    monitor, mode = monitor_for(config, model)
    shutil.rmtree(workdir, ignore_errors=True)
    trainer = _make_trainer(config, workdir, monitor, mode, loader)
    trainer.callbacks.insert(0, Clock())
    start = time.perf_counter()
    trainer.fit(module, loader)
    end = time.perf_counter()
    steady = end - clock.starts[1] if len(clock.starts) > 1 else float("nan")
    return end - start, steady, int(trainer.global_step)


def run_plain(config: Any, dataset: Any) -> tuple[float, float, int]:
    """The same model, data, optimiser and schedule in a plain PyTorch loop; same return values."""
    from torch.utils.data import DataLoader

    from medmtl.builders import build_model
    from medmtl.data.collate import collate_samples
    from medmtl.training.seeding import seed_globals

    torch.use_deterministic_algorithms(config.trainer.deterministic)  # what the trainer sets, for like with like
    seed_globals(config.seed)
    model = build_model(config)
    clock = EpochClock()
    start = time.perf_counter()
    loader = DataLoader(dataset, batch_size=config.data.batch_size, shuffle=True, num_workers=config.data.num_workers,
                        collate_fn=collate_samples, generator=torch.Generator().manual_seed(config.seed))
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=config.optim.lr,
                                  weight_decay=config.optim.weight_decay)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config.trainer.max_epochs)
    steps = 0
    for _ in range(config.trainer.max_epochs):
        clock.mark()
        model.train()
        total = 0.0
        for batch in loader:
            outputs = model(batch["image"], batch)
            loss = sum(model.losses(outputs, batch).values())
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += loss.item()
            steps += 1
        scheduler.step()
    end = time.perf_counter()
    steady = end - clock.starts[1] if len(clock.starts) > 1 else float("nan")
    return end - start, steady, steps


def part_throughput(args: argparse.Namespace) -> None:
    from medmtl.builders import build_model
    from medmtl.training.loaders import build_run_datasets

    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    logging.getLogger("lightning").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=".*could not find the monitored key.*")
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    warnings.filterwarnings("ignore", message=".*LeafSpec.*")
    warnings.filterwarnings("ignore", message=".*no `val_dataloader`.*")
    warnings.filterwarnings("ignore", message=".*smaller than the logging interval.*")
    config = phantom_config(args)
    dataset = build_run_datasets(config, build_model(config))["train"]
    for index in range(len(dataset)):  # fill the cache: both loops read preprocessed volumes
        dataset[index]
    n = len(dataset)
    workdir = Path(tempfile.mkdtemp(prefix="volume_cost-"))
    print(f"\n### (b) Training throughput: {n} phantom volumes of {args.size}³, batch {args.batch}, "
          f"{args.epochs} epochs ({-(-n // args.batch)} steps each), {args.threads} threads, no validation, "
          f"deterministic={config.trainer.deterministic}\n")
    print("| repeat | loop | steps | whole fit (s) | volumes/s | from epoch 2 (s) | volumes/s |\n"
          "|---|---|---|---|---|---|---|")
    results: dict[str, list[tuple[float, float]]] = {"plain": [], "medmtl": []}
    total_steps = 0
    try:
        for repeat in range(1, args.repeats + 1):
            order = ["plain", "medmtl"] if repeat % 2 else ["medmtl", "plain"]
            for loop in order:
                if loop == "medmtl":
                    whole, steady, steps = run_medmtl(config, dataset, workdir / f"run{repeat}")
                else:
                    whole, steady, steps = run_plain(config, dataset)
                results[loop].append((whole, steady))
                total_steps = steps
                later = n * (args.epochs - 1)
                label = "medmtl (Lightning trainer)" if loop == "medmtl" else "plain PyTorch"
                print(f"| {repeat} | {label} | {steps} | {whole:.2f} | {n * args.epochs / whole:.2f} | "
                      f"{steady:.2f} | {later / steady if later else float('nan'):.2f} |", flush=True)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    for column, title in ((0, "whole fit"), (1, "from epoch 2")):
        ratios = [m[column] / p[column] for m, p in zip(results["medmtl"], results["plain"])]
        median = statistics.median(ratios)
        print(f"\n{title}: medmtl time / plain time = {' / '.join(f'{r:.3f}' for r in ratios)} "
              f"(median {median:.3f}; overhead {100 * (median - 1):+.1f} %, goal < +10 %: "
              f"{'met' if median < 1.10 else 'NOT met'})")
    extra = statistics.median(m[0] - p[0] for m, p in zip(results["medmtl"], results["plain"]))
    print(f"\nmedian extra time of the medmtl fit: {extra:.2f} s = {1000 * extra / max(total_steps, 1):.1f} ms "
          f"per step ({total_steps} steps; checkpoint writes and logging included)")


# --------------------------------------------------------------------------------------- (c) memory
def memory_child(spec: dict[str, Any]) -> None:
    """In a fresh process: peak RSS before and after a few training steps; one JSON line on stdout."""
    torch.set_num_threads(spec["threads"])
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from training_steps import time_training_steps

    batch = phantom_batch(spec["batch"], spec["size"], spec["seed"])
    torch.manual_seed(spec["seed"])
    module = make_module(make_model(["classification", "segmentation", "reconstruction"], spec["channels"]))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    times = time_training_steps(module, batch, spec["steps"], 1)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"before_kib": before, "peak_kib": peak, "step_s": statistics.median(times)}))


def part_memory(args: argparse.Namespace) -> None:
    print(f"\n### (c) Peak resident memory: multi-task model (unet {args.channels}), batch {args.memory_batch}, "
          f"{args.memory_steps} training steps after 1 warm-up step, CPU, {args.threads} threads, fresh process each\n")
    print("| volume | batch | peak RSS before training (MiB) | peak RSS (MiB) | step time (s) | < 6 GB |\n"
          "|---|---|---|---|---|---|")
    for size in args.memory_sizes:
        spec = {"size": size, "batch": args.memory_batch, "steps": args.memory_steps, "threads": args.threads,
                "channels": list(args.channels), "seed": args.seed}
        done = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--memory-child", json.dumps(spec)],
                              check=False, capture_output=True, text=True, cwd=REPO)
        if done.returncode != 0:
            print(f"| {size}³ | {args.memory_batch} | failed (exit {done.returncode}) | | | |")
            print(done.stderr[-2000:], file=sys.stderr)
            continue
        result = json.loads(done.stdout.strip().splitlines()[-1])
        peak_mib = result["peak_kib"] / 1024  # ru_maxrss is in KiB on Linux
        print(f"| {size}³ | {args.memory_batch} | {result['before_kib'] / 1024:.0f} | {peak_mib:.0f} | "
              f"{result['step_s']:.2f} | {'yes' if peak_mib < 6 * 1024 else 'NO'} |", flush=True)


# ------------------------------------------------------------------------------------------- main
def int_list(text: str) -> list[int]:
    return [int(v) for v in text.split(",") if v.strip()]


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--memory-child":
        memory_child(json.loads(sys.argv[2]))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", default="step,throughput,memory", help="comma-separated: step, throughput, memory")
    parser.add_argument("--size", type=int, default=32, help="volume side for (a) and (b)")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--channels", type=int_list, default=[16, 32, 64, 128], help="unet encoder channels")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=10, help="(a) timed steps")
    parser.add_argument("--warmup", type=int, default=3, help="(a) untimed warm-up steps")
    parser.add_argument("--train-volumes", type=int, default=96, help="(b) training volumes")
    parser.add_argument("--epochs", type=int, default=4, help="(b) epochs of each fit (>= 2 for the steady state)")
    parser.add_argument("--repeats", type=int, default=2, help="(b) fits of each loop, alternating which runs first")
    parser.add_argument("--memory-sizes", type=int_list, default=[64], help="(c) volume sides, e.g. 32,64")
    parser.add_argument("--memory-batch", type=int, default=8)
    parser.add_argument("--memory-steps", type=int, default=3)
    args = parser.parse_args()
    parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    unknown = sorted(set(parts) - {"step", "throughput", "memory"})
    if unknown:
        parser.error(f"unknown part(s) {unknown}")
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    if "step" in parts:
        part_step(args)
    if "throughput" in parts:
        part_throughput(args)
    if "memory" in parts:
        part_memory(args)


if __name__ == "__main__":
    main()
