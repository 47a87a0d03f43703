"""Staged training: train only some parts of the model for the first epochs.

FT-MTL-Net (Gao et al.) trains the region proposal network first, then the RoI heads, then
everything. A stage names the parameter prefixes (of :class:`medmtl.model.MultiTaskModel`, e.g.
``encoder``, ``tasks.detection.head.rpn``) that train during its ``epochs``; after the last stage
every parameter trains. Frozen parameters get no gradient, so the optimiser leaves them (and their
weight decay) alone.
"""

from __future__ import annotations

from collections.abc import Sequence

import lightning as L
from lightning.pytorch.callbacks import Callback
from torch import nn

from medmtl.errors import ConfigError


class StagedTraining(Callback):
    """``stages``: ``[(epochs, [prefix, …]), …]``, applied in order from epoch 0."""

    def __init__(self, stages: Sequence[tuple[int, Sequence[str]]]) -> None:
        self.stages = [(int(epochs), tuple(prefixes)) for epochs, prefixes in stages]

    def prefixes_for_epoch(self, epoch: int) -> tuple[str, ...] | None:
        """The trainable prefixes at ``epoch`` (0-based); None once every stage is over."""
        end = 0
        for epochs, prefixes in self.stages:
            end += epochs
            if epoch < end:
                return prefixes
        return None

    def apply(self, model: nn.Module, epoch: int) -> None:
        prefixes = self.prefixes_for_epoch(epoch)
        for name, parameter in model.named_parameters():
            parameter.requires_grad_(prefixes is None or name.startswith(prefixes))

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.apply(pl_module.model, trainer.current_epoch)


def check_stage_prefixes(model: nn.Module, stages: Sequence[tuple[int, Sequence[str]]]) -> None:
    """A :class:`ConfigError` for a prefix that matches no parameter (a typo would freeze everything)."""
    names = [name for name, _ in model.named_parameters()]
    for index, (_, prefixes) in enumerate(stages):
        for prefix in prefixes:
            if not any(name.startswith(prefix) for name in names):
                tops = sorted({".".join(n.split(".")[:4]) for n in names})
                raise ConfigError(f"trainer.stages.{index}.train", f"'{prefix}' matches no parameter; "
                                                                   f"parameter prefixes include {tops[:12]}")
