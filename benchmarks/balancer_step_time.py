"""Training-step time of each loss balancer against equal weights, for 2 and 4 tasks.

One fixed batch of phantom images, ``small_cnn``; forward, the per-task gradients a gradient-level
balancer needs (the training module's own code path), backward and an AdamW step, all in this one
process, every balancer's step taken in turn in each round (``time_interleaved``: the machine's load
drifts over all of them alike). Prints a Markdown table of median step times and their ratio to
equal weights.

    .venv/bin/python benchmarks/balancer_step_time.py --size 64 --batch 16 --steps 8
"""

from __future__ import annotations

import argparse
import statistics

import torch
from training_steps import time_interleaved, training_stepper

from medmtl.balancing import BALANCERS, create_balancer
from medmtl.config import OptimConfig
from medmtl.data.collate import collate_samples
from medmtl.data.dataset import MultiTaskDataset
from medmtl.data.phantom import make_phantom_records
from medmtl.encoders import create_encoder
from medmtl.model import MultiTaskModel
from medmtl.tasks import (
    ClassificationTask,
    ReconstructionTask,
    RegressionTask,
    SegmentationTask,
)
from medmtl.training.lightning_module import MultiTaskModule

TASK_SETS = {
    2: lambda: [ClassificationTask(), SegmentationTask()],
    4: lambda: [ClassificationTask(), SegmentationTask(), ReconstructionTask(), RegressionTask()],
}


def make_module(name: str, level: str | None, tasks: int) -> MultiTaskModule:
    torch.manual_seed(0)
    model = MultiTaskModel(create_encoder("small_cnn", in_channels=1, width=16, stages=4), TASK_SETS[tasks]())
    options = {"level": level} if level else {}
    return MultiTaskModule(model, create_balancer(name, list(model.tasks), None, options), OptimConfig())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    records = make_phantom_records(args.batch, image_size=args.size, seed=0, stream=0, name_prefix="bench")
    dataset = MultiTaskDataset(records, channels=1, image_size=args.size)
    batch = collate_samples([dataset[i] for i in range(args.batch)])
    print(f"small_cnn (width 16, 4 scales), {args.batch} images of {args.size}×{args.size}, {args.threads} threads, "
          f"median of {args.steps} steps after {args.warmup} warm-up steps\n")
    print("| balancer | level | 2 tasks (s) | × equal | 4 tasks (s) | × equal |\n|---|---|---|---|---|---|")
    loss_level = sorted(name for name, spec in BALANCERS.items() if spec.cls.gradients is None and name != "equal")
    gradient = sorted(name for name, spec in BALANCERS.items() if spec.cls.gradients is not None)
    rows = [("equal", None), *((name, None) for name in loss_level)]
    rows += [(name, level) for level in ("representation", "shared") for name in gradient]
    medians: dict[tuple[str, str | None], list[float]] = {row: [] for row in rows}
    for tasks in (2, 4):
        steppers = {row: training_stepper(make_module(*row, tasks), batch) for row in rows}
        for row, times in time_interleaved(steppers, args.steps, args.warmup).items():
            medians[row].append(statistics.median(times))
    for (name, level), (two, four) in medians.items():
        equal_two, equal_four = medians[("equal", None)]
        print(f"| {name} | {level or 'loss'} | {two:.3f} | {two / equal_two:.2f} | {four:.3f} | {four / equal_four:.2f} |")


if __name__ == "__main__":
    main()
