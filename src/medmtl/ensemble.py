"""Ensembles: several trained runs used as one model.

An ensemble directory holds::

    DIR/ensemble.json   {"members": [run directories, relative to DIR when inside it], "checkpoint":
                         which checkpoint of each member ("selected" by default), "splits_differ":
                         whether the members were trained on different train/validation partitions,
                         "made_by": "cv" or "ensemble"}
    DIR/config.yaml     the first member's configuration: the data preprocessing and the tasks that
                        evaluate, predict, export and report read

``medmtl cv`` writes one over its fold runs (:mod:`medmtl.cv`); ``medmtl ensemble RUN... --out DIR``
over any runs whose models agree. :func:`medmtl.training.run.load_run_checkpoint` recognises the
directory, so ``evaluate``, ``predict``, ``export`` and ``report`` use it like a single run.

:class:`EnsembleModel` runs every member on the same input and merges each task's raw outputs with
:meth:`medmtl.tasks.base.Task.merge_outputs`, as test-time augmentation merges transformed copies:
the mean of the class probabilities (classification) and of the per-pixel/voxel class probabilities
(segmentation), the mean of the values (regression, reconstruction) and of the log-risks (survival).
A task that cannot merge (detection: boxes) cannot be ensembled.

Members must agree on what goes in and what comes out: the tasks (names and kinds, in order), the
input (channels, image size, spatial dims, volume preprocessing, class names) and each task's output
shape on the same input; otherwise a :class:`~medmtl.errors.DataError` names the member and the
difference. Members trained on different partitions (``splits_differ``: cross-validation folds)
have each seen the others' validation images, so the ensemble is evaluated on a held-out test split
only (:func:`check_evaluation_split`).
"""

from __future__ import annotations

import json
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from medmtl.config import RunConfig
from medmtl.errors import ConfigError, DataError
from medmtl.io_utils import atomic_write_json, atomic_write_text
from medmtl.model import MultiTaskModel

ENSEMBLE_FILE = "ensemble.json"


class EnsembleModel(nn.Module):
    """``members`` (trained :class:`MultiTaskModel` s that agree, see :func:`check_agreement`) as one
    model: ``model(image [B, C, *S]) -> {task: merged raw output}`` shaped like one member's."""

    def __init__(self, members: Sequence[MultiTaskModel], splits_differ: bool = False) -> None:
        super().__init__()
        if not members:
            raise ConfigError("ensemble", "an ensemble needs at least one member")
        for name, task in members[0].tasks.items():
            if getattr(task, "merge_outputs", None) is None:
                raise ConfigError("ensemble", f"task '{name}' ({task.kind}) cannot be ensembled: "
                                              f"{task.merge_refusal}")
        self.members = nn.ModuleList(members)
        #: the members were trained on different train/validation partitions (cross-validation)
        self.splits_differ = splits_differ

    @property
    def tasks(self) -> nn.ModuleDict:
        return self.members[0].tasks

    @property
    def wants_boxes_from_masks(self) -> bool:
        return self.members[0].wants_boxes_from_masks

    @property
    def image_channels(self) -> int:
        return self.members[0].image_channels

    @property
    def encoder(self) -> Any:
        raise ConfigError("ensemble", f"an ensemble has one encoder per member ({len(self.members)}); use one "
                                      "member's run directory where a single encoder is needed")

    def forward(self, image: torch.Tensor, batch: dict[str, Any] | None = None,
                tasks: Collection[str] | None = None) -> dict[str, Any]:
        runs = [member(image, batch, tasks) for member in self.members]
        if len(runs) == 1:
            return runs[0]
        return {name: self.tasks[name].merge_outputs([run[name] for run in runs]) for name in runs[0]}

    @torch.no_grad()
    def predict(self, image: torch.Tensor) -> dict[str, Any]:
        """User-facing predictions per task (``Task.postprocess`` of the merged outputs)."""
        outputs = self(image)
        return {name: self.tasks[name].postprocess(out) for name, out in outputs.items()}


@dataclass
class EnsembleInfo:
    """Which checkpoint of each member an ensemble was loaded from (the ensemble's counterpart of
    :class:`medmtl.training.run.CheckpointInfo`)."""

    path: Path
    members: list[Any]

    def describe(self) -> str:
        return f"ensemble {self.path} of {len(self.members)} runs: " + "; ".join(m.describe() for m in self.members)

    def as_dict(self) -> dict[str, Any]:
        return {"checkpoint": f"ensemble {self.path}", "members": [m.as_dict() for m in self.members]}


def is_ensemble(path: str | Path) -> bool:
    return (Path(path) / ENSEMBLE_FILE).is_file()


def load_ensemble(directory: str | Path, checkpoint: str | Path = "selected"
                  ) -> tuple[RunConfig, EnsembleModel, EnsembleInfo]:
    """The configuration, :class:`EnsembleModel` (in eval mode) and member checkpoints of an ensemble
    directory. ``checkpoint`` applies to every member: ``selected`` (default: ensemble.json's choice),
    ``best`` or ``last``; a file path is a :class:`ConfigError` (each member has its own files)."""
    from medmtl.training.run import load_run_checkpoint, read_run_config

    directory = Path(directory)
    spec = _read_spec(directory)
    if str(checkpoint) not in ("selected", "best", "last"):
        raise ConfigError("--checkpoint", f"{directory} is an ensemble: choose selected, best or last for its "
                                          "members; a .ckpt path belongs to one run")
    which = spec.get("checkpoint", "selected") if str(checkpoint) == "selected" else str(checkpoint)
    paths = [_member_path(directory, entry) for entry in spec["members"]]
    loaded = [load_run_checkpoint(path, which) for path in paths]
    configs, models, infos = zip(*loaded)
    check_agreement(list(paths), list(configs), list(models))
    model = EnsembleModel(list(models), splits_differ=bool(spec.get("splits_differ", False))).eval()
    return read_run_config(directory), model, EnsembleInfo(directory, list(infos))


