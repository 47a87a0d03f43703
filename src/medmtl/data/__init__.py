"""Data: records from files or phantoms, splits, augmentation and multi-task datasets."""

from medmtl.data.build import build_datasets, build_records
from medmtl.data.busi import scan_busi
from medmtl.data.collate import collate_samples
from medmtl.data.config import AugmentConfig, DataConfig, PhantomConfig
from medmtl.data.dataset import MultiTaskDataset
from medmtl.data.image_io import boxes_from_mask, read_image, read_mask
from medmtl.data.manifest import read_manifest
from medmtl.data.npz import read_medmnist_npz
from medmtl.data.phantom import make_phantom_records
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

__all__ = [
    "AugmentConfig", "Compose", "DataConfig", "MultiTaskDataset", "PhantomConfig", "RandomElastic", "RandomHEDJitter",
    "RandomHorizontalFlip", "RandomIntensity", "RandomRotation", "RandomVerticalFlip", "Record", "Resize",
    "boxes_from_mask", "build_datasets", "build_records", "build_transforms", "collate_samples", "holdout_split",
    "kfold_splits", "make_phantom_records", "read_image", "read_manifest", "read_mask", "read_medmnist_npz",
    "read_split_file", "scan_busi", "select",
]
