"""Datasets of a data configuration: ``{"train": ..., "val": ..., "test": ...}``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from medmtl.data.busi import BUSI_CLASSES, scan_busi
from medmtl.data.config import DataConfig
from medmtl.data.dataset import MultiTaskDataset
from medmtl.data.manifest import read_manifest
from medmtl.data.npz import npz_keys, read_medmnist_npz
from medmtl.data.phantom import make_phantom_records
from medmtl.data.records import Record
from medmtl.data.splits import holdout_split, kfold_splits, read_split_file, select
from medmtl.data.transforms import build_transforms
from medmtl.errors import ConfigError, DataError
from medmtl.paths import DATA_ENV_VAR, resolve_data_path

if TYPE_CHECKING:
    from medmtl.data.grid import GridDataset
    from medmtl.data.sample import Transform
    from medmtl.data.volume_dataset import VolumeDataset

SPLIT_NAMES = ("train", "val", "test")


def build_datasets(cfg: DataConfig, boxes_from_masks: bool = False
                   ) -> dict[str, MultiTaskDataset | GridDataset | VolumeDataset]:
    """One :class:`MultiTaskDataset` (a :class:`~medmtl.data.volume_dataset.VolumeDataset` when
    ``cfg.spatial_dims`` is 3) per available split; only ``train`` is augmented.

    ``boxes_from_masks`` (for a model with a detection task): samples with a mask also get
    ``boxes``/``box_labels`` derived from it (see :class:`MultiTaskDataset`); grids have no masks.
    """
    if cfg.kind == "grid":
        return _grid_datasets(cfg)
    records = build_records(cfg)
    if cfg.spatial_dims == 3:
        return _volume_datasets(cfg, records)
    train_transform = build_transforms(cfg.augment, cfg.image_shape, train=True)
    datasets = {}
    for split, split_records in records.items():
        transform = train_transform if split == "train" and len(train_transform) > 1 else None
        datasets[split] = MultiTaskDataset(split_records, channels=cfg.channels, image_size=cfg.image_shape,
                                           transform=transform, cache_images=cfg.cache_images,
                                           boxes_from_masks=boxes_from_masks)
    return datasets


def _volume_datasets(cfg: DataConfig, records: dict[str, list[Record]]) -> dict[str, VolumeDataset]:
    """Volumes (``model.spatial_dims: 3``): the train split gets random crops (``volume.crop_jitter``)
    and the 3D augmentation."""
    from medmtl.data.volume_dataset import VolumeDataset

    return {split: VolumeDataset(split_records, channels=cfg.channels, image_shape=cfg.image_shape,
                                 volume=cfg.volume, transform=_volume_augmentation(cfg) if split == "train" else None,
                                 cache_images=cfg.cache_images, train=split == "train")
            for split, split_records in records.items()}


def _volume_augmentation(cfg: DataConfig) -> Transform | None:
    """The 3D training augmentation of ``cfg.augment`` (:mod:`medmtl.data.volume_transforms`), None when
    it has no transforms."""
    from medmtl.data.volume_transforms import build_volume_transforms

    transform = build_volume_transforms(cfg.augment, train=True)
    return transform if len(transform) else None


def _grid_datasets(cfg: DataConfig) -> dict[str, GridDataset]:
    """Slide-level data (``kind: grid``): grid stores need zarr, the optional extra 'wsi'. Imported
    here only, so that the 2D data stack never loads the grid store format."""
    from medmtl.data.grid import GridDataset
    from medmtl.extras import require

    require("zarr", feature="training on grid stores (data.kind: grid)")
    return {split: GridDataset(split_records, cfg.channels, cfg.grid_size, train=split == "train",
                               augment=cfg.grid_augment, cache=cfg.cache_images)
            for split, split_records in build_records(cfg).items()}


def inference_dataset(cfg: DataConfig, inputs: list[Path]) -> MultiTaskDataset | GridDataset | VolumeDataset:
    """Unlabelled inputs (image files; volume files in 3D; grid stores for ``kind: grid``) preprocessed
    exactly as the evaluation data of ``cfg`` (no augmentation), so training and prediction cannot
    drift apart. A :class:`~medmtl.data.volume_dataset.VolumeDataset` gives each input's grids
    (``geometry(index)``) to map predictions back onto it."""
    from medmtl.data.volume_io import volume_stem

    records = [Record(volume_stem(path), image_path=Path(path)) for path in inputs]
    if cfg.kind == "grid":
        from medmtl.data.grid import GridDataset

        return GridDataset(records, cfg.channels, cfg.grid_size, cache=False)
    if cfg.spatial_dims == 3:
        from medmtl.data.volume_dataset import VolumeDataset

        return VolumeDataset(records, channels=cfg.channels, image_shape=cfg.image_shape, volume=cfg.volume,
                             cache_images=False, train=False)
    return MultiTaskDataset(records, channels=cfg.channels, image_size=cfg.image_shape, cache_images=False)


def build_records(cfg: DataConfig) -> dict[str, list[Record]]:
    """The records of each split (``train`` and ``val`` always, ``test`` when the data has one)."""
    if cfg.kind == "phantom":
        return _phantom_records(cfg)
    if cfg.kind == "npz":
        return _npz_records(cfg)
    root = _root(cfg)
    if cfg.kind == "busi":
        records = scan_busi(root, cfg.classes or BUSI_CLASSES, cfg.include_normal)
    else:
        records = _manifest_records(cfg, root)
    return _split(cfg, records, root)


# --------------------------------------------------------------------------------------- sources
def _resolve(key: str, text: str) -> Path:
    """A configured path with ``${MEDMTL_DATA}`` expanded; a clear error when it cannot be."""
    path = resolve_data_path(text)
    if DATA_ENV_VAR in str(path):
        raise ConfigError(f"data.{key}", f"'{text}' uses ${DATA_ENV_VAR}, but {DATA_ENV_VAR} is not set and no "
                                         "../shared/data folder was found; set it to the folder of the data sets")
    return path


def _root(cfg: DataConfig) -> Path | None:
    if cfg.root is not None:
        return _resolve("root", cfg.root)
    if cfg.kind in ("manifest", "grid") and cfg.manifest is not None:
        return _resolve("manifest", cfg.manifest).parent
    return None


def _manifest_records(cfg: DataConfig, root: Path | None) -> list[Record]:
    if not cfg.manifest:
        raise ConfigError("data.manifest", f"kind '{cfg.kind}' needs the path of a CSV file in data.manifest")
    path = _resolve("manifest", cfg.manifest)
    if not path.is_absolute() and root is not None and not path.exists():
        path = root / path
    classes = cfg.classes if cfg.label_col is not None else None
    return read_manifest(path, image_col=cfg.image_col, mask_col=cfg.mask_col, label_col=cfg.label_col,
                         classes=classes, value_cols=cfg.value_cols, time_col=cfg.time_col,
                         event_col=cfg.event_col, root=root if cfg.root is not None else None,
                         image_is_folder=cfg.kind == "grid", group_col=cfg.group_col, label_cols=cfg.label_cols)


def _phantom_records(cfg: DataConfig) -> dict[str, list[Record]]:
    ph = cfg.phantom
    size = ph.image_size or max(cfg.image_shape)  # drawn square, resized to a non-square image_size
    offset = 3 * (cfg.fold or 0)  # another fold of a comparison draws other phantoms
    counts = {"train": ph.n_train, "val": ph.n_val, "test": ph.n_test}
    out = {}
    for stream, split in enumerate(SPLIT_NAMES):
        if not counts[split] and split != "train":
            continue
        if cfg.spatial_dims == 3:  # 3D phantoms (medmtl.data.phantom3d), imported only for 3D runs
            from medmtl.data.phantom3d import make_phantom3d_records

            shape = (ph.image_size,) * 3 if ph.image_size else cfg.image_shape
            out[split] = make_phantom3d_records(counts[split], image_shape=tuple(shape), seed=ph.seed,
                                                malignant_fraction=ph.malignant_fraction, stream=stream + offset,
                                                name_prefix=f"phantom_{split}")
        else:
            out[split] = make_phantom_records(counts[split], image_size=size, seed=ph.seed,
                                              malignant_fraction=ph.malignant_fraction,
                                              normal_fraction=ph.normal_fraction, stream=stream + offset,
                                              name_prefix=f"phantom_{split}")
    return out


def _npz_records(cfg: DataConfig) -> dict[str, list[Record]]:
    if not cfg.npz:
        raise ConfigError("data.npz", "kind 'npz' needs the path of an .npz archive in data.npz")
    path = _resolve("npz", cfg.npz)
    if not path.is_absolute() and cfg.root is not None and not path.exists():
        path = _resolve("root", cfg.root) / path
    keys = npz_keys(path)
    dims = cfg.spatial_dims
    out = {"train": read_medmnist_npz(path, "train", spatial_dims=dims)}
    pooled = out["train"] + (read_medmnist_npz(path, "val", spatial_dims=dims) if "val_images" in keys else [])
    if cfg.fold is not None:  # fold k of a k-fold over the archive's train and val images together
        out["train"], out["val"] = kfold_splits(pooled, cfg.folds, cfg.seed)[cfg.fold - 1]
    elif "val_images" in keys:
        out["val"] = pooled[len(out["train"]):]
    else:
        out["train"], out["val"] = holdout_split(out["train"], cfg.val_fraction, cfg.seed)
    if "test_images" in keys:
        out["test"] = read_medmnist_npz(path, "test", spatial_dims=dims)
    return out


# ---------------------------------------------------------------------------------------- splits
def _split_path(cfg: DataConfig, key: str, root: Path | None) -> Path | None:
    text = getattr(cfg, key)
    if text is None:
        return None
    if "{split}" in text:  # the placeholder's old name (configs read from files are migrated)
        raise ConfigError(f"data.{key}", f"'{text}' holds {{split}}, which is now {{fold}}: write {{fold}} and "
                                         "choose the partition with data.fold")
    if "{fold}" in text:
        if cfg.fold is None:
            raise ConfigError("data.fold", f"data.{key} ('{text}') holds {{fold}}: set data.fold (e.g. 1)")
        text = text.replace("{fold}", str(cfg.fold))
    path = _resolve(key, text)
    if not path.is_absolute() and root is not None:
        path = root / path
    return path


def _split(cfg: DataConfig, records: list[Record], root: Path | None) -> dict[str, list[Record]]:
    files = {split: _split_path(cfg, f"split_{split}", root) for split in SPLIT_NAMES}
    chosen: dict[str, list[Record]] = {}
    for split, path in files.items():
        if path is not None:
            chosen[split] = select(records, read_split_file(path), source=path)
    _check_disjoint(chosen, files)
    used = {r.name for split_records in chosen.values() for r in split_records}
    rest = [r for r in records if r.name not in used]
    if "train" in chosen and "val" in chosen and cfg.include_normal and rest:
        # published BUSI splits list benign and malignant images only: the normal ones (lesion-free
        # negatives, e.g. for FROC) are split by val_fraction and added to both sides
        extra_train, extra_val = holdout_split(rest, cfg.val_fraction, cfg.seed)
        chosen["train"] = chosen["train"] + extra_train
        chosen["val"] = chosen["val"] + extra_val
    elif "train" in chosen and "val" not in chosen:  # one file given: the other split is the rest
        chosen["val"] = rest
    elif "val" in chosen and "train" not in chosen:
        chosen["train"] = rest
    elif "train" not in chosen:  # neither file: k-fold or hold-out of what the test file leaves
        if cfg.fold is not None:
            chosen["train"], chosen["val"] = kfold_splits(rest, cfg.folds, cfg.seed)[cfg.fold - 1]
        else:
            chosen["train"], chosen["val"] = holdout_split(rest, cfg.val_fraction, cfg.seed)
    for split in ("train", "val"):
        if not chosen[split]:
            where = files[split] or files["train"] or files["val"] or root
            raise DataError(where, f"the {split} split has no samples")
    return {split: chosen[split] for split in SPLIT_NAMES if split in chosen}


def _check_disjoint(chosen: dict[str, list[Record]], files: dict[str, Path | None]) -> None:
    splits = list(chosen)
    for i, first in enumerate(splits):
        for second in splits[i + 1:]:
            shared = sorted({r.name for r in chosen[first]} & {r.name for r in chosen[second]})
            if shared:
                raise DataError(files[second], f"{len(shared)} name(s) are in both the {first} split "
                                               f"({files[first]}) and the {second} split: {shared[:5]}")
