"""Overhead of multi-task sliding-window inference over MONAI's single-output sliding window.

Builds a small 3D U-Net-like model (``small_cnn`` encoder + U-Net decoder for segmentation, and a
global-pool classification head; untrained: speed does not depend on the weights), then times, in
this one process and interleaved within each repeat, on one random volume:

- ``medmtl``: :func:`medmtl.sliding_window.sliding_window_predict` (segmentation stitched, classification
  averaged over the windows);
- ``monai, same net``: MONAI's ``sliding_window_inference`` with ``model(x)["segmentation"]`` as
  predictor (both heads run, only the dense output is kept): the wrapper's own overhead;
- ``monai, seg head only``: the same with ``model(x, tasks=["segmentation"])`` (the classification head
  is not run): the overhead including the global head.

Gaussian blending, eval mode, ``torch.inference_mode``. Prints a Markdown table of medians.

    .venv/bin/python benchmarks/sliding_window.py --size 96 --roi 48 --threads 2 --repeats 5
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
from monai.inferers import sliding_window_inference

from medmtl.encoders import create_encoder
from medmtl.model import MultiTaskModel
from medmtl.sliding_window import sliding_window_predict
from medmtl.tasks import ClassificationTask, SegmentationTask


def make_model(width: int, stages: int) -> MultiTaskModel:
    torch.manual_seed(0)
    encoder = create_encoder("small_cnn", 1, spatial_dims=3, width=width, stages=stages)
    return MultiTaskModel(encoder, [SegmentationTask(), ClassificationTask()]).eval()


def variants(model: MultiTaskModel, image: torch.Tensor, args: argparse.Namespace) -> dict[str, Callable[[], object]]:
    roi = (args.roi,) * 3
    common = {"overlap": args.overlap, "mode": "gaussian"}
    return {
        "medmtl sliding_window_predict (seg + cls)": lambda: sliding_window_predict(
            model, image, roi, sw_batch_size=args.sw_batch, **common),
        "monai, same net, dense output only": lambda: sliding_window_inference(
            image, roi, args.sw_batch, lambda x: model(x)["segmentation"], **common),
        "monai, segmentation head only": lambda: sliding_window_inference(
            image, roi, args.sw_batch, lambda x: model(x, tasks=["segmentation"])["segmentation"], **common),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=96, help="side of the cubic volume")
    parser.add_argument("--roi", type=int, default=48, help="side of the cubic window")
    parser.add_argument("--overlap", type=float, default=0.25)
    parser.add_argument("--sw-batch", type=int, default=4, help="windows per forward pass")
    parser.add_argument("--width", type=int, default=8)
    parser.add_argument("--stages", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = make_model(args.width, args.stages)
    image = torch.rand(1, 1, args.size, args.size, args.size, generator=torch.Generator().manual_seed(0))
    runs = variants(model, image, args)
    times: dict[str, list[float]] = {name: [] for name in runs}
    with torch.inference_mode():
        for repeat in range(args.warmup + args.repeats):
            for name, run in runs.items():  # interleaved, so drifting machine load hits every variant alike
                start = time.perf_counter()
                run()
                if repeat >= args.warmup:
                    times[name].append(time.perf_counter() - start)
    params = sum(p.numel() for p in model.parameters())
    print(f"volume {args.size}³, window {args.roi}³, overlap {args.overlap}, {args.sw_batch} windows per pass, "
          f"small_cnn width {args.width} × {args.stages} stages ({params / 1e6:.2f} M parameters), "
          f"{args.threads} threads, median of {args.repeats} after {args.warmup} warm-up\n")
    print("| variant | time (s) | min – max (s) | / monai same net |\n|---|---|---|---|")
    reference = statistics.median(times["monai, same net, dense output only"])
    for name, values in times.items():
        median = statistics.median(values)
        print(f"| {name} | {median:.3f} | {min(values):.3f} – {max(values):.3f} | {median / reference:.3f} |")
    seg_only = statistics.median(times["monai, segmentation head only"])
    ours = statistics.median(times["medmtl sliding_window_predict (seg + cls)"])
    print(f"\nmedmtl / monai same net = {ours / reference:.3f}; medmtl / monai seg head only = {ours / seg_only:.3f}")


if __name__ == "__main__":
    main()
