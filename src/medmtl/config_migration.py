"""Configurations written by older medmtl versions, read with today's names.

Run directories keep their ``config.yaml``, so a renamed key must not make an old run unreadable.
:func:`migrate_old_keys` renames, warns once (``FutureWarning``) with every rename it made, and
never changes the caller's dict. Renames so far:

- ``data.split`` (the published partition's number) → ``data.fold``; ``{split}`` in split-file
  paths → ``{fold}``;
- small_cnn's ``model.encoder.options.depth`` (its number of stages) → ``stages``;
- a pooled task's ``levels`` (``last``/``all``) → ``pool_from``; a task's ``target: null`` (meaning
  "the kind's default") is dropped, since every kind now states its default target.
"""

from __future__ import annotations

import copy
import warnings
from typing import Any

from medmtl.errors import ConfigError


def migrate_old_keys(raw: dict[str, Any], source: str) -> dict[str, Any]:
    """``raw`` with old names replaced by today's (a copy when anything changed)."""
    if not isinstance(raw, dict):
        return raw
    migrated = copy.deepcopy(raw)
    renamed = _data(migrated, source) + _encoder(migrated) + _tasks(migrated)
    if not renamed:
        return raw
    warnings.warn(f"{source} uses old names: {'; '.join(renamed)}", FutureWarning, stacklevel=3)
    return migrated


def _data(raw: dict[str, Any], source: str) -> list[str]:
    data = raw.get("data")
    if not isinstance(data, dict):
        return []
    renamed = []
    if "split" in data:
        split = data.pop("split")
        if data.get("fold") is not None and split is not None and data["fold"] != split:
            raise ConfigError("data.split", f"was renamed data.fold, and {source} sets both (split {split!r}, "
                                            f"fold {data['fold']!r}): keep only data.fold")
        if split is not None:
            data["fold"] = split
        renamed.append(f"'data.split' is now 'data.fold' (read as data.fold={split!r})")
    placeholders = [key for key, value in data.items() if isinstance(value, str) and "{split}" in value]
    for key in placeholders:
        data[key] = data[key].replace("{split}", "{fold}")
    if placeholders:
        renamed.append("the placeholder {split} is now {fold} (in " + ", ".join(f"data.{k}" for k in placeholders)
                       + ")")
    return renamed


def _encoder(raw: dict[str, Any]) -> list[str]:
    encoder = raw.get("model", {}).get("encoder") if isinstance(raw.get("model"), dict) else None
    if not isinstance(encoder, dict) or encoder.get("name") != "small_cnn":
        return []
    options = encoder.get("options")
    if not isinstance(options, dict) or "depth" not in options or "stages" in options:
        return []
    options["stages"] = options.pop("depth")
    return ["small_cnn's 'model.encoder.options.depth' is now 'stages'"]


def _tasks(raw: dict[str, Any]) -> list[str]:
    tasks = raw.get("model", {}).get("tasks") if isinstance(raw.get("model"), dict) else None
    if not isinstance(tasks, list):
        return []
    renamed = []
    for index, task in enumerate(tasks):
        if not isinstance(task, dict):
            continue
        if "levels" in task and "pool_from" not in task:
            task["pool_from"] = task.pop("levels")
            renamed.append(f"'model.tasks.{index}.levels' is now 'pool_from'")
        if "target" in task and task["target"] is None:
            del task["target"]  # null meant the kind's default; the default is now stated by the kind
    return renamed
