"""A training run's randomness as a function of (seed, epoch), so that a resumed run draws what it would have drawn.

Checkpoints are written at epoch ends, and a run killed at any point resumes at the start of the
epoch after its last checkpoint. For that epoch to repeat the uninterrupted run's draws, nothing
random may depend on what happened before it in the process:

- **order**: :class:`~medmtl.training.loaders.EpochSampler` permutes the training samples with a
  generator seeded from ``(seed, epoch)`` and yields ``(epoch, index)`` keys;
- **augmentation**: :class:`~medmtl.training.loaders.LoaderDataset` transforms sample ``index`` of
  ``epoch`` under torch's RNG seeded from ``(seed, epoch, index)``, in whichever worker process
  draws it (so the result does not depend on ``data.num_workers`` either);
- **the model's draws** (dropout, detection's proposal sampling): :class:`EpochSeeding` reseeds
  torch's, NumPy's and Python's global RNGs from ``(seed, epoch, rank)`` at each train epoch start.

Lightning creates the first iterator over the training data before it tells the sampler the epoch
(``set_epoch``); :class:`EpochSeeding` therefore sets the sampler's epoch as soon as the checkpoint
is read, and sets it again at each epoch start because under DDP Lightning wraps the sampler
(``DistributedSamplerWrapper``) and only tells the wrapper. The permutation is the same on every
rank (each rank takes its share of it), the global reseed differs per rank.
"""

from __future__ import annotations

import random
import warnings
from typing import Any, Protocol

import lightning as L
import numpy as np
import torch
from lightning.pytorch import Callback

_MASK64 = (1 << 64) - 1

#: streams of :func:`mix_seed`, so that the order, the augmentation and the model draw independent numbers
SHUFFLE_STREAM, AUGMENT_STREAM, GLOBAL_STREAM = 1, 2, 3


def _splitmix64(x: int) -> int:
    x = (x + 0x9E3779B97F4A7C15) & _MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK64
    return x ^ (x >> 31)


def mix_seed(*values: int) -> int:
    """A well-mixed 63-bit seed from integers (SplitMix64 over the values); equal inputs, equal seed, in any process."""
    state = 0
    for value in values:
        state = _splitmix64(state ^ (int(value) & _MASK64))
    return state >> 1


def seed_globals(seed: int) -> None:
    """Seed torch's (all devices), NumPy's and Python's global RNGs, without Lightning's log line."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


class EpochSampled(Protocol):
    """What :class:`EpochSeeding` needs of the training sampler (:class:`~medmtl.training.loaders.EpochSampler`)."""

    drawn_epoch: int | None

    def set_epoch(self, epoch: int) -> None: ...


class EpochSeeding(Callback):
    """Reseed the global RNGs at each train epoch start from (seed, epoch, rank) and keep the sampler's epoch right.

    ``on_train_batch_start`` checks that the batches of an epoch were drawn for that epoch, and
    warns (a resume would then not repeat the uninterrupted run) when they were not.
    """

    def __init__(self, seed: int, sampler: EpochSampled | None = None) -> None:
        self.seed = seed
        self.sampler = sampler
        self.start_epoch = 0

    def on_load_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]) -> None:
        # the checkpoint was written at the end of epoch checkpoint["epoch"]; training goes on with the next one
        self.start_epoch = int(checkpoint.get("epoch", -1)) + 1
        if self.sampler is not None:
            self.sampler.set_epoch(self.start_epoch)

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        epoch = trainer.current_epoch
        if self.sampler is not None:
            self.sampler.set_epoch(epoch)
        seed_globals(mix_seed(self.seed, GLOBAL_STREAM, epoch, trainer.global_rank))

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any,
                             batch_idx: int) -> None:
        if batch_idx == 0 and self.sampler is not None and self.sampler.drawn_epoch not in (None, trainer.current_epoch):
            warnings.warn(f"the training batches of epoch {trainer.current_epoch} were drawn for epoch "
                          f"{self.sampler.drawn_epoch}; a resumed run will not repeat this one exactly",
                          RuntimeWarning, stacklevel=2)
