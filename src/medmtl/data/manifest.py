"""A CSV manifest: one row per image, any subset of targets per row (partial labels).

Columns: an image path, optionally a mask path (several separated by ``;`` are merged), a class
label (a name from ``classes`` or an integer index), regression values, survival time and event.
An empty cell means "not labelled for this task" for that row. Relative paths are resolved
against ``root`` when given, else against the CSV's folder.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from medmtl.data.records import Record
from medmtl.data.volume_io import volume_stem, volume_suffix
from medmtl.errors import ConfigError, DataError
from medmtl.tables import read_csv_table

DEFAULT_MASK_COL = "mask"


class _Row:
    """Error helper that names the CSV file, row and column."""

    def __init__(self, csv_path: Path, index: int) -> None:
        self.csv_path = csv_path
        self.row = index + 1  # 1-based data row; the header is line 1

    def error(self, column: str, problem: str) -> DataError:
        return DataError(self.csv_path, f"row {self.row} (line {self.row + 1}), column '{column}': {problem}")


def read_manifest(csv_path: str | Path, image_col: str = "image", mask_col: str | None = DEFAULT_MASK_COL,
                  label_col: str | None = None, classes: Sequence[str] | None = None,
                  value_cols: Sequence[str] = (), time_col: str | None = None, event_col: str | None = None,
                  root: str | Path | None = None, name_col: str | None = None,
                  image_is_folder: bool = False, group_col: str | None = None,
                  label_cols: Mapping[str, str] | None = None) -> list[Record]:
    """Records of a CSV manifest.

    ``mask_col`` may be absent from the CSV when left at its default ``"mask"``. Labels may be
    class names (from ``classes``) or integer indices; one ``value_cols`` entry gives a scalar
    ``value``, several give a tuple. ``time_col`` and ``event_col`` go together (``survival``).
    The record name is ``name_col``'s cell, else the image file's stem (its relative path when
    stems repeat; a volume's whole ending goes: ``ct.nii.gz`` -> ``ct``). Paths of any format are
    only checked to exist here (volumes are read by :class:`~medmtl.data.volume_dataset.VolumeDataset`). With ``image_is_folder`` the image column names folders (zarr grid stores).
    ``group_col`` (e.g. ``slide`` or ``patient``) keeps the rows of one group in one split.
    ``label_cols`` (``{target key: column}``) reads more class labels (integer indices, or names in
    sorted order), each as the target of its key, for more classification tasks (``target: <key>``).
    """
    csv_path = Path(csv_path)
    if (time_col is None) != (event_col is None):
        raise ConfigError("data.time_col/data.event_col", "survival needs both a time column and an event column")
    table = read_csv_table(csv_path)
    columns = list(table.columns)

    def require(column: str | None, what: str) -> None:
        if column is not None and column not in columns:
            raise DataError(csv_path, f"has no column '{column}' ({what}); columns are {columns}")

    require(image_col, "image paths")
    if mask_col is not None and mask_col not in columns and mask_col != DEFAULT_MASK_COL:
        require(mask_col, "mask paths")
    mask_col = mask_col if mask_col in columns else None
    require(label_col, "class labels")
    for column in value_cols:
        require(column, "regression values")
    require(time_col, "survival times")
    require(event_col, "survival events")
    require(name_col, "sample names")
    require(group_col, "groups")
    extra_labels = dict(label_cols or {})
    for column in extra_labels.values():
        require(column, "class labels (data.label_cols)")
    extra_classes = {key: _label_names(table, column) for key, column in extra_labels.items()}
    base = Path(root) if root is not None else csv_path.parent
    class_list = list(classes) if classes is not None else _label_names(table, label_col)

    records: list[Record] = []
    cells: list[str] = []
    for index, row in enumerate(table.to_dict("records")):
        where = _Row(csv_path, index)
        cell = _cell(row, image_col)
        if not cell:
            raise where.error(image_col, "image path is empty")
        image_path = _existing(base, cell, where, image_col, folder=image_is_folder)
        mask_paths = []
        if mask_col is not None and _cell(row, mask_col):
            mask_paths = [_existing(base, part.strip(), where, mask_col)
                          for part in _cell(row, mask_col).split(";") if part.strip()]
        targets: dict[str, Any] = {}
        if label_col is not None and _cell(row, label_col):
            targets["label"] = _parse_label(_cell(row, label_col), class_list, where, label_col)
        for key, column in extra_labels.items():
            if _cell(row, column):
                targets[key] = _parse_label(_cell(row, column), extra_classes[key], where, column)
        if value_cols:
            texts = [_cell(row, c) for c in value_cols]
            if all(texts):
                values = tuple(_parse_float(text, where, c) for text, c in zip(texts, value_cols))
                targets["value"] = values[0] if len(values) == 1 else values
        if time_col is not None and event_col is not None:
            survival = _parse_survival(_cell(row, time_col), _cell(row, event_col), where, time_col, event_col)
            if survival is not None:
                targets["survival"] = survival
        name = _cell(row, name_col) if name_col is not None else ""
        group = (_cell(row, group_col) or None) if group_col is not None else None
        records.append(Record(name=name or volume_stem(image_path), image_path=image_path, mask_paths=mask_paths,
                              targets=targets, group=group))
        cells.append(cell)
    if not records:
        raise DataError(csv_path, "has no rows")
    _make_names_unique(records, cells, csv_path, name_col)
    return records


def _cell(row: dict[str, Any], column: str) -> str:
    value = row.get(column)
    return "" if value is None else str(value).strip()


def _existing(base: Path, text: str, where: _Row, column: str, folder: bool = False) -> Path:
    path = Path(text).expanduser()
    if not path.is_absolute():
        path = base / path
    if not path.exists():
        raise where.error(column, f"{'folder' if folder else 'file'} {path} does not exist")
    if folder != path.is_dir():
        raise where.error(column, f"{path} is not a {'folder' if folder else 'file'}")
    return path


def _label_names(table: Any, label_col: str | None) -> list[str] | None:
    """Without declared classes: None when every label is an integer index, else the label column's
    distinct names in sorted order (class 0 = the first name)."""
    if label_col is None:
        return None
    labels = {str(value).strip() for value in table[label_col].dropna()} - {""}
    if all(re.fullmatch(r"[+-]?\d+", label) for label in labels):
        return None
    return sorted(labels)


def _parse_label(text: str, classes: list[str] | None, where: _Row, column: str) -> int:
    if classes is not None and text in classes:
        return classes.index(text)
    try:
        number = float(text)
    except ValueError:
        number = None
    if number is None or not number.is_integer():
        if classes is None:
            raise where.error(column, f"label '{text}' is not an integer class index; "
                                      "declare the class names (data.classes) to use names")
        raise where.error(column, f"label '{text}' is not one of the declared classes {classes}")
    index = int(number)
    if index < 0 or (classes is not None and index >= len(classes)):
        allowed = f"0..{len(classes) - 1} or one of {classes}" if classes is not None else "a non-negative index"
        raise where.error(column, f"label {index} is outside the declared classes (expected {allowed})")
    return index


def _parse_float(text: str, where: _Row, column: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise where.error(column, f"'{text}' is not a number") from None
    if not math.isfinite(value):
        raise where.error(column, f"'{text}' is not a finite number")
    return value


def _parse_survival(time_text: str, event_text: str, where: _Row, time_col: str,
                    event_col: str) -> tuple[float, int] | None:
    if not time_text and not event_text:
        return None
    if not time_text:
        raise where.error(time_col, f"survival time is empty but the event ('{event_text}') is given")
    if not event_text:
        raise where.error(event_col, f"survival event is empty but the time ('{time_text}') is given")
    try:
        time = float(time_text)
    except ValueError:
        raise where.error(time_col, f"survival time '{time_text}' is not a number") from None
    if not math.isfinite(time) or time <= 0:
        raise where.error(time_col, f"survival time must be a positive number, got {time_text}")
    try:
        event = float(event_text)
    except ValueError:
        event = None
    if event not in (0.0, 1.0):
        raise where.error(event_col, f"survival event must be 0 (censored) or 1 (event), got '{event_text}'")
    return time, int(event)


def _make_names_unique(records: list[Record], cells: list[str], csv_path: Path, name_col: str | None) -> None:
    names = [r.name for r in records]
    if len(set(names)) == len(names):
        return
    if name_col is not None:
        repeated = sorted({n for n in names if names.count(n) > 1})[:5]
        raise DataError(csv_path, f"column '{name_col}' repeats names {repeated}; names must be unique")
    for record, cell in zip(records, cells):  # stems repeat: use the path as written, without the suffix
        suffix = volume_suffix(cell)
        stem = cell[: len(cell) - len(suffix)] if suffix else str(Path(cell).with_suffix(""))
        record.name = stem.replace("\\", "/")
    names = [r.name for r in records]
    if len(set(names)) != len(names):
        repeated = sorted({n for n in names if names.count(n) > 1})[:5]
        raise DataError(csv_path, f"lists the same image more than once: {repeated}")
