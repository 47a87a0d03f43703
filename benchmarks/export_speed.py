"""Inference speed of one model in PyTorch eager mode, as TorchScript and through onnxruntime (issue 13).

The model of a preset (default ``busi-cls-seg``: ``small_cnn`` width 16, 5 scales, classification +
segmentation heads; random weights — speed does not depend on them) is exported with
:func:`medmtl.export.export_model` to TorchScript and ONNX in a temporary folder; then one batch of
phantom images goes through each variant ``--repeats`` times, the variants interleaved (one call of
each in turn, the order rotated every round) after ``--warmup`` calls each, so that the shared
machine's load hits all three alike. Reported: images/s from the median call time, the ratio to
eager, and the largest difference of each variant's outputs from eager on that batch.

    .venv/bin/python benchmarks/export_speed.py --preset busi-cls-seg --batch 16 --threads 2 --repeats 15
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

from medmtl.builders import build_model
from medmtl.config import load_config
from medmtl.data.phantom import make_phantom_records
from medmtl.export import export_model
from medmtl.exported import OnnxRuntimeModel, TorchScriptModel


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="busi-cls-seg")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--warmup", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    config = load_config(args.preset)
    size = config.data.image_size
    torch.manual_seed(0)
    model = build_model(config).eval()
    records = make_phantom_records(args.batch, size, seed=0)
    images = torch.stack([torch.from_numpy(r.image_array).float()[None] for r in records])
    if config.data.channels != 1:
        images = images.expand(-1, config.data.channels, -1, -1).contiguous()

    with tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        export_model(model, config, Path(folder) / "model.pt", "torchscript")
        traced_s = time.perf_counter() - started
        started = time.perf_counter()
        export_model(model, config, Path(folder) / "model.onnx", "onnx")
        onnx_s = time.perf_counter() - started
        variants: dict[str, Callable[[torch.Tensor], dict]] = {
            "PyTorch eager": model,
            "TorchScript": TorchScriptModel(Path(folder) / "model.pt"),
            "onnxruntime": OnnxRuntimeModel(Path(folder) / "model.onnx", threads=args.threads),
        }
        with torch.no_grad():
            reference = model(images)
            diffs = {name: max(float((run(images)[task] - reference[task]).abs().max()) for task in reference)
                     for name, run in variants.items()}
            for run in variants.values():
                for _ in range(args.warmup):
                    run(images)
            times: dict[str, list[float]] = {name: [] for name in variants}
            names = list(variants)
            for round_index in range(args.repeats):
                shift = round_index % len(names)
                for name in names[shift:] + names[:shift]:
                    started = time.perf_counter()
                    variants[name](images)
                    times[name].append(time.perf_counter() - started)

    encoder = config.model.encoder
    print(f"{args.preset}: {encoder.name} {encoder.options}, tasks {[t.kind for t in config.model.tasks]}; "
          f"batch {args.batch} of {config.data.channels}×{size}×{size}, {args.threads} threads, median of "
          f"{args.repeats} calls after {args.warmup} warm-up calls each, variants interleaved; export took "
          f"{traced_s:.1f} s (TorchScript) and {onnx_s:.1f} s (ONNX)\n")
    print("| variant | median call (s) | images/s | × eager | max \\|Δ\\| vs eager |\n|---|---|---|---|---|")
    eager = statistics.median(times["PyTorch eager"])
    for name, values in times.items():
        median = statistics.median(values)
        print(f"| {name} | {median:.3f} | {args.batch / median:.1f} | {eager / median:.2f} | {diffs[name]:.1e} |")


if __name__ == "__main__":
    main()
