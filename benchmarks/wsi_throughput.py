"""Compression throughput and memory on a synthetic (or real) whole-slide image.

Measures, for one or more slides and one patch encoder (untrained weights: speed does not depend on them):

- pure encoder throughput: tiles/s encoding the slides' tissue tiles already in memory, same batch
  size (at least ``--pure-tiles`` tiles, cycling through a small slide's tiles);
- end-to-end throughput: tiles/s of ``compress_slide`` (tissue detection, tiling, threaded
  reading/decoding, encoding, zarr writing) over all slides, in a fresh process ("first": what one
  ``medmtl compress`` of these slides takes, imports and torch's first-call set-up included), and
  once more in the same process into another folder ("warm": what every further slide of a cohort costs);
- their ratios (goal ≥ 0.9) and the peak resident memory of the end-to-end process;
- with ``--stages``, where the end-to-end time goes: opening, tissue detection, tiling, store
  creation, reading the tiles (with the compression's own reader threads), encoding, row writes.

    .venv/bin/python benchmarks/wsi_throughput.py --size 40000 --encoder resnet18
    .venv/bin/python benchmarks/wsi_throughput.py --slide ../shared/data/wsi/cmu-1-small-region.svs --stages
    .venv/bin/python benchmarks/wsi_throughput.py --slide ../shared/data/glas/images/*.jpg --slide-mpp 0.62 \
        --mpp 0.62 --patch 64
"""

from __future__ import annotations

import argparse
import itertools
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from medmtl import grid_store
from medmtl.encoders import create_encoder
from medmtl.wsi import TileGrid, detect_tissue, open_slide, read_tile, tile_slide
from medmtl.wsi.compress import (
    CompressionSettings,
    _read_ahead,
    _RowWriter,
    compress_slide,
)
from medmtl.wsi.patch_encoder import PatchEncoder
from medmtl.wsi.synthetic import make_synthetic_slide

ENCODER_OPTIONS = {"small_cnn": {"width": 16, "stages": 5}}


def make_encoder(name: str) -> PatchEncoder:
    torch.manual_seed(0)
    return PatchEncoder(create_encoder(name, in_channels=3, **ENCODER_OPTIONS.get(name, {})), 3, source=name)


def settings_from(args: argparse.Namespace) -> CompressionSettings:
    return CompressionSettings(patch_size=args.patch, target_mpp=args.mpp, slide_mpp=args.slide_mpp,
                               batch_size=args.batch, readers=args.readers)


def tissue_tiles(slide_path: Path, settings: CompressionSettings, limit: int) -> np.ndarray:
    """Up to ``limit`` tissue tiles ``[N, P, P, 3]`` of one slide, as the compression tiles it."""
    with open_slide(slide_path, mpp=settings.slide_mpp) as slide:
        grid = tile_slide(slide, settings.patch_size, target_mpp=settings.target_mpp, tissue=detect_tissue(slide),
                          min_tissue_fraction=settings.min_tissue_fraction, include_partial=True)
        return np.stack([read_tile(slide, grid, i) for i in range(min(limit, len(grid)))])


