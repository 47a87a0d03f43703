"""The LightningModule that trains a MultiTaskModel with a loss balancer."""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
import torch.distributed as dist

from medmtl.balancing import LossBalancer
from medmtl.config import OptimConfig
from medmtl.data.collate import subset_batch
from medmtl.errors import TrainingError
from medmtl.model import MultiTaskModel
from medmtl.tasks.base import concat_summaries
from medmtl.training.ddp_padding import loader_sampler, padding_mask, real_sample_count
from medmtl.training.task_gradients import (
    _collective_device,
    _distributed,
    combined_surrogate,
    gradient_cosines,
    task_gradients,
)

VALIDATION_BOOTSTRAP = 0  # per-epoch validation skips the CIs; final evaluation computes them


class MultiTaskModule(L.LightningModule):
    """Training step: encoder → heads → per-task losses (labelled samples only) → balancer.

    Logged: ``train/loss``, ``train/<task>/loss``, ``weight/<task>``, ``val/loss`` and every
    scalar ``val/<task>/<metric>``; with a gradient balancer also ``grad_cos/<a>~<b>``, the cosine
    similarity of the two tasks' gradients (at the balancer's ``level``).

    Gradient balancers (``balancer.gradients`` not None): in training, when two or more tasks have
    a loss, each task's gradient w.r.t. the encoder's trainable parameters (``shared``) or its
    output feature maps (``representation``) is computed (:mod:`medmtl.training.task_gradients`)
    and passed to the balancer for its weights ``wᵢ``. The step then returns a surrogate of value
    ``Σ wᵢ·Lᵢ`` whose backward gives every parameter exactly that sum's gradient from the per-task
    gradients already computed (``combined_surrogate``: the heads are not differentiated twice), and
    Lightning back-propagates it as usual.
    """

    def __init__(self, model: MultiTaskModel, balancer: LossBalancer, optim: OptimConfig | None = None) -> None:
        super().__init__()
        self.model = model
        self.balancer = balancer
        # DDP broadcasts rank 0's buffers before every forward; a balancer's rank-local partial sums must stay local
        self._ddp_params_and_buffers_to_ignore = [f"balancer.{name}" for name in balancer.local_buffers]
        self.optim = optim or OptimConfig()
        self._summaries: dict[str, list[dict[str, np.ndarray]]] = {}
        self.last_metrics: dict[str, dict[str, Any]] = {}
        self._last_cosines: dict[str, float] = {}
        self._val_position = 0  # this rank's validation samples so far in the epoch
        self._val_real: int | None = None  # how many of them are not a distributed sampler's padding

    def forward(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.model(image)

    def _step(self, batch: dict[str, Any], tasks: list[str] | None = None, gradients: str | None = None
              ) -> tuple[torch.Tensor, dict[str, torch.Tensor], dict[str, Any]]:
        """Total loss, per-task losses and outputs of ``tasks`` (default: every task); with
        ``gradients`` (training with a gradient balancer) the balancer gets the per-task gradients."""
        representation = gradients == "representation"
        features, head_inputs, outputs = self.model.features_and_outputs(batch["image"], batch, tasks,
                                                                         split=representation)
        losses = self.model.losses(outputs, batch)
        self._last_cosines = {}
        balanced, found = losses, None
        if gradients is not None:  # collective under DDP: every rank takes part, even without losses
            inputs = head_inputs if representation else [p for p in self.model.encoder.parameters() if p.requires_grad]
            heads = [p for name, p in self.model.named_parameters() if p.requires_grad and not name.startswith("encoder.")]
            found = task_gradients(losses, inputs, self.balancer.task_names, gradients, heads)
            balanced = found.losses
            if found.grads is not None:
                self._last_cosines = gradient_cosines(list(balanced), found.grads)
        rank0_rng = _rank0_rng_state() if self.training else None  # collective under DDP: before any return
        if not losses:  # nothing labelled: a zero that still touches every parameter (DDP needs the graph)
            if found is not None and found.grads is not None:  # labelled on other ranks: the balancer's state
                with _drawing_as_rank0(rank0_rng):  # (last weights, counters, EMAs, generators) steps there too
                    self.balancer(balanced, found.grads)
            elif self.training and self.balancer.collective:  # its collective must not be left waiting
                self.balancer({})
            zero = sum(p.sum() for p in self.model.parameters() if p.requires_grad) * 0.0
            return zero + sum(f.sum() for f in features) * 0.0, losses, outputs
        with _drawing_as_rank0(rank0_rng):
            total = self.balancer(balanced, found.grads if found is not None else None)
        if found is not None and (found.grads is not None or representation):
            # the heads' per-task gradients are known: back-propagate only their combination, through the
            # encoder once (at the representation level the heads read detached maps, so this is also
            # the only path from the losses into the encoder)
            weights = self.balancer.weights_of(list(balanced)) if found.grads is not None \
                else torch.ones(len(found.local))
            tensors = [*(features if representation else inputs), *heads]
            total = combined_surrogate(total, weights, found.local, tensors)
        return total, losses, outputs

    def _log_loss_parts(self, stage: str, outputs: dict[str, Any], size: int) -> None:
        """Sub-losses of heads that report them (detection: RPN, RoI class/box, mask)."""
        for name, output in outputs.items():
            for part, value in self.model.tasks[name].loss_parts(output).items():
                self.log(f"{stage}/{name}/{part}", value.detach(), batch_size=size, sync_dist=stage == "val")

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        # heads whose loss weight is 0 are not run: they would cost a forward and backward for nothing
        total, losses, outputs = self._step(batch, self.balancer.active_tasks(), self.balancer.gradients)
        self._check_finite(total, losses, batch_idx)
        size = len(batch["image"])
        self.log("train/loss", total, prog_bar=True, batch_size=size, sync_dist=False)
        self._log_loss_parts("train", outputs, size)
        for name, value in losses.items():
            self.log(f"train/{name}/loss", value, batch_size=size)
        for name, weight in self.balancer.current_weights().items():
            self.log(f"weight/{name}", weight, batch_size=size)
        for pair, cosine in self._last_cosines.items():
            self.log(f"grad_cos/{pair}", cosine, batch_size=size)
        return total

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        # the balancer's epoch boundary (DWA) comes after the last training batch: before the
        # validation that ends the epoch and the checkpoint written after it, so resumes see it
        trainer = self._trainer
        last = getattr(trainer, "num_training_batches", None) if trainer is not None else None
        if last is not None and math.isfinite(last) and batch_idx == int(last) - 1:
            self.balancer.on_epoch_end()

    def _check_finite(self, total: torch.Tensor, losses: dict[str, torch.Tensor], batch_idx: int) -> None:
        if torch.isfinite(total):
            return
        bad = {name: float(v) for name, v in losses.items() if not math.isfinite(float(v))}
        last = self._last_checkpoint()
        saved = (f"the last good checkpoint is {last}" if last is not None
                 else "no checkpoint was written yet (none is kept before the first epoch ends)")
        raise TrainingError(
            f"the training loss became {float(total)} at epoch {self.current_epoch}, batch {batch_idx} "
            f"(task losses not finite: {bad or 'none; the balancer produced it'}). Training stopped; {saved}. "
            "Try a lower optim.lr."
        )

    def _last_checkpoint(self) -> Path | None:
        """The run's ``last.ckpt`` if it exists now (in the trainer's checkpoint folder), else None."""
        trainer = self._trainer
        for callback in getattr(trainer, "checkpoint_callbacks", None) or []:
            folder = getattr(callback, "dirpath", None)
            if folder and (Path(folder) / "last.ckpt").is_file():
                return Path(folder) / "last.ckpt"
        return None

    # -- evaluation ----------------------------------------------------------------------
    def on_validation_epoch_start(self) -> None:
        self._summaries = {name: [] for name in self.model.tasks}
        self._val_position = 0
        loaders = getattr(self._trainer, "val_dataloaders", None) if self._trainer is not None else None
        self._val_real = real_sample_count(loader_sampler(loaders)) if loaders is not None else None

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        # under DDP the sampler repeats a few samples so every rank has as many; they are dropped here
        # (the step counts stay equal) so that each sample enters the epoch's loss and metrics once
        size = len(batch["image"])
        padding = padding_mask(self._val_real, self._val_position, size)
        self._val_position += size
        if bool(padding.all()):
            return
        if bool(padding.any()):
            batch = subset_batch(batch, ~padding)
        total, losses, outputs = self._step(batch)
        size = len(batch["image"])
        self.log("val/loss", total, batch_size=size, sync_dist=True)
        for name, value in losses.items():
            self.log(f"val/{name}/loss", value, batch_size=size, sync_dist=True)
        self._log_loss_parts("val", outputs, size)
        for name, task in self.model.tasks.items():
            selected = task.select(outputs[name], batch)
            if selected is not None:
                self._summaries[name].append(task.summarize(*selected))

    def on_validation_epoch_end(self) -> None:
        metrics = {}
        for name, task in self.model.tasks.items():
            summary = concat_summaries(_gather(self._summaries.get(name, [])))
            if not summary:
                continue
            metrics[name] = task.compute_metrics(summary, n_resamples=VALIDATION_BOOTSTRAP)
            for metric, value in metrics[name].items():
                if isinstance(value, (int, float)) and metric != "n":
                    self.log(f"val/{name}/{metric}", float(value), sync_dist=False, rank_zero_only=False)
        self.last_metrics = metrics

    def configure_optimizers(self) -> Any:
        params = [p for p in self.parameters() if p.requires_grad]
        cfg = self.optim
        if cfg.optimizer == "sgd":
            optimizer = torch.optim.SGD(params, lr=cfg.lr, momentum=0.9, weight_decay=cfg.weight_decay)
        elif cfg.optimizer == "adam":
            optimizer = torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
        else:
            optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
        if cfg.scheduler == "none":
            return optimizer
        epochs = max(1, int(self.trainer.max_epochs or 1))
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "epoch"}}