def write_ensemble(out_dir: str | Path, members: Sequence[str | Path], checkpoint: str = "selected",
                   made_by: str = "ensemble", splits_differ: bool | None = None) -> Path:
    """Check that ``members`` (run directories) agree and write ``out_dir/ensemble.json`` and
    ``config.yaml`` (the first member's); returns ensemble.json's path. ``splits_differ`` (default:
    whether the members' data sections differ other than in their seeds) records that they were trained
    on different partitions."""
    from medmtl.training.run import load_run_checkpoint

    out_dir = Path(out_dir)
    paths = [Path(member) for member in members]
    if len(paths) < 2:
        raise ConfigError("ensemble", f"an ensemble needs at least two runs, got {len(paths)}")
    if out_dir.resolve() in [p.resolve() for p in paths]:
        raise ConfigError("--out", f"{out_dir} is one of the members; write the ensemble to a folder of its own")
    for path in paths:
        if is_ensemble(path):
            raise DataError(path, "is an ensemble itself; list its member runs instead")
        if not (path / "config.yaml").is_file():
            raise DataError(path, "is not a medmtl run directory (it has no config.yaml)")
    loaded = [load_run_checkpoint(path, checkpoint) for path in paths]
    configs = [c for c, _, _ in loaded]
    check_agreement(paths, configs, [m for _, m, _ in loaded])
    EnsembleModel([m for _, m, _ in loaded])  # a task that cannot be merged fails here, before writing
    if splits_differ is None:
        splits_differ = len({json.dumps({k: v for k, v in c.data.model_dump(mode="json").items() if k != "seed"},
                                        sort_keys=True) for c in configs}) > 1
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out_dir / "config.yaml", (paths[0] / "config.yaml").read_text())
    spec = {"members": [_relative(out_dir, path) for path in paths], "checkpoint": checkpoint,
            "splits_differ": splits_differ, "made_by": made_by}
    atomic_write_json(out_dir / ENSEMBLE_FILE, spec)
    return out_dir / ENSEMBLE_FILE


def check_agreement(paths: Sequence[Path], configs: Sequence[RunConfig], models: Sequence[MultiTaskModel]) -> None:
    """A :class:`DataError` naming the first member that differs from the first one in its tasks, its
    input or a task's output shape (see the module docstring)."""
    reference = _signature(configs[0], models[0])
    for path, config, model in zip(paths[1:], configs[1:], models[1:]):
        signature = _signature(config, model)
        for key, value in signature.items():
            if value != reference[key]:
                raise DataError(path, f"does not fit the ensemble: its {key} {value} differ from {reference[key]} of "
                                      f"{paths[0]} (members must agree on tasks, input and outputs)")


def check_evaluation_split(model: Any, split: str) -> None:
    """A :class:`ConfigError` on ``--split`` when ``model`` is an ensemble whose members were trained on
    different partitions and ``split`` is one they trained or selected on (train, val)."""
    if isinstance(model, EnsembleModel) and model.splits_differ and split != "test":
        raise ConfigError("--split", f"the ensemble's members were trained on different partitions, so each has "
                                     f"seen the others' {split} images: evaluate the ensemble on a held-out test "
                                     "split (--split test); a cross-validation's out-of-fold metrics are in its cv.json")


def default_split(model: Any, otherwise: str) -> str:
    """The split evaluate and report use without ``--split``: ``test`` for an ensemble of members trained
    on different partitions (see :func:`check_evaluation_split`), else ``otherwise``."""
    return "test" if isinstance(model, EnsembleModel) and model.splits_differ else otherwise


def _signature(config: RunConfig, model: MultiTaskModel) -> dict[str, Any]:
    data = config.data
    shape = (1, data.channels, *data.image_shape)
    model.eval()
    with torch.no_grad():
        outputs = model(torch.zeros(shape))
    return {
        "tasks": [(name, task.kind) for name, task in model.tasks.items()],
        "input (channels, size, spatial dims)": (data.channels, tuple(data.image_shape), data.spatial_dims),
        "volume preprocessing": data.volume.model_dump(mode="json") if data.volume is not None else None,
        "class names": data.classes,
        "output shapes": {name: _shapes(out) for name, out in outputs.items()},
    }


def _shapes(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return tuple(value.shape)
    if isinstance(value, dict):
        return {key: _shapes(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_shapes(item) for item in value]
    return type(value).__name__


def _read_spec(directory: Path) -> dict[str, Any]:
    path = directory / ENSEMBLE_FILE
    try:
        spec = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise DataError(path, f"cannot be read as JSON: {error}") from None
    members = spec.get("members") if isinstance(spec, dict) else None
    if not isinstance(members, list) or not members or not all(isinstance(m, str) for m in members):
        raise DataError(path, "has no 'members' list of run directories")
    return spec


def _member_path(directory: Path, entry: str) -> Path:
    path = Path(entry)
    path = path if path.is_absolute() else directory / path
    if not (path / "config.yaml").is_file():
        raise DataError(directory / ENSEMBLE_FILE, f"names member {entry}, which is not a medmtl run directory "
                                                   f"({path} has no config.yaml)")
    return path


def _relative(out_dir: Path, path: Path) -> str:
    try:
        return str(path.resolve().relative_to(out_dir.resolve()))
    except ValueError:
        return str(path.resolve())
