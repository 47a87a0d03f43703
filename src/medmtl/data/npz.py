"""MedMNIST-style ``.npz`` archives: ``{split}_images`` and ``{split}_labels`` arrays."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from medmtl.data.records import Record
from medmtl.errors import DataError

SPLITS = ("train", "val", "test")


def npz_keys(path: str | Path) -> list[str]:
    """The array names in an ``.npz`` archive."""
    path = Path(path)
    with _open_npz(path) as archive:
        return sorted(archive.files)


def _open_npz(path: Path):
    if not path.exists():
        raise DataError(path, "file does not exist")
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise DataError(path, f"cannot be read as an .npz archive: {exc}") from None


def read_medmnist_npz(path: str | Path, split: str) -> list[Record]:
    """Records of one split of a MedMNIST archive (images kept in memory).

    Images are ``[N, H, W]`` (grey) or ``[N, H, W, 3]`` (RGB) uint8; labels ``[N, 1]`` or ``[N]``.
    Record names are ``<split>_<index>`` (``train_00042``).
    """
    path = Path(path)
    if split not in SPLITS:
        raise DataError(path, f"split must be one of {list(SPLITS)}, not '{split}'")
    with _open_npz(path) as archive:
        found = sorted(archive.files)
        wanted = [f"{split}_images", f"{split}_labels"]
        missing = [k for k in wanted if k not in found]
        if missing:
            raise DataError(path, f"has no array(s) {missing} for split '{split}'; arrays found: {found}")
        try:
            images = archive[wanted[0]]
            labels = archive[wanted[1]]
        except Exception as exc:
            raise DataError(path, f"cannot read arrays {wanted}: {exc}") from None
    if images.ndim not in (3, 4) or (images.ndim == 4 and images.shape[-1] not in (1, 3)):
        raise DataError(path, f"'{wanted[0]}' has shape {images.shape}; expected [N, H, W] or [N, H, W, 3]")
    if labels.ndim == 2 and labels.shape[1] == 1:
        labels = labels[:, 0]
    if labels.ndim != 1:
        raise DataError(path, f"'{wanted[1]}' has shape {labels.shape}; expected [N] or [N, 1] "
                              "(multi-label archives are not supported)")
    if len(labels) != len(images):
        raise DataError(path, f"'{wanted[0]}' holds {len(images)} images but '{wanted[1]}' {len(labels)} labels")
    if len(images) and not np.issubdtype(labels.dtype, np.integer) and not np.all(np.equal(np.mod(labels, 1), 0)):
        raise DataError(path, f"'{wanted[1]}' holds non-integer class labels")
    if len(labels) and labels.min() < 0:
        raise DataError(path, f"'{wanted[1]}' holds negative class labels")
    width = max(5, len(str(len(images))))
    return [Record(name=f"{split}_{i:0{width}d}", image_array=images[i], targets={"label": int(labels[i])})
            for i in range(len(images))]
