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


def _check_image_shape(path: Path, key: str, shape: tuple[int, ...], spatial_dims: int) -> None:
    """A :class:`DataError` unless ``shape`` holds 2D images (``spatial_dims=2``) or volumes (3)."""
    if spatial_dims not in (2, 3):
        raise DataError(path, f"spatial_dims must be 2 or 3, not {spatial_dims}")
    if spatial_dims == 3:
        if len(shape) == 3:
            raise DataError(path, f"2D images given to a 3D model: '{key}' has shape {shape} ([N, H, W] images); "
                                  "set model.spatial_dims: 2, or use an archive of volumes [N, D, H, W]")
        if len(shape) == 4 and shape[-1] in (1, 3) and shape[1] == shape[2] != shape[-1]:
            raise DataError(path, f"2D images given to a 3D model: '{key}' has shape {shape}, which looks like "
                                  "[N, H, W, channels] images; set model.spatial_dims: 2")
        if len(shape) != 4:
            raise DataError(path, f"'{key}' has shape {shape}; expected volumes [N, D, H, W]")
        return
    if len(shape) == 4 and shape[-1] not in (1, 3):
        raise DataError(path, f"'{key}' has shape {shape}: it holds volumes [N, D, H, W]; set "
                              "model.spatial_dims: 3 (or data.image_size: [D, H, W]) to train a 3D model on them")
    if len(shape) not in (3, 4):
        raise DataError(path, f"'{key}' has shape {shape}; expected [N, H, W] or [N, H, W, 3]")


def read_medmnist_npz(path: str | Path, split: str, spatial_dims: int = 2) -> list[Record]:
    """Records of one split of a MedMNIST archive (images kept in memory).

    Images are ``[N, H, W]`` (grey) or ``[N, H, W, 3]`` (RGB) uint8 for ``spatial_dims=2``, volumes
    ``[N, D, H, W]`` (MedMNIST-3D, grey) for ``spatial_dims=3``; labels ``[N, 1]`` or ``[N]``.
    An archive of the other kind is a :class:`DataError` naming the ``model.spatial_dims`` it needs.
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
    _check_image_shape(path, wanted[0], images.shape, spatial_dims)
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
