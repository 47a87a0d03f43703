"""The BUSI breast-ultrasound layout: ``<class>/<class> (N).png`` + ``<class> (N)_mask.png``.

Several masks of one image (``<name>_mask.png``, ``<name>_mask_1.png``, ...) are merged with OR
when the sample is decoded. The record name is the image's file stem (``benign (12)``), which is
what the published split files list.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from medmtl.data.records import Record
from medmtl.errors import DataError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
_MASK_NAME = re.compile(r"^(?P<stem>.+)_mask(?:_\d+)?$")
_NUMBER = re.compile(r"(\d+)")


def natural_key(text: str) -> list:
    """Sort key that orders ``benign (2)`` before ``benign (10)``."""
    return [int(part) if part.isdigit() else part.lower() for part in _NUMBER.split(text)]


BUSI_CLASSES = ("benign", "malignant")  # its class folders; label = the index


def scan_busi(root: str | Path, classes: Sequence[str] = BUSI_CLASSES,
              include_normal: bool = False) -> list[Record]:
    """Records of a BUSI-style folder.

    ``label`` is the index of the class folder in ``classes``. With ``include_normal`` the
    ``normal/`` folder is read too; its images get a label only when ``"normal"`` is one of
    ``classes`` (otherwise they are unlabelled for classification but keep their empty masks).
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(root, "BUSI folder does not exist" if not root.exists() else "is not a folder")
    folders = list(dict.fromkeys([*classes, *(["normal"] if include_normal else [])]))
    if not folders:
        raise DataError(root, "no classes given to read")
    records: list[Record] = []
    for folder_name in folders:
        folder = root / folder_name
        if not folder.is_dir():
            found = sorted(p.name for p in root.iterdir() if p.is_dir())
            raise DataError(folder, f"class folder '{folder_name}' does not exist in {root}; folders there: {found}")
        label = list(classes).index(folder_name) if folder_name in classes else None
        records.extend(_scan_class_folder(folder, label))
    if not records:
        raise DataError(root, f"no images found in the class folders {folders}")
    return records


def _scan_class_folder(folder: Path, label: int | None) -> list[Record]:
    images: dict[str, Path] = {}
    masks: dict[str, list[Path]] = {}
    for path in folder.iterdir():
        if not path.is_file() or path.suffix.lower() not in IMAGE_SUFFIXES:
            continue
        match = _MASK_NAME.match(path.stem)
        if match:
            masks.setdefault(match["stem"], []).append(path)
        else:
            images[path.stem] = path
    if not images:
        raise DataError(folder, "class folder holds no images")
    records = []
    for stem in sorted(images, key=natural_key):
        mask_paths = sorted(masks.get(stem, []), key=lambda p: natural_key(p.name))
        if not mask_paths:
            raise DataError(images[stem], f"image has no mask (expected '{stem}_mask.png' beside it)")
        targets = {} if label is None else {"label": label}
        records.append(Record(name=stem, image_path=images[stem], mask_paths=mask_paths, targets=targets,
                              expects_lesion=folder.name != "normal"))
    return records
