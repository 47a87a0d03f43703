"""Split files for an honest model-selection protocol on BUSI (issue 16).

BUSI's three published splits have a train and a validation list only, and the published results
are measured on the validation list: selecting the checkpoint on those images and then reporting
them is optimistic. This writes, for each published split ``k``, a validation list carved from
the training list (``--fraction``, stratified by class, seeded) and keeps the published validation
list as the test list, so that selection (best epoch, early stopping) never sees the images the
remedies are compared on::

    .venv/bin/python benchmarks/busi_holdout_splits.py --out runs/busi-holdout-splits
    # then: data.split_train=DIR/train{fold}.txt data.split_val=DIR/val{fold}.txt data.split_test=DIR/test{fold}.txt
"""

from __future__ import annotations

import argparse
import os
import random
from pathlib import Path


def class_of(name: str) -> str:
    """BUSI list entries are ``<class> (<n>)``."""
    return name.split(" (")[0]


def carve(names: list[str], fraction: float, seed: int) -> tuple[list[str], list[str]]:
    """``(train, val)``: ``fraction`` of each class's names (rounded) go to val."""
    rng = random.Random(seed)
    train, val = [], []
    for label in sorted({class_of(n) for n in names}):
        members = sorted(n for n in names if class_of(n) == label)
        rng.shuffle(members)
        cut = round(fraction * len(members))
        val += members[:cut]
        train += members[cut:]
    return sorted(train), sorted(val)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path(os.environ.get("MEDMTL_DATA", "../shared/data")) / "busi-256")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--fraction", type=float, default=0.15)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for k in (1, 2, 3):
        published_train = (args.data / "splits" / f"busi_train{k}.txt").read_text().split("\n")
        train, val = carve([n for n in published_train if n.strip()], args.fraction, args.seed + k)
        test = (args.data / "splits" / f"busi_val{k}.txt").read_text()
        (args.out / f"train{k}.txt").write_text("\n".join(train) + "\n")
        (args.out / f"val{k}.txt").write_text("\n".join(val) + "\n")
        (args.out / f"test{k}.txt").write_text(test)
        print(f"split {k}: {len(train)} train, {len(val)} val (from the published train list), "
              f"{len([n for n in test.splitlines() if n.strip()])} test (the published val list)")


if __name__ == "__main__":
    main()
