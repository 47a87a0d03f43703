"""Train a configured multi-task model into a run directory, resumably.

Run directory layout::

    DIR/config.yaml            resolved configuration
    DIR/config_changes.yaml    resumable settings changed by reruns (see medmtl.training.run_dir)
    DIR/.lock                  PID and host of the process training into DIR, while it does
    DIR/checkpoints/last.ckpt  end of the last finished epoch (resume point)
    DIR/checkpoints/best.ckpt  best epoch by the monitored metric
    DIR/logs/csv/metrics.csv   every logged value; DIR/logs/tensorboard/ for TensorBoard
    DIR/metrics.json           final metrics of the selected model (trainer.select) on the validation split
    DIR/selection.json         which weights metrics.json evaluated: trainer.select, monitor, checkpoint, averaging
    DIR/metrics_test.json      same on the test split, when the data has one
    DIR/environment.json       host, CPU, threads, package versions: one entry per start (fresh or resumed)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint, RichProgressBar
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.strategies import DDPStrategy

from medmtl.builders import build_balancer, build_model
from medmtl.config import RunConfig, apply_overrides, config_from_dict
from medmtl.console import is_quiet, say
from medmtl.errors import ConfigError, DataError
from medmtl.evaluation import collect_summaries, evaluate, metrics_from_summaries
from medmtl.io_utils import atomic_write_json
from medmtl.model import MultiTaskModel
from medmtl.training.averaging import averaging_callback
from medmtl.training.checkpoint_io import AtomicCheckpointIO
from medmtl.training.environment import record_environment
from medmtl.training.lightning_module import MultiTaskModule
from medmtl.training.loaders import EpochSampler, build_loaders, evaluation_loader, unwrap_dataset
from medmtl.training.resume import HistoryCSVLogger, ResumeBookkeeping
from medmtl.training.run_dir import (RunLock, RunPlan, check_rerun, clean_partial_writes, commit_config, is_launched_rank,
                                     read_run_config)
from medmtl.training.safe_load import load_checkpoint_file
from medmtl.training.seeding import EpochSeeding
from medmtl.training.stages import StagedTraining, check_stage_prefixes


@dataclass
class RunResult:
    out_dir: Path
    metrics: dict[str, dict[str, Any]]
    best_checkpoint: Path
    test_metrics: dict[str, dict[str, Any]] | None = None
    report: Path | None = None


def monitor_for(config: RunConfig, model: MultiTaskModel) -> tuple[str, str]:
    """The metric that picks the best checkpoint: configured (checked by :func:`check_monitor`), else
    the first trained task's own."""
    if config.trainer.monitor:
        check_monitor(config.trainer.monitor, model)
        mode = config.trainer.monitor_mode or ("min" if _lower_is_better(config.trainer.monitor, model) else "max")
        return config.trainer.monitor, mode
    weights = config.loss.weights
    for name, task in model.tasks.items():
        if weights.get(name, 1.0) > 0:
            metric, mode = task.monitor
            return f"val/{name}/{metric}", mode
    return "val/loss", "min"


def _lower_is_better(monitor: str, model: MultiTaskModel) -> bool:
    """Whether the monitored value improves downwards: a loss, or a metric its task lists in
    ``lower_is_better`` (MAE, MSE, ECE)."""
    parts = monitor.split("/")
    task = model.tasks[parts[1]] if len(parts) == 3 and parts[1] in model.tasks else None
    return monitor.endswith("loss") or (task is not None and parts[2] in task.lower_is_better)


def allowed_monitors(model: MultiTaskModel) -> list[str]:
    """What validation logs: ``val/loss``, each task's ``val/<task>/loss`` and ``val/<task>/<metric>``."""
    allowed = ["val/loss"]
    for name, task in model.tasks.items():
        allowed += [f"val/{name}/loss", *(f"val/{name}/{metric}" for metric in task.metric_names)]
    return allowed


def check_monitor(monitor: str, model: MultiTaskModel) -> None:
    """A :class:`ConfigError` naming ``trainer.monitor`` and the allowed values when no task produces ``monitor``."""
    allowed = allowed_monitors(model)
    if monitor not in allowed:
        raise ConfigError("trainer.monitor", f"'{monitor}' is not produced by this model's tasks; "
                                             f"choose one of {', '.join(allowed)}")


