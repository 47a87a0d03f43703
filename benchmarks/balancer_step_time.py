"""Training-step time of each loss balancer against equal weights, for 2 and 4 tasks.

One fixed batch of phantom images, ``small_cnn``; forward, the per-task gradients a gradient-level
balancer needs (the training module's own code path), backward and an AdamW step, all in this one
process. Prints a Markdown table of median step times and their ratio to equal weights.

    .venv/bin/python benchmarks/balancer_step_time.py --size 64 --batch 16 --steps 8
"""

from __future__ import annotations

import argparse
import statistics

import torch
from training_steps import time_training_steps

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


def time_balancer(name: str, level: str | None, tasks: int, batch: dict, steps: int, warmup: int) -> list[float]:
    torch.manual_seed(0)
    model = MultiTaskModel(create_encoder("small_cnn", in_channels=1, width=16, stages=4), TASK_SETS[tasks]())
    options = {"level": level} if level else {}
    module = MultiTaskModule(model, create_balancer(name, list(model.tasks), None, options), OptimConfig())
    return time_training_steps(module, batch, steps, warmup)


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
    reference: dict[int, float] = {}
    rows = [("equal", None), *((name, None) for name in ("fixed", "uncertainty", "dwa", "rlw"))]
    gradient = sorted(name for name, spec in BALANCERS.items() if spec.cls.gradients is not None)
    rows += [(name, level) for level in ("representation", "shared") for name in gradient]
    for name, level in rows:
        cells = []
        for tasks in (2, 4):
            median = statistics.median(time_balancer(name, level, tasks, batch, args.steps, args.warmup))
            reference.setdefault(tasks, median)
            cells += [f"{median:.3f}", f"{median / reference[tasks]:.2f}"]
        print(f"| {name} | {level or 'loss'} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
