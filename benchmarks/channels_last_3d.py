"""Training-step time of 3D models in the default (contiguous) and the channels-last memory layout.

One forward + backward of a classification + segmentation + reconstruction model on a batch of
random volumes, best of ``--steps`` after one warm-up, both layouts in this one process.

    .venv/bin/python benchmarks/channels_last_3d.py --size 32 --batch 8 --threads 2
"""

from __future__ import annotations

import argparse
import time

import torch

from medmtl.encoders import create_encoder
from medmtl.model import MultiTaskModel
from medmtl.tasks import task_class

ENCODERS = {"small_cnn": {"width": 8, "stages": 4}, "unet": {"channels": [16, 32, 64, 128]}}


def step_time(model: MultiTaskModel, image: torch.Tensor, steps: int) -> float:
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    times = []
    for _ in range(steps + 1):
        start = time.perf_counter()
        outputs = model(image)
        loss = sum(out.float().mean() for out in outputs.values())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        times.append(time.perf_counter() - start)
    return min(times[1:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    image = torch.rand(args.batch, 1, args.size, args.size, args.size)
    print(f"batch {args.batch} of {args.size}³, {args.threads} threads, best of {args.steps} steps\n")
    print("| encoder | contiguous (s) | channels-last (s) | ratio |\n|---|---|---|---|")
    for name, options in ENCODERS.items():
        times = []
        for channels_last in (False, True):
            torch.manual_seed(0)
            model = MultiTaskModel(create_encoder(name, 1, spatial_dims=3, **options),
                                   [task_class(kind)() for kind in ("classification", "segmentation", "reconstruction")])
            times.append(step_time(model.use_channels_last(channels_last), image, args.steps))
        print(f"| {name} | {times[0]:.3f} | {times[1]:.3f} | {times[1] / times[0]:.2f} |", flush=True)


if __name__ == "__main__":
    main()
