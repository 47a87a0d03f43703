"""Atomic file writes: a killed run never leaves a half-written file behind."""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path, PurePath
from typing import Any


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write to a temporary file in the same folder, fsync, then rename over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        if hasattr(os, "fchmod"):  # mkstemp makes 0600; a written file gets the user's umask, as with open()
            os.fchmod(fd, 0o666 & ~current_umask())
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def current_umask() -> int:
    """The process's umask, read without changing it (``os.umask`` changes it, for a moment, in every thread)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)  # no /proc (macOS): set and restore
    os.umask(mask)
    return mask


def is_partial_write(path: str | Path) -> bool:
    """Whether ``path`` is named like the temporary file of an :func:`atomic_write_bytes` (``.<name>.<random>.tmp``)."""
    name = PurePath(path).name
    return name.startswith(".") and name.endswith(".tmp") and name.count(".") >= 3


def remove_partial_writes(folder: str | Path) -> list[Path]:
    """Delete the temporary files that interrupted atomic writes left in ``folder`` (not in its subfolders)."""
    folder = Path(folder)
    removed = []
    if folder.is_dir():
        for path in folder.iterdir():
            if is_partial_write(path) and path.is_file():
                path.unlink(missing_ok=True)
                removed.append(path)
    return removed


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def json_safe(value: Any) -> Any:
    """``value`` with NaN/inf as None, NumPy/torch scalars as Python numbers, paths as strings."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if hasattr(value, "item"):
        return json_safe(value.item())
    if isinstance(value, PurePath):
        return str(value)
    return value


def atomic_write_json(path: str | Path, data: Any) -> None:
    """JSON with NaN/inf written as null (valid JSON for every reader)."""
    atomic_write_text(path, json.dumps(json_safe(data), indent=2) + "\n")