def train(config: RunConfig, out_dir: str | Path, resume: bool = True, report: bool = False) -> RunResult:
    """Fit, keep best/last checkpoints, then evaluate the best model with bootstrap CIs.

    With ``report`` the same evaluation pass over the validation split also feeds
    ``report/report.md`` (no second pass over the data).

    The run directory is locked while training, and a rerun into a directory that holds a run
    resumes it only when the configuration is the stored one up to resumable settings, else it is
    refused before anything is written (:mod:`medmtl.training.run_dir`). A resumed run repeats the
    uninterrupted run's random draws (:mod:`medmtl.training.seeding`) and keeps its CSV history
    (:mod:`medmtl.training.resume`).
    """
    out_dir = Path(out_dir)
    if is_launched_rank():  # rank > 0 of a DDP run: rank 0 holds the lock and has checked the configuration
        return _fit_and_evaluate(config, out_dir, None, report)
    with RunLock(out_dir):
        clean_partial_writes(out_dir)
        plan = check_rerun(config, out_dir, resume)  # raises before anything is written
        return _fit_and_evaluate(config, out_dir, plan, report)


def _fit_and_evaluate(config: RunConfig, out_dir: Path, plan: RunPlan | None, report: bool) -> RunResult:
    """:func:`train` in a checked and locked run directory (``plan`` is None on ranks > 0 of a DDP run)."""
    checkpoints = out_dir / "checkpoints"
    last = checkpoints / "last.ckpt"
    if config.trainer.num_threads:
        torch.set_num_threads(config.trainer.num_threads)
    L.seed_everything(config.seed, workers=True, verbose=False)
    model = build_model(config)
    loaders = build_loaders(config, model)
    module = MultiTaskModule(model, build_balancer(config, model), config.optim)
    monitor, mode = monitor_for(config, model)
    stages = [(stage.epochs, stage.train) for stage in config.trainer.stages]
    check_stage_prefixes(model, stages)
    if plan is not None:
        commit_config(config, out_dir, plan)  # only now: the model and the data could be built

    trainer = _make_trainer(config, out_dir, monitor, mode, loaders["train"])
    device = describe_device(trainer)
    say(f"training on {device} → {out_dir}")
    ckpt_path = str(last) if last.exists() else None
    if plan is not None:  # rank 0
        record_environment(out_dir, device, last.name if ckpt_path else None)
    trainer.fit(module, loaders["train"], loaders.get("val"), ckpt_path=ckpt_path)
    if trainer.global_rank != 0:
        return RunResult(out_dir, {}, checkpoints / "best.ckpt")

    best = _selected_checkpoint(config, trainer, last)
    info = load_weights(model, best)
    atomic_write_json(out_dir / "selection.json", {
        "select": config.trainer.select, "monitor": monitor if config.trainer.select == "best" else None,
        "monitor_mode": mode if config.trainer.select == "best" else None, **info.as_dict(),
        "weights": ("ema" if config.trainer.ema_decay is not None else
                    "swa" if config.trainer.swa_start is not None else "raw"),
        "ema_decay": config.trainer.ema_decay, "swa_start": config.trainer.swa_start,
        "ema_batchnorm": config.trainer.ema_batchnorm if config.trainer.ema_decay is not None else None})
    eval_split = "val" if "val" in loaders else "train"
    eval_loader = evaluation_loader(config, unwrap_dataset(loaders[eval_split].dataset))
    summaries = collect_summaries(model, eval_loader)
    metrics = metrics_from_summaries(model, summaries, config.trainer.n_bootstrap, config.seed)
    atomic_write_json(out_dir / "metrics.json", metrics)
    test_metrics = None
    if "test" in loaders:
        test_metrics = evaluate(model, evaluation_loader(config, unwrap_dataset(loaders["test"].dataset)),
                                config.trainer.n_bootstrap, config.seed)
        atomic_write_json(out_dir / "metrics_test.json", test_metrics)
    report_path = None
    if report and metrics:
        from medmtl.report.run_report import write_report  # matplotlib only when a report is asked for

        report_path = write_report(out_dir, config, model, eval_loader, metrics, split=eval_split, summaries=summaries)
    return RunResult(out_dir, metrics, best, test_metrics, report_path)


def _selected_checkpoint(config: RunConfig, trainer: L.Trainer, last: Path) -> Path:
    """The checkpoint ``trainer.select`` names: best.ckpt (last.ckpt when nothing was monitored, e.g.
    without validation data) for ``best``, last.ckpt for ``last`` and ``ema``. With weight averaging on,
    every checkpoint's ``state_dict`` holds the averaged weights (see :mod:`medmtl.training.averaging`):
    ``last`` and ``ema`` are then the same weights, the average at the end of training."""
    if config.trainer.select == "best":
        return Path(trainer.checkpoint_callback.best_model_path or last)
    return last


class _ProgressBar(RichProgressBar):
    """Lightning's rich progress bar without the logger's version number (``v_num``: meaningless here)."""

    def get_metrics(self, trainer: L.Trainer, pl_module: L.LightningModule) -> dict[str, Any]:
        metrics = super().get_metrics(trainer, pl_module)
        metrics.pop("v_num", None)
        return metrics


