"""Train a configured multi-task model into a run directory, resumably.

Run directory layout::

    DIR/config.yaml            resolved configuration
    DIR/checkpoints/last.ckpt  end of the last finished epoch (resume point)
    DIR/checkpoints/best.ckpt  best epoch by the monitored metric
    DIR/logs/csv/metrics.csv   every logged value; DIR/logs/tensorboard/ for TensorBoard
    DIR/metrics.json           final metrics of the best model on the validation split
    DIR/metrics_test.json      same on the test split, when the data has one
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import torch
import yaml
from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger
from lightning.pytorch.strategies import DDPStrategy

from medmtl.builders import build_balancer, build_model
from medmtl.config import RunConfig, apply_overrides, config_from_dict, save_config
from medmtl.errors import ConfigError, DataError
from medmtl.evaluation import collect_summaries, evaluate, metrics_from_summaries
from medmtl.io_utils import atomic_write_json
from medmtl.model import MultiTaskModel
from medmtl.training.checkpoint_io import AtomicCheckpointIO
from medmtl.training.lightning_module import MultiTaskModule
from medmtl.training.loaders import build_loaders, evaluation_loader
from medmtl.training.stages import StagedTraining, check_stage_prefixes


@dataclass
class RunResult:
    out_dir: Path
    metrics: dict[str, dict[str, Any]]
    best_checkpoint: Path
    test_metrics: dict[str, dict[str, Any]] | None = None
    report: Path | None = None


def monitor_for(config: RunConfig, model: MultiTaskModel) -> tuple[str, str]:
    """The metric that picks the best checkpoint: configured, else the first trained task's own."""
    if config.trainer.monitor:
        mode = config.trainer.monitor_mode or ("min" if config.trainer.monitor.endswith("loss") else "max")
        return config.trainer.monitor, mode
    weights = config.loss.weights
    for name, task in model.tasks.items():
        if weights.get(name, 1.0) > 0:
            metric, mode = task.monitor
            return f"val/{name}/{metric}", mode
    return "val/loss", "min"


def train(config: RunConfig, out_dir: str | Path, resume: bool = True, report: bool = False) -> RunResult:
    """Fit, keep best/last checkpoints, then evaluate the best model with bootstrap CIs.

    With ``report`` the same evaluation pass over the validation split also feeds
    ``report/report.md`` (no second pass over the data).
    """
    out_dir = Path(out_dir)
    checkpoints = out_dir / "checkpoints"
    last = checkpoints / "last.ckpt"
    if last.exists() and not resume:
        raise ConfigError("--out", f"{out_dir} already holds a run; pass --resume to continue it or choose another folder")
    if config.trainer.num_threads:
        torch.set_num_threads(config.trainer.num_threads)
    L.seed_everything(config.seed, workers=True, verbose=False)
    model = build_model(config)
    loaders = build_loaders(config, model)
    module = MultiTaskModule(model, build_balancer(config, model), config.optim)
    monitor, mode = monitor_for(config, model)
    stages = [(stage.epochs, stage.train) for stage in config.trainer.stages]
    check_stage_prefixes(model, stages)
    save_config(config, out_dir / "config.yaml")

    trainer = _make_trainer(config, out_dir, monitor, mode)
    ckpt_path = str(last) if last.exists() else None
    trainer.fit(module, loaders["train"], loaders.get("val"), ckpt_path=ckpt_path)
    if trainer.global_rank != 0:
        return RunResult(out_dir, {}, checkpoints / "best.ckpt")

    best = Path(trainer.checkpoint_callback.best_model_path or last)
    load_weights(model, best)
    eval_split = "val" if "val" in loaders else "train"
    eval_loader = evaluation_loader(config, loaders[eval_split].dataset)
    summaries = collect_summaries(model, eval_loader)
    metrics = metrics_from_summaries(model, summaries, config.trainer.n_bootstrap, config.seed)
    atomic_write_json(out_dir / "metrics.json", metrics)
    test_metrics = None
    if "test" in loaders:
        test_metrics = evaluate(model, evaluation_loader(config, loaders["test"].dataset), config.trainer.n_bootstrap,
                                config.seed)
        atomic_write_json(out_dir / "metrics_test.json", test_metrics)
    report_path = None
    if report and metrics:
        from medmtl.report.run_report import write_report  # matplotlib only when a report is asked for

        report_path = write_report(out_dir, config, model, eval_loader, metrics, split=eval_split, summaries=summaries)
    return RunResult(out_dir, metrics, best, test_metrics, report_path)


def _make_trainer(config: RunConfig, out_dir: Path, monitor: str, mode: str) -> L.Trainer:
    t = config.trainer
    callbacks: list[Any] = [
        ModelCheckpoint(dirpath=out_dir / "checkpoints", filename="best", monitor=monitor, mode=mode,
                        save_top_k=1, save_last=True, auto_insert_metric_name=False, enable_version_counter=False)
    ]
    if t.stages:
        callbacks.append(StagedTraining([(stage.epochs, stage.train) for stage in t.stages]))
    if t.patience > 0:
        callbacks.append(EarlyStopping(monitor=monitor, mode=mode, patience=t.patience, min_delta=t.min_delta,
                                       check_finite=False))
    strategy: Any = t.strategy
    if t.strategy == "ddp":
        # heads with weight 0 or without labels in a batch leave parameters unused
        strategy = DDPStrategy(process_group_backend="gloo" if t.accelerator == "cpu" else None,
                               find_unused_parameters=True)
    loggers = [CSVLogger(out_dir / "logs", name="", version="csv"),
               TensorBoardLogger(out_dir / "logs", name="", version="tensorboard", default_hp_metric=False)]
    return L.Trainer(
        max_epochs=t.max_epochs, accelerator=t.accelerator, devices=t.devices, strategy=strategy,
        precision=t.precision, deterministic=t.deterministic, callbacks=callbacks, logger=loggers,
        plugins=[AtomicCheckpointIO()], limit_train_batches=t.limit_train_batches,
        limit_val_batches=t.limit_val_batches, log_every_n_steps=t.log_every_n_steps,
        enable_progress_bar=t.progress_bar, enable_model_summary=False, num_sanity_val_steps=0,
    )


def load_weights(model: MultiTaskModel, checkpoint: Path) -> None:
    """Load a Lightning checkpoint's ``model.*`` weights into ``model``."""
    try:
        state = torch.load(checkpoint, map_location="cpu", weights_only=False)["state_dict"]
    except FileNotFoundError:
        raise DataError(checkpoint, "checkpoint does not exist") from None
    except Exception as exc:
        raise DataError(checkpoint, f"cannot be read as a medmtl checkpoint: {exc}") from exc
    model.load_state_dict({k[len("model."):]: v for k, v in state.items() if k.startswith("model.")})


def load_run(run_dir: str | Path) -> tuple[RunConfig, MultiTaskModel]:
    """The configuration and best model of a finished (or interrupted) run directory."""
    run_dir = Path(run_dir)
    config_path = run_dir / "config.yaml"
    if not config_path.is_file():
        raise DataError(run_dir, "is not a medmtl run directory (no config.yaml)")
    config = config_from_dict(yaml.safe_load(config_path.read_text()), source=str(config_path))
    model = build_model(config)
    checkpoint = run_dir / "checkpoints" / "best.ckpt"
    if not checkpoint.exists():
        checkpoint = run_dir / "checkpoints" / "last.ckpt"
    load_weights(model, checkpoint)
    model.eval()
    return config, model


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