def pure_throughput(slides: list[Path], encoder: PatchEncoder, settings: CompressionSettings, n_tiles: int) -> float:
    """Tiles/s of the encoder alone on at least ``n_tiles`` tissue tiles held in memory (the slides'
    tiles, cycled when they are fewer)."""
    tiles: list[np.ndarray] = []
    for path in slides:
        if sum(len(t) for t in tiles) >= n_tiles:
            break
        tiles.append(tissue_tiles(path, settings, n_tiles))
    pool = np.concatenate(tiles)
    batches = [pool[i:i + settings.batch_size] for i in range(0, len(pool), settings.batch_size)]
    runs = list(itertools.islice(itertools.cycle(batches), max(len(batches), -(-n_tiles // settings.batch_size))))
    encoder.encode(runs[0])  # warm-up
    start = time.perf_counter()
    for batch in runs:
        encoder.encode(batch)
    return sum(len(b) for b in runs) / (time.perf_counter() - start)


def end_to_end(slides: list[Path], encoder_name: str, args: argparse.Namespace) -> dict:
    """Compress the slides in a fresh process, twice; tiles/s of each pass and the peak RSS (MiB)."""
    command = [sys.executable, __file__, "--child", "--slide", *map(str, slides), "--encoder", encoder_name,
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
    encoder, settings = make_encoder(args.encoder), settings_from(args)
    passes = []
    with tempfile.TemporaryDirectory() as out:
        for name in ("first", "warm"):
            start = time.perf_counter()
            results = [compress_slide(path, encoder, Path(out) / name, settings) for path in args.slide]
            passes.append((sum(r.tiles for r in results), time.perf_counter() - start))
    (tiles, first), (_, warm) = passes
    print(json.dumps({"tiles": tiles, "first": tiles / first, "warm": tiles / warm,
                      "grid": list(results[0].grid_shape)}))


def stages(slides: list[Path], encoder: PatchEncoder, settings: CompressionSettings) -> dict[str, float]:
    """Seconds per stage of compressing ``slides`` one after another (warm: run after the other measures)."""
    seconds = dict.fromkeys(("open", "tissue detection", "tiling", "store creation", "reading", "encoding",
                             "row writes"), 0.0)

    def timed(stage: str, work):  # noqa: ANN001, ANN202 - a tiny timer
        start = time.perf_counter()
        value = work()
        seconds[stage] += time.perf_counter() - start
        return value

    with tempfile.TemporaryDirectory() as out:
        for path in slides:
            with timed("open", lambda: open_slide(path, mpp=settings.slide_mpp)) as slide:
                tissue = timed("tissue detection", lambda: detect_tissue(slide, settings.tissue))
                grid = timed("tiling", lambda: tile_slide(
                    slide, settings.patch_size, target_mpp=settings.target_mpp, tissue=tissue,
                    min_tissue_fraction=settings.min_tissue_fraction, include_partial=True))
                rows, cols = grid.grid_shape
                store = timed("store creation", lambda: grid_store.create_or_resume(
                    Path(out), path.stem, encoder.channels, np.zeros((rows, cols), bool),
                    np.zeros((rows, cols, 2), np.int64), {"slide": str(path)}))
                tiles = timed("reading", lambda: [t for _, t in _read_ahead(slide, grid, np.arange(len(grid)),
                                                                             settings)])
                for first in range(0, len(tiles), settings.batch_size):
                    timed("encoding", lambda: encoder.encode(np.stack(tiles[first:first + settings.batch_size])))
                timed("row writes", lambda: _write_rows(store, grid, encoder.channels, settings.batch_size))
    return seconds


def _write_rows(store: grid_store.GridStore, grid: TileGrid, channels: int, batch_size: int) -> None:
    """Zero embeddings through compression's own ``_RowWriter``, flushed after every encoder batch."""
    writer = _RowWriter(store, grid, channels, pending=np.arange(grid.grid_shape[0]), todo=np.arange(len(grid)))
    vector = np.zeros(channels, np.float32)
    for first in range(0, len(grid), batch_size):
        for index in range(first, min(first + batch_size, len(grid))):
            writer.put(index, vector)
        writer.flush()
    writer.flush()  # a grid without tissue tiles: its empty rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slide", type=Path, nargs="+", help="existing slides (default: write a synthetic one)")
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
    parser.add_argument("--stages", action="store_true", help="also time each stage of the compression")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    torch.set_num_threads(args.threads)
    slides = args.slide
    if slides is None:
        slides = [args.workdir / f"synthetic-{args.size}.tif"]
        if not slides[0].exists():
            start = time.perf_counter()
            make_synthetic_slide(slides[0], args.size, args.size, label=1, seed=0, show_progress=True)
            print(f"wrote {slides[0]} in {time.perf_counter() - start:.0f} s")
    encoder = make_encoder(args.encoder)
    pure = pure_throughput(slides, encoder, settings_from(args), args.pure_tiles)
    e2e = end_to_end(slides, args.encoder, args)
    name = slides[0].name if len(slides) == 1 else f"{len(slides)} slides"
    print("| slide(s) | encoder | grid | tissue patches | pure (tiles/s) | end to end, first (tiles/s) | ratio | "
          "end to end, warm (tiles/s) | ratio | peak RSS (MiB) |")
    print(f"| {name} | {args.encoder} | {e2e['grid'][0]}×{e2e['grid'][1]} | {e2e['tiles']} | {pure:.1f} | "
          f"{e2e['first']:.1f} | {e2e['first'] / pure:.2f} | {e2e['warm']:.1f} | {e2e['warm'] / pure:.2f} | "
          f"{e2e['peak_rss_mib']:.0f} |")
    if args.stages:
        seconds = stages(slides, encoder, settings_from(args))
        total = sum(seconds.values())
        print("stages (s): " + ", ".join(f"{k} {v:.3f} ({v / total:.0%})" for k, v in seconds.items()))


if __name__ == "__main__":
    main()
