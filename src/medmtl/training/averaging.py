"""Weight averaging during training: an exponential moving average (EMA) or stochastic weight
averaging (SWA) of the weights, on top of Lightning's :class:`~lightning.pytorch.callbacks.WeightAveraging`.

The callback keeps the averaged model beside the trained one and

- swaps the averaged weights in for every validation epoch, so ``val/*`` and best.ckpt follow the
  averaged model;
- writes the averaged weights into every checkpoint's ``state_dict`` (what :func:`load_weights
  <medmtl.training.run.load_weights>`, evaluate, predict and export read) and the raw weights under
  ``current_model_state``, with the average's step count under ``averaging_state`` (tensors only:
  the weights-only loading of :mod:`medmtl.training.safe_load` reads them), so a resume continues
  both the training and the average.

EMA (``trainer.ema_decay``): after every optimiser step ``ema = decay·ema + (1 − decay)·weights``
(the first step copies the weights).

SWA (``trainer.swa_start``): the equal average of every step's weights from epoch
``floor(swa_start · max_epochs)`` on.

BatchNorm running statistics of averaged weights are not the average of the statistics: both
recompute them with one pass over the training data (no gradients) before each validation and at
the end of each epoch, as Lightning's ``StochasticWeightAveraging`` does at the end of training.
For the EMA ``trainer.ema_batchnorm: average`` instead averages the statistics like the weights
(timm's ``ModelEmaV2``; no extra pass). Measured on BUSI (25 epochs, 600 steps, decay 0.99), the
averaged statistics cost 0.02–0.08 Dice that recomputing them gave back (benchmarks/README.md).
The learning-rate schedule is left as configured. Before the first averaged step validation and
checkpoints use the raw weights.
"""

from __future__ import annotations

import math
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import WeightAveraging
from torch.optim.swa_utils import get_ema_avg_fn


class _Averaging(WeightAveraging):
    """Lightning's callback, doing nothing until the average holds at least one step's weights;
    with ``recompute_batchnorm`` the average's BatchNorm statistics are recomputed before it is used."""

    def __init__(self, recompute_batchnorm: bool, **kwargs: Any) -> None:
        super().__init__(use_buffers=not recompute_batchnorm, **kwargs)
        self.recompute_batchnorm = recompute_batchnorm
        self._bn_fresh = False

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        # the module is moved to its device only after setup: keep the average on that device (a GPU),
        # not on the CPU where the module still is now
        if self._device is None:
            self._device = trainer.strategy.root_device
        self._trainer = trainer
        super().setup(trainer, pl_module, stage)

    def _started(self) -> bool:
        return self._average_model is not None and int(self._average_model.n_averaged) > 0

    def on_validation_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._started():
            self._before_use(trainer)
            self._swap_models(pl_module)

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._started():
            self._swap_models(pl_module)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._started():
            self._copy_average_to_current(pl_module)

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]) -> None:
        if self._started():
            super().on_save_checkpoint(trainer, pl_module, checkpoint)

    def on_load_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]) -> None:
        # a checkpoint from before the first averaged step holds raw weights only: the average starts afresh
        if "current_model_state" in checkpoint and "averaging_state" in checkpoint:
            super().on_load_checkpoint(trainer, pl_module, checkpoint)

    def _before_use(self, trainer: L.Trainer) -> None:
        """Called before the averaged weights are validated."""
        if self.recompute_batchnorm:
            self._recompute_batchnorm(trainer)

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        before = self._latest_update_step
        super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)
        if self._latest_update_step != before:
            self._bn_fresh = False

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # runs before last.ckpt is written (Lightning calls checkpoint callbacks last)
        super().on_train_epoch_end(trainer, pl_module)
        if self._started() and self.recompute_batchnorm:
            self._recompute_batchnorm(trainer)

    @torch.no_grad()
    def _recompute_batchnorm(self, trainer: L.Trainer) -> None:
        """One pass over the training batches in train mode with cumulative BatchNorm statistics
        (``torch.optim.swa_utils.update_bn`` for this project's batches)."""
        if self._bn_fresh or self._average_model is None:
            return
        self._bn_fresh = True
        module = self._average_model.module
        norms = [m for m in module.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
        loader = trainer.train_dataloader
        if not norms or loader is None:
            return
        momenta = {}
        for norm in norms:
            norm.reset_running_stats()
            momenta[norm] = norm.momentum
            norm.momentum = None  # cumulative average over the pass
        was_training = module.training
        module.train()
        device = next(module.parameters()).device
        limit = trainer.num_training_batches if isinstance(trainer.num_training_batches, int) else None
        for index, batch in enumerate(loader):
            if limit is not None and index >= limit:
                break
            module(batch["image"].to(device))
        for norm, momentum in momenta.items():
            norm.momentum = momentum
        module.train(was_training)


class EMAAveraging(_Averaging):
    """Exponential moving average of the weights, updated after every optimiser step; BatchNorm
    statistics recomputed (``recompute_batchnorm``) or averaged like the weights."""

    def __init__(self, decay: float, recompute_batchnorm: bool = True) -> None:
        super().__init__(recompute_batchnorm, avg_fn=get_ema_avg_fn(decay=decay))
        self.decay = decay


class SWAAveraging(_Averaging):
    """Equal average of every step's weights from epoch ``start_epoch`` on; BatchNorm statistics recomputed."""

    def __init__(self, start_epoch: int) -> None:
        super().__init__(recompute_batchnorm=True)
        self.start_epoch = start_epoch

    def should_update(self, step_idx: int | None = None, epoch_idx: int | None = None) -> bool:
        trainer = getattr(self, "_trainer", None)
        return step_idx is not None and (trainer is None or trainer.current_epoch >= self.start_epoch)


def averaging_callback(trainer_config: Any) -> _Averaging | None:
    """The averaging callback ``trainer.ema_decay`` / ``trainer.swa_start`` ask for, or None."""
    if trainer_config.ema_decay is not None:
        return EMAAveraging(trainer_config.ema_decay, trainer_config.ema_batchnorm == "recompute")
    if trainer_config.swa_start is not None:
        return SWAAveraging(math.floor(trainer_config.swa_start * trainer_config.max_epochs))
    return None
