"""Helper of nic_pipeline.sh: synthetic slide sets, and the grid manifests of compressed slides.

    nic_make_slides.py OUT N_ENCODER_SLIDES N_SLIDES     # writes OUT/encoder-slides, OUT/slides
    nic_make_slides.py --grid-manifest OUT VARIANT       # writes OUT/grids-VARIANT/grids.csv
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd

from medmtl.wsi import make_synthetic_dataset


def make_slides(out: Path, n_encoder: int, n_slides: int) -> None:
    if not (out / "encoder-slides" / "labels.csv").exists():
        make_synthetic_dataset(out / "encoder-slides", n_encoder, width=4096, height=3072, seed=1)
    labels = out / "slides" / "labels.csv"
    if not labels.exists():
        make_synthetic_dataset(out / "slides", n_slides, width=4096, height=3072, seed=2)
        table = pd.read_csv(labels)
        rng = np.random.default_rng(0)
        # hazard grows with the tumour density: exponential times, 30% censored at random
        hazard = 0.002 * np.exp(0.12 * table["value"].to_numpy())
        time = rng.exponential(1.0 / hazard)
        table["time"] = np.round(np.maximum(time, 1.0), 1)
        table["event"] = (rng.random(len(table)) < 0.7).astype(int)
        table.to_csv(labels, index=False)


def grid_manifest(out: Path, variant: str) -> None:
    table = pd.read_csv(out / "slides" / "labels.csv")
    grids = out / f"grids-{variant}"
    table["grid"] = [str((grids / f"{Path(p).stem}.zarr").resolve()) for p in table["image"]]
    table.drop(columns=["image"]).to_csv(grids / "grids.csv", index=False)


if __name__ == "__main__":
    if sys.argv[1] == "--grid-manifest":
        grid_manifest(Path(sys.argv[2]), sys.argv[3])
    else:
        make_slides(Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]))