def describe_device(trainer: L.Trainer) -> str:
    """The device a trainer computes on, for the user: ``cpu (2 threads)``, ``cuda:0 (NVIDIA H200)``,
    with the number of processes under DDP."""
    device = trainer.strategy.root_device
    if device.type == "cuda":
        text = f"{device} ({torch.cuda.get_device_name(device)})"
    elif device.type == "cpu":
        text = f"cpu ({torch.get_num_threads()} threads)"
    else:
        text = str(device)
    return text + (f", {trainer.world_size} processes ({type(trainer.strategy).__name__})" if trainer.world_size > 1 else "")


def _make_trainer(config: RunConfig, out_dir: Path, monitor: str, mode: str, train_loader: Any) -> L.Trainer:
    """The Lightning trainer of a run: best/last checkpoints, early stopping, stages, logs, and what
    makes a resume exact and keeps the history (per-epoch reseeding and the sampler's epoch, the CSV
    logger that keeps the finished epochs' rows, the configured patience and schedule length)."""
    t = config.trainer
    checkpoints = out_dir / "checkpoints"
    sampler = train_loader.sampler if isinstance(train_loader.sampler, EpochSampler) else None
    callbacks: list[Any] = [
        # best.ckpt: rewritten only when the monitored metric improves (trainer.checkpoint_callback: first)
        ModelCheckpoint(dirpath=checkpoints, filename="best", monitor=monitor, mode=mode, save_top_k=1,
                        save_last=False, auto_insert_metric_name=False, enable_version_counter=False),
        # last.ckpt: every epoch, whatever the metric did (save_last=True on the one above would only
        # follow its saves). Saved after best.ckpt at the same hook, so it holds best's updated state.
        ModelCheckpoint(dirpath=checkpoints, filename="last", monitor=None, save_top_k=1, every_n_epochs=1,
                        save_last=False, auto_insert_metric_name=False, enable_version_counter=False),
    ]
    callbacks += [EpochSeeding(config.seed, sampler), ResumeBookkeeping(t.patience)]
    averaging = averaging_callback(t)  # EMA / SWA: validated and checkpointed weights are the averaged ones
    if averaging is not None:
        callbacks.append(averaging)
    if t.stages:
        callbacks.append(StagedTraining([(stage.epochs, stage.train) for stage in t.stages]))
    if t.patience > 0:
        callbacks.append(EarlyStopping(monitor=monitor, mode=mode, patience=t.patience, min_delta=t.min_delta,
                                       check_finite=False))
    progress_bar = t.progress_bar and not is_quiet()
    if progress_bar:
        callbacks.append(_ProgressBar())
    strategy: Any = t.strategy
    if t.strategy == "ddp":
        # heads with weight 0 or without labels in a batch leave parameters unused
        strategy = DDPStrategy(process_group_backend=None,  # Lightning's choice: gloo on CPUs, nccl on GPUs
                               find_unused_parameters=True)
    loggers = [HistoryCSVLogger(out_dir / "logs", name="", version="csv"),
               TensorBoardLogger(out_dir / "logs", name="", version="tensorboard", default_hp_metric=False)]
    return L.Trainer(
        max_epochs=t.max_epochs, accelerator=t.accelerator, devices=t.devices, strategy=strategy,
        # "warn": deterministic algorithms wherever torch has them; on a GPU a few ops (e.g. the bilinear
        # up-sampling's backward) have none and would otherwise stop the run
        precision=t.precision, deterministic="warn" if t.deterministic else False, callbacks=callbacks,
        logger=loggers, plugins=[AtomicCheckpointIO()],
        # None = "all", without Lightning's line echoing an explicit 1.0 back to the user
        limit_train_batches=t.limit_train_batches if t.limit_train_batches < 1 else None,
        limit_val_batches=t.limit_val_batches if t.limit_val_batches < 1 else None,
        log_every_n_steps=t.log_every_n_steps, enable_progress_bar=progress_bar,
        enable_model_summary=False, num_sanity_val_steps=0,
    )


@dataclass
class CheckpointInfo:
    """Which checkpoint a model was loaded from: its file, finished epochs and optimiser steps."""

    path: Path
    epochs: int | None = None
    global_step: int | None = None

    def describe(self) -> str:
        when = [f"epoch {self.epochs}"] if self.epochs is not None else []
        when += [f"step {self.global_step}"] if self.global_step is not None else []
        return f"{self.path}" + (f" ({', '.join(when)})" if when else "")

    def as_dict(self) -> dict[str, Any]:
        return {"checkpoint": str(self.path), "epochs": self.epochs, "global_step": self.global_step}