def _rank0_rng_state() -> torch.Tensor | None:
    """Under DDP (a collective): rank 0's CPU generator state, on every other rank; None on rank 0 and in one process.

    Balancers that draw random numbers in training (RLW's weights, PCGrad's task orders without a
    seed) draw from torch's global generator, which the trainer seeds per rank
    (:class:`~medmtl.training.seeding.EpochSeeding`); with rank 0's state every rank draws what
    rank 0 (and one process on the global batch) draws, so all apply the same weights.
    """
    if not _distributed():
        return None
    state = torch.get_rng_state().to(_collective_device(torch.device("cpu")))
    dist.broadcast(state, src=0)
    return None if dist.get_rank() == 0 else state.cpu()


@contextmanager
def _drawing_as_rank0(state: torch.Tensor | None) -> Iterator[None]:
    """Run the block with the CPU generator set to ``state`` (rank 0's), then restore this rank's own."""
    if state is None:
        yield
        return
    with torch.random.fork_rng(devices=[]):
        torch.set_rng_state(state)
        yield


def _gather(parts: list[dict[str, np.ndarray]]) -> list[dict[str, np.ndarray]]:
    """All ranks' per-batch summaries (DDP); the local list when not distributed."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return parts
    gathered: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, parts)
    return [part for rank_parts in gathered for part in rank_parts]
