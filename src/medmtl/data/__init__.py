"""Data: records from files or phantoms, splits, augmentation and multi-task datasets (images and volumes).

The names below are imported on first use (PEP 562), so that ``import medmtl.data.config`` (and
with it ``import medmtl.config``) does not load torch, scipy or the image readers. Slide-level
grids (:mod:`medmtl.data.grid`, zarr) are not part of this package's eager surface at all.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "AugmentConfig": "config", "Compose": "transforms", "DataConfig": "config", "MultiTaskDataset": "dataset",
    "PhantomConfig": "config", "RandomElastic": "transforms", "RandomHEDJitter": "stain",
    "RandomHorizontalFlip": "transforms", "RandomIntensity": "transforms", "RandomRotation": "transforms",
    "RandomVerticalFlip": "transforms", "Record": "records", "Resize": "transforms", "boxes_from_mask": "boxes",
    "build_datasets": "build", "build_records": "build", "build_transforms": "transforms",
    "collate_samples": "collate", "holdout_split": "splits", "kfold_splits": "splits",
    "make_phantom_records": "phantom", "read_image": "image_io", "read_manifest": "manifest", "read_mask": "image_io",
    "read_medmnist_npz": "npz", "read_split_file": "splits", "scan_busi": "busi", "select": "splits",
    "VolumeConfig": "config", "VolumeDataset": "volume_dataset", "VolumeGeometry": "volume_io",
    "build_volume_transforms": "volume_transforms", "make_phantom3d_records": "phantom3d",
    "read_volume": "volume_io", "write_volume": "volume_io",
}

__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:
    from medmtl.data.boxes import boxes_from_mask
    from medmtl.data.build import build_datasets, build_records
    from medmtl.data.busi import scan_busi
    from medmtl.data.collate import collate_samples
    from medmtl.data.config import AugmentConfig, DataConfig, PhantomConfig, VolumeConfig
    from medmtl.data.dataset import MultiTaskDataset
    from medmtl.data.image_io import read_image, read_mask
    from medmtl.data.manifest import read_manifest
    from medmtl.data.npz import read_medmnist_npz
    from medmtl.data.phantom import make_phantom_records
    from medmtl.data.phantom3d import make_phantom3d_records
    from medmtl.data.records import Record
    from medmtl.data.splits import holdout_split, kfold_splits, read_split_file, select
    from medmtl.data.stain import RandomHEDJitter
    from medmtl.data.transforms import (
        Compose,
        RandomElastic,
        RandomHorizontalFlip,
        RandomIntensity,
        RandomRotation,
        RandomVerticalFlip,
        Resize,
        build_transforms,
    )
    from medmtl.data.volume_dataset import VolumeDataset
    from medmtl.data.volume_io import VolumeGeometry, read_volume, write_volume
    from medmtl.data.volume_transforms import build_volume_transforms


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'medmtl.data' has no attribute '{name}'")
    value = getattr(importlib.import_module(f"medmtl.data.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})
