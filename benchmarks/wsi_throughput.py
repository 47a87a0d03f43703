"""Compression throughput and memory on a synthetic (or real) whole-slide image.

Measures, for one slide and one patch encoder (untrained weights: speed does not depend on them):

- pure encoder throughput: tiles/s encoding tiles already in memory, same batch size;
- end-to-end throughput: tiles/s of ``compress_slide`` (tissue detection, tiling, threaded
  reading/decoding, encoding, zarr writing), in a fresh process;
- their ratio (goal ≥ 0.9) and the peak resident memory of the end-to-end process.

    .venv/bin/python benchmarks/wsi_throughput.py --size 40000 --encoder resnet18
    .venv/bin/python benchmarks/wsi_throughput.py --slide ../shared/data/wsi/cmu-1-small-region.svs
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from medmtl.encoders import create_encoder
from medmtl.wsi import detect_tissue, open_slide, read_tile, tile_slide
from medmtl.wsi.compress import CompressionSettings, compress_slide
from medmtl.wsi.patch_encoder import PatchEncoder
from medmtl.wsi.synthetic import make_synthetic_slide

ENCODER_OPTIONS = {"small_cnn": {"width": 16, "stages": 5}}


def make_encoder(name: str) -> PatchEncoder:
    torch.manual_seed(0)
    return PatchEncoder(create_encoder(name, in_channels=3, **ENCODER_OPTIONS.get(name, {})), 3, source=name)


def settings_from(args: argparse.Namespace) -> CompressionSettings:
    return CompressionSettings(patch_size=args.patch, target_mpp=args.mpp, slide_mpp=args.slide_mpp,
                               batch_size=args.batch, readers=args.readers)


def pure_throughput(slide_path: Path, encoder: PatchEncoder, settings: CompressionSettings, n_tiles: int) -> float:
    """Tiles/s of the encoder alone on ``n_tiles`` tissue tiles held in memory."""
    with open_slide(slide_path, mpp=settings.slide_mpp) as slide:
        grid = tile_slide(slide, settings.patch_size, target_mpp=settings.target_mpp, tissue=detect_tissue(slide),
                          min_tissue_fraction=settings.min_tissue_fraction, include_partial=True)
        count = min(n_tiles, len(grid))
        tiles = np.stack([read_tile(slide, grid, i) for i in range(count)])
    encoder.encode(tiles[: settings.batch_size])  # warm-up
    start = time.perf_counter()
    for first in range(0, count, settings.batch_size):
        encoder.encode(tiles[first:first + settings.batch_size])
    return count / (time.perf_counter() - start)


def end_to_end(slide_path: Path, encoder_name: str, args: argparse.Namespace) -> dict:
    """Run the compression in a fresh process; its tiles/s and peak RSS (MiB)."""
    command = [sys.executable, __file__, "--child", "--slide", str(slide_path), "--encoder", encoder_name,
               "--patch", str(args.patch), "--mpp", str(args.mpp), "--batch", str(args.batch),
               "--readers", str(args.readers), "--threads", str(args.threads)]
    if args.slide_mpp:
        command += ["--slide-mpp", str(args.slide_mpp)]
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    result = json.loads(output.strip().splitlines()[-1])
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    result["peak_rss_mib"] = peak / 1024 if peak > before else float("nan")
    return result


def child(args: argparse.Namespace) -> None:
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as out:
        result = compress_slide(args.slide, make_encoder(args.encoder), Path(out), settings_from(args))
    print(json.dumps({"tiles": result.tiles, "seconds": result.seconds, "tiles_per_second": result.tiles_per_second,
                      "grid": list(result.grid_shape)}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slide", type=Path, help="an existing slide (default: write a synthetic one)")
    parser.add_argument("--size", type=int, default=40000, help="side of the synthetic slide in pixels")
    parser.add_argument("--workdir", type=Path, default=Path("runs/wsi-bench"))
    parser.add_argument("--encoder", default="small_cnn")
    parser.add_argument("--patch", type=int, default=128)
    parser.add_argument("--mpp", type=float, default=0.5)
    parser.add_argument("--slide-mpp", type=float, default=None)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--readers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--pure-tiles", type=int, default=1024)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    torch.set_num_threads(args.threads)
    slide = args.slide
    if slide is None:
        slide = args.workdir / f"synthetic-{args.size}.tif"
        if not slide.exists():
            start = time.perf_counter()
            make_synthetic_slide(slide, args.size, args.size, label=1, seed=0, show_progress=True)
            print(f"wrote {slide} in {time.perf_counter() - start:.0f} s")
    encoder = make_encoder(args.encoder)
    pure = pure_throughput(slide, encoder, settings_from(args), args.pure_tiles)
    e2e = end_to_end(slide, args.encoder, args)
    print(f"| {slide.name} | {args.encoder} | {e2e['grid'][0]}×{e2e['grid'][1]} | {e2e['tiles']} | "
          f"{pure:.1f} | {e2e['tiles_per_second']:.1f} | {e2e['tiles_per_second'] / pure:.2f} | "
          f"{e2e['peak_rss_mib']:.0f} |")


if __name__ == "__main__":
    main()
