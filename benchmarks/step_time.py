"""Training-step time of the four-task model against its three single-task parts.

Builds the four-task preset's model (classification + segmentation + reconstruction + detection)
and the single-task classification, segmentation and detection models with the same encoder, then
times forward + backward + optimiser step on one fixed batch of phantom images, all in this one
process. Also the four-task model with the reconstruction and detection weights at 0 (their heads
are not run, as in training) against the classification + segmentation model. Prints a Markdown table.

    .venv/bin/python benchmarks/step_time.py --size 128 --batch 16 --encoder small_cnn --steps 10
"""

from __future__ import annotations

import argparse
import statistics

import torch
from training_steps import time_training_steps

from medmtl.balancing import create_balancer
from medmtl.data.collate import collate_samples
from medmtl.data.dataset import MultiTaskDataset
from medmtl.data.phantom import make_phantom_records
from medmtl.encoders import create_encoder
from medmtl.model import MultiTaskModel
from medmtl.tasks import (
    ClassificationTask,
    DetectionTask,
    ReconstructionTask,
    SegmentationTask,
)
from medmtl.training.lightning_module import MultiTaskModule

ENCODER_OPTIONS = {"small_cnn": {"width": 16, "stages": 5}}


def make_tasks(names: list[str]) -> list:
    factories = {
        "classification": lambda: ClassificationTask(num_classes=2),
        "segmentation": lambda: SegmentationTask(loss="generalized_dice"),
        "reconstruction": lambda: ReconstructionTask(),
        "detection": lambda: DetectionTask(),
    }
    return [factories[name]() for name in names]


def time_steps(names: list[str], batch: dict, encoder: str, steps: int, warmup: int,
               weights: dict[str, float] | None = None) -> list[float]:
    """Step times of the model with these tasks; heads with weight 0 are not run, as in training."""
    torch.manual_seed(0)
    model = MultiTaskModel(create_encoder(encoder, in_channels=1, **ENCODER_OPTIONS.get(encoder, {})),
                           make_tasks(names))
    module = MultiTaskModule(model, create_balancer("fixed", list(model.tasks), weights or {}))
    return time_training_steps(module, batch, steps, warmup)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--encoder", default="small_cnn")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    records = make_phantom_records(args.batch, image_size=args.size, seed=0, malignant_fraction=0.5, stream=0,
                                   name_prefix="bench")
    dataset = MultiTaskDataset(records, channels=1, image_size=args.size, boxes_from_masks=True)
    batch = collate_samples([dataset[i] for i in range(args.batch)])
    four = ["classification", "segmentation", "reconstruction", "detection"]
    variants = {
        "classification": (["classification"], None),
        "segmentation": (["segmentation"], None),
        "detection": (["detection"], None),
        "four-task": (four, None),
        "four-task, weights 1/1/0/0 (cls + seg)": (four, {"reconstruction": 0.0, "detection": 0.0}),
        "classification + segmentation": (["classification", "segmentation"], None),
    }
    medians = {}
    print(f"encoder {args.encoder}, {args.batch} images of {args.size}×{args.size}, {args.threads} threads, "
          f"median of {args.steps} steps after {args.warmup} warm-up steps\n")
    print("| model | step time (s) | min – max (s) |\n|---|---|---|")
    for name, (tasks, weights) in variants.items():
        times = time_steps(tasks, batch, args.encoder, args.steps, args.warmup, weights)
        medians[name] = statistics.median(times)
        print(f"| {name} | {medians[name]:.3f} | {min(times):.3f} – {max(times):.3f} |", flush=True)
    single = medians["classification"] + medians["segmentation"] + medians["detection"]
    print(f"| sum of the three single-task models | {single:.3f} | |")
    print(f"\nfour-task / sum of single-task = {medians['four-task'] / single:.2f}")
    switched = medians["four-task, weights 1/1/0/0 (cls + seg)"]
    print(f"four-task with two heads switched off / four-task = {switched / medians['four-task']:.2f}; "
          f"/ the cls + seg model = {switched / medians['classification + segmentation']:.2f}")


if __name__ == "__main__":
    main()