def load_weights(model: MultiTaskModel, checkpoint: Path) -> CheckpointInfo:
    """Load a Lightning checkpoint's ``model.*`` weights into ``model`` (weights-only: the file cannot
    run code, see :mod:`medmtl.training.safe_load`); returns which epoch they are from."""
    checkpoint = Path(checkpoint)
    content = load_checkpoint_file(checkpoint)
    state = content.get("state_dict")
    if not isinstance(state, dict):
        raise DataError(checkpoint, "is not a medmtl checkpoint (it has no state_dict)")
    try:
        model.load_state_dict({k[len("model."):]: v for k, v in state.items() if k.startswith("model.")})
    except RuntimeError as exc:
        detail = " ".join(line.strip() for line in str(exc).splitlines()[:2])
        raise DataError(checkpoint, f"does not fit this run's model: {detail[:400]}") from None
    epoch, step = content.get("epoch"), content.get("global_step")
    # Lightning stores the index of the epoch being finished: the checkpoint holds epoch + 1 finished epochs
    return CheckpointInfo(checkpoint, epoch + 1 if isinstance(epoch, int) else None,
                          step if isinstance(step, int) else None)


def run_checkpoint(run_dir: str | Path, checkpoint: str | Path = "selected") -> Path:
    """The checkpoint file ``checkpoint`` names in a run: ``selected`` (the file selection.json names:
    what ``trainer.select`` chose and metrics.json evaluated; ``best`` for a run without it, e.g. one
    still training), ``best`` (best.ckpt; last.ckpt for a run that has no best, e.g. one without
    validation data), ``last`` (end of the last finished epoch) or a path."""
    run_dir = Path(run_dir)
    folder = run_dir / "checkpoints"
    if str(checkpoint) == "selected":
        chosen = _selected_file(run_dir)
        return chosen if chosen is not None else run_checkpoint(run_dir, "best")
    if str(checkpoint) in ("best", "last"):
        names = ["best.ckpt", "last.ckpt"] if str(checkpoint) == "best" else ["last.ckpt"]
        for name in names:
            if (folder / name).is_file():
                return folder / name
        raise DataError(folder / names[0], "does not exist: the run has not finished an epoch yet"
                        if not (folder / "last.ckpt").exists() else "does not exist")
    path = Path(checkpoint)
    if not path.is_file():
        raise DataError(path, "checkpoint does not exist (a checkpoint is selected, best, last or the path of a "
                              ".ckpt file)")
    return path


def _selected_file(run_dir: Path) -> Path | None:
    """The checkpoint selection.json names, looked up by file name in ``run_dir/checkpoints`` (so a
    moved run directory still finds it); None without selection.json or that file."""
    import json

    try:
        named = json.loads((run_dir / "selection.json").read_text()).get("checkpoint")
    except (OSError, ValueError, AttributeError):
        return None
    path = run_dir / "checkpoints" / Path(str(named)).name if named else None
    return path if path is not None and path.is_file() else None


def load_run(run_dir: str | Path, checkpoint: str | Path = "selected") -> tuple[RunConfig, MultiTaskModel]:
    """The configuration and model of a finished (or interrupted) run directory, with the weights of
    ``checkpoint`` (see :func:`run_checkpoint`): ``selected`` (default), ``best``, ``last`` or the path
    of a checkpoint of this run's model. An ensemble directory (:mod:`medmtl.ensemble`) gives an
    :class:`~medmtl.ensemble.EnsembleModel`."""
    config, model, _ = load_run_checkpoint(run_dir, checkpoint)
    return config, model


def load_run_checkpoint(run_dir: str | Path, checkpoint: str | Path = "selected"
                        ) -> tuple[RunConfig, MultiTaskModel, CheckpointInfo]:
    """:func:`load_run`, and which checkpoint (file, epoch, step) the weights came from (an ensemble:
    an :class:`~medmtl.ensemble.EnsembleInfo` of its members' checkpoints)."""
    run_dir = Path(run_dir)
    if (run_dir / "ensemble.json").is_file():
        from medmtl.ensemble import load_ensemble

        return load_ensemble(run_dir, checkpoint)
    config = read_run_config(run_dir)
    model = build_model(config)
    info = load_weights(model, run_checkpoint(run_dir, checkpoint))
    model.eval()
    return config, model, info


def with_data_overrides(config: RunConfig, overrides: list[str]) -> RunConfig:
    """``config`` with ``data.key=value`` overrides applied, e.g. to evaluate a run on other images.

    Only the data section may change: the weights were trained for the run's model, loss and tasks.
    """
    for item in overrides:
        if not item.startswith("data."):
            raise ConfigError(item, "only data.* settings can change when evaluating a trained run")
    if not overrides:
        return config
    raw = apply_overrides(config.model_dump(mode="json"), overrides)
    return config_from_dict(raw, source="evaluation overrides")
