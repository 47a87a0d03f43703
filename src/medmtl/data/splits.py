"""Choosing train/validation/test records: split files, k-fold and a random hold-out."""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from medmtl.data.records import Record
from medmtl.errors import ConfigError, DataError

NAME_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".npy", ".npz", ".nii", ".nii.gz", ".nrrd",
                 ".dcm")
UNLABELLED = -1


def normalize_name(text: str) -> str:
    """A split-file entry as a record name: folder prefix and image extension dropped."""
    name = text.strip().replace("\\", "/").rsplit("/", 1)[-1]
    lower = name.lower()
    for suffix in sorted(NAME_SUFFIXES, key=len, reverse=True):
        if lower.endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    return name


def read_split_file(path: str | Path) -> list[str]:
    """Record names listed in a split file, one per line.

    Blank lines and lines starting with ``#`` are ignored; a folder prefix or an image extension
    (``benign/benign (3).png``) is tolerated and dropped.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "split file does not exist" if not path.exists() else "is not a file")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(path, f"cannot be read as a text file: {exc}") from None
    names = [normalize_name(line) for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    if not names:
        raise DataError(path, "split file lists no names")
    return list(dict.fromkeys(names))


def select(records: Sequence[Record], names: Iterable[str], source: str | Path | None = None) -> list[Record]:
    """The records named in ``names`` (in that order); ``source`` (the split file) names errors."""
    by_name = {r.name: r for r in records}
    names = list(dict.fromkeys(names))
    missing = [n for n in names if n not in by_name]
    if missing:
        shown = ", ".join(repr(n) for n in missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        examples = ", ".join(repr(r.name) for r in list(records)[:3])
        raise DataError(source, f"{len(missing)} of {len(names)} listed name(s) not found among the "
                                f"{len(records)} records: {shown} (record names look like {examples})")
    return [by_name[n] for n in names]


def _strata(records: Sequence[Record]) -> np.ndarray:
    return np.array([UNLABELLED if r.label is None else r.label for r in records])


def kfold_splits(records: Sequence[Record], k: int, seed: int = 0,
                 stratify: bool = True) -> list[tuple[list[Record], list[Record]]]:
    """``k`` (train, val) pairs; folds are stratified on ``label`` (unlabelled records form their own group).

    Records that share a ``group`` (e.g. patches of one slide) always land in the same fold.
    """
    grouped = _group_representatives(records)
    if grouped is not None:
        representatives, members = grouped
        if k > len(representatives):
            raise ConfigError("data.folds", f"{k} folds need at least {k} groups (records that share a group, e.g. "
                                            f"a patient, stay in one fold); the data has {len(representatives)} "
                                            f"group(s) in {len(records)} records")
        return [(_expand(train, members), _expand(val, members))
                for train, val in _kfold_ungrouped(representatives, k, seed, stratify)]
    return _kfold_ungrouped(records, k, seed, stratify)


def _kfold_ungrouped(records: Sequence[Record], k: int, seed: int,
                     stratify: bool) -> list[tuple[list[Record], list[Record]]]:
    from sklearn.model_selection import KFold, StratifiedKFold

    records = list(records)
    if k < 2:
        raise ConfigError("data.folds", f"k-fold needs at least 2 folds, got {k}")
    if k > len(records):
        raise ConfigError("data.folds", f"{k} folds need at least {k} records, the data has {len(records)}")
    strata = _strata(records)
    use_strata = stratify and len(np.unique(strata)) > 1 and np.unique(strata, return_counts=True)[1].max() >= k
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "least populated class has fewer members than n_splits"
        if use_strata:
            splitter = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
            folds = splitter.split(np.zeros(len(records)), strata)
        else:
            folds = KFold(n_splits=k, shuffle=True, random_state=seed).split(np.zeros(len(records)))
        return [([records[i] for i in train], [records[i] for i in val]) for train, val in folds]


def holdout_split(records: Sequence[Record], val_fraction: float, seed: int = 0,
                  stratify: bool = True) -> tuple[list[Record], list[Record]]:
    """A random (train, val) split with about ``val_fraction`` of the records in val, stratified on label.

    Records that share a ``group`` stay together (the fraction then counts groups).
    """
    grouped = _group_representatives(records)
    if grouped is not None:
        representatives, members = grouped
        train, val = _holdout_ungrouped(representatives, val_fraction, seed, stratify)
        return _expand(train, members), _expand(val, members)
    return _holdout_ungrouped(records, val_fraction, seed, stratify)


def _group_representatives(records: Sequence[Record]) -> tuple[list[Record], dict[str, list[Record]]] | None:
    """One record per group (carrying the group's most common label) and each group's members;
    None when no record has a group. A record without a group is a group of its own."""
    if not any(r.group is not None for r in records):
        return None
    members: dict[str, list[Record]] = {}
    for record in records:
        members.setdefault(record.group if record.group is not None else f"\0{record.name}", []).append(record)
    representatives = []
    for key, group in members.items():
        labels = [r.label for r in group if r.label is not None]
        label = max(set(labels), key=labels.count) if labels else None
        representatives.append(Record(key, image_path=group[0].image_path, image_array=group[0].image_array,
                                      targets={} if label is None else {"label": label}))
    return representatives, members


def _expand(representatives: list[Record], members: dict[str, list[Record]]) -> list[Record]:
    return [record for rep in representatives for record in members[rep.name]]


def _holdout_ungrouped(records: Sequence[Record], val_fraction: float, seed: int,
                       stratify: bool) -> tuple[list[Record], list[Record]]:
    records = list(records)
    if not 0 < val_fraction < 1:
        raise ConfigError("data.val_fraction", f"must be between 0 and 1, got {val_fraction}")
    if len(records) < 2:
        raise DataError(None, f"cannot split {len(records)} record(s) into train and validation")
    n_val = min(len(records) - 1, max(1, round(len(records) * val_fraction)))
    rng = np.random.default_rng(seed)
    strata = _strata(records) if stratify else np.zeros(len(records), dtype=int)
    # Per stratum: shuffle, then take a proportional share (largest remainders get the rounding).
    groups = {value: rng.permutation(np.flatnonzero(strata == value)) for value in np.unique(strata)}
    exact = {value: len(idx) * n_val / len(records) for value, idx in groups.items()}
    take = {value: int(np.floor(share)) for value, share in exact.items()}
    for value in sorted(exact, key=lambda v: exact[v] - take[v], reverse=True)[: n_val - sum(take.values())]:
        take[value] += 1
    val_idx = set()
    for value, idx in groups.items():
        val_idx.update(int(i) for i in idx[: take[value]])
    train = [r for i, r in enumerate(records) if i not in val_idx]
    val = [r for i, r in enumerate(records) if i in val_idx]
    return train, val
