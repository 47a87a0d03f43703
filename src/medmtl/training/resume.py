"""What a resumed run keeps of the interrupted one: its training history and (changed) resumable settings.

- :class:`HistoryCSVLogger`: Lightning's ``CSVLogger`` deletes ``metrics.csv`` when it starts in a
  folder that has one; this one keeps the rows of the finished epochs (those before the epoch the
  run resumes at; rows of the interrupted epoch are dropped, that epoch is trained again) and
  appends the new ones. It writes every logged row at once, so a killed run loses none.
- :class:`ResumeBookkeeping`: after the checkpoint is restored, trims the CSV history and applies
  the configured values of the resumable settings that a checkpoint would otherwise override:
  early stopping's ``patience`` (Lightning restores the old one) and the cosine schedule's length
  (its ``T_max`` is the ``max_epochs`` the run was started with; with more epochs the learning rate
  continues on the cosine of the new length instead of rising again after the old end).
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch import Callback
from lightning.pytorch.callbacks import EarlyStopping
from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter
from lightning.pytorch.loggers.logger import rank_zero_experiment
from lightning.pytorch.utilities import rank_zero_only
from torch.optim.lr_scheduler import CosineAnnealingLR

from medmtl.io_utils import atomic_write_text


class _KeepingWriter(ExperimentWriter):
    """Lightning's CSV writer without the deletion of an existing ``metrics.csv``."""

    def _check_log_dir_exists(self) -> None:
        pass


def _epoch_of(row: dict[Any, Any]) -> int | None:
    if None in row or any(value is None for value in row.values()):  # a line cut short by a kill
        return None
    try:
        return int(float(row.get("epoch") or ""))
    except ValueError:
        return None


class HistoryCSVLogger(CSVLogger):
    """A ``CSVLogger`` that a resumed run continues (see the module docstring); rows are written as they are logged."""

    def __init__(self, save_dir: str | Path, name: str | None = "", version: int | str | None = "csv") -> None:
        super().__init__(save_dir, name=name, version=version, flush_logs_every_n_steps=1)

    @property
    @rank_zero_experiment
    def experiment(self) -> ExperimentWriter:
        if self._experiment is None:
            self._fs.makedirs(self.root_dir, exist_ok=True)
            self._experiment = _KeepingWriter(log_dir=self.log_dir)
        return self._experiment

    @rank_zero_only
    def keep_epochs_before(self, epoch: int) -> None:
        """Keep the rows of epochs ``< epoch`` in ``metrics.csv`` (none: delete it) and log after them."""
        writer = self.experiment
        path = Path(writer.metrics_file_path)
        header: list[str] = []
        rows: list[dict[str, Any]] = []
        if path.is_file():
            with path.open(newline="") as handle:
                reader = csv.DictReader(handle)
                header = list(reader.fieldnames or [])
                rows = [row for row in reader if (row_epoch := _epoch_of(row)) is not None and row_epoch < epoch]
        writer.metrics = []
        if not rows:
            writer.metrics_keys = []
            path.unlink(missing_ok=True)
            return
        writer.metrics_keys = header
        text = io.StringIO(newline="")
        table = csv.DictWriter(text, fieldnames=header)
        table.writeheader()
        table.writerows(rows)
        atomic_write_text(path, text.getvalue())


class ResumeBookkeeping(Callback):
    """Trim the CSV history to the finished epochs and apply the configured patience and schedule length."""

    def __init__(self, patience: int) -> None:
        self.patience = patience
        self.start_epoch = 0

    def on_load_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]) -> None:
        self.start_epoch = int(checkpoint.get("epoch", -1)) + 1  # written at the end of that epoch

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        for logger in trainer.loggers:
            if isinstance(logger, HistoryCSVLogger):
                logger.keep_epochs_before(self.start_epoch)
        for callback in trainer.callbacks:  # type: ignore[attr-defined]
            if isinstance(callback, EarlyStopping):
                callback.patience = self.patience
        if trainer.max_epochs:
            for config in trainer.lr_scheduler_configs:
                if isinstance(config.scheduler, CosineAnnealingLR):
                    stretch_cosine(config.scheduler, max(1, int(trainer.max_epochs)))


def stretch_cosine(scheduler: CosineAnnealingLR, t_max: int) -> None:
    """Give a cosine schedule a new length, its learning rates set to the new cosine at the current step."""
    if scheduler.T_max == t_max:
        return
    scheduler.T_max = t_max
    step = min(scheduler.last_epoch, t_max)
    factor = (1 + math.cos(math.pi * step / t_max)) / 2
    for group, base in zip(scheduler.optimizer.param_groups, scheduler.base_lrs):
        group["lr"] = scheduler.eta_min + (base - scheduler.eta_min) * factor
    scheduler._last_lr = [group["lr"] for group in scheduler.optimizer.param_groups]

