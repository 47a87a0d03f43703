"""Slide-level samples: embedding grids of compressed whole-slide images (Neural Image Compression).

Each record's ``image_path`` is a finished zarr grid store (:mod:`medmtl.grid_store`); the
sample image is its embedding grid ``[C, S, S]``: a random ``S × S`` crop (training) or the
centre crop (evaluation), zero-padded when the grid is smaller, and in training one of the 8
rotations/flips of the square applied to the grid as a whole (NIC, Tellez et al.).
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import torch

from medmtl.data.sample import Sample
from medmtl.data.dataset import target_tensors
from medmtl.data.record_dataset import RecordDataset
from medmtl.data.records import Record
from medmtl.errors import DataError
from medmtl.grid_store import open_grid


def crop_or_pad(grid: np.ndarray, size: int, top: int, left: int) -> np.ndarray:
    """``[C, size, size]`` window of ``grid [C, H, W]`` at (top, left), zeros outside the grid."""
    channels, height, width = grid.shape
    out = np.zeros((channels, size, size), dtype=np.float32)
    ys, xs = max(0, top), max(0, left)
    ye, xe = min(height, top + size), min(width, left + size)
    if ye > ys and xe > xs:
        out[:, ys - top:ye - top, xs - left:xe - left] = grid[:, ys:ye, xs:xe]
    return out


def centre_window(height: int, width: int, size: int) -> tuple[int, int]:
    """Top-left cell ``(top, left)`` of the centre ``size × size`` window of a ``height × width`` grid
    (negative where the grid is smaller and padded): the window evaluation and prediction see."""
    return (height - size) // 2, (width - size) // 2


def dihedral(grid: torch.Tensor, index: int) -> torch.Tensor:
    """One of the 8 symmetries of the square (``index`` 0..7) of ``grid [C, S, S]``."""
    if index >= 4:
        grid = grid.flip(-1)
    return torch.rot90(grid, index % 4, dims=(-2, -1))


def _uniform(low: int, high: int) -> int:
    """A random integer in ``[low, high]``."""
    return int(torch.randint(low, high + 1, ()))


class GridDataset(RecordDataset):
    """Grids of ``channels`` embedding maps cut to ``size × size`` cells, with the records' targets."""

    def __init__(self, records: list[Record], channels: int, size: int, train: bool = False,
                 augment: bool = True, cache: bool = True) -> None:
        self.records = records
        self.channels = channels
        self.size = size
        self.train = train
        self.augment = augment and train
        self.cache = cache
        self._grids: dict[int, np.ndarray] = {}

    def available_targets(self) -> dict[str, int]:
        counts: Counter[str] = Counter()
        for record in self.records:
            counts.update(k for k, v in record.targets.items() if v is not None)
        return dict(sorted(counts.items()))

    def source_size(self, index: int) -> None:
        """Grids have no picture size to map predictions back to."""
        return None

    def grid(self, index: int) -> np.ndarray:
        """The full embedding grid ``[C, H, W]`` float32 of record ``index``."""
        if index in self._grids:
            return self._grids[index]
        record = self.records[index]
        grid = open_grid(record.image_path).embeddings()
        if grid.shape[0] != self.channels:
            raise DataError(record.image_path, f"grid has {grid.shape[0]} embedding channels, but data.channels "
                                               f"is {self.channels}")
        if self.cache:
            self._grids[index] = grid
        return grid

    def __getitem__(self, index: int) -> Sample:
        grid = self.grid(index)
        _, height, width = grid.shape
        if self.train:
            # torch's generator: seeded per data-loader worker by Lightning
            top = _uniform(min(0, height - self.size), max(0, height - self.size))
            left = _uniform(min(0, width - self.size), max(0, width - self.size))
        else:
            top, left = centre_window(height, width, self.size)
        image = torch.from_numpy(crop_or_pad(grid, self.size, top, left))
        if self.augment:
            image = dihedral(image, _uniform(0, 7))
        record = self.records[index]
        sample: Sample = {"image": image.contiguous(), "name": record.name}
        sample.update(target_tensors(record))
        return sample
