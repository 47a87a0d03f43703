"""Datasets and data loaders of a run, with a check that every task has labelled samples.

Randomness (see :mod:`medmtl.training.seeding`): the training loader's order and each training
sample's augmentation are functions of (seed, epoch) — :class:`EpochSampler` yields
``(epoch, index)`` keys and :class:`LoaderDataset` draws sample ``index`` under torch's RNG
seeded from (seed, epoch, index) — so a resumed run repeats the uninterrupted run's draws, with
any number of workers.

Errors in worker processes: torch re-raises an exception of a ``DataLoader`` worker in the main
process as ``type(error)(traceback_text)`` (a ``RuntimeError`` with a traceback for medmtl's
errors, which take two arguments). Instead, :class:`LoaderDataset` and the loader's collate
function catch a :class:`~medmtl.errors.MedMTLError` *in a worker* and return it as a
:class:`CarriedError` in place of the sample or batch; :class:`MedMTLDataLoader`'s iterator raises
the original error (same class, message and attributes) in the main process, so the user sees the
one line that ``num_workers=0`` gives. In the main process nothing is caught.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, Sampler, get_worker_info

from medmtl.config import RunConfig
from medmtl.data.build import build_datasets
from medmtl.data.collate import collate_samples
from medmtl.errors import ConfigError, MedMTLError
from medmtl.model import MultiTaskModel
from medmtl.training.seeding import AUGMENT_STREAM, SHUFFLE_STREAM, mix_seed


class CarriedError:
    """A :class:`MedMTLError` raised in a loader worker, carried to the main process as the worker's result."""

    def __init__(self, error: MedMTLError) -> None:
        self.error_type = type(error)
        self.args = error.args
        self.state = dict(vars(error))

    def error(self) -> MedMTLError:
        """The original error, rebuilt without calling its ``__init__`` (whose arguments may differ from ``args``)."""
        error = self.error_type.__new__(self.error_type)
        Exception.__init__(error, *self.args)
        error.__dict__.update(self.state)
        return error


def _carry_in_worker(error: MedMTLError) -> CarriedError:
    if get_worker_info() is None:  # main process: raise as usual
        raise error
    return CarriedError(error)


def collate_or_carry(samples: list[Any]) -> Any:
    """:func:`collate_samples`, or the first carried error among ``samples``; in a worker, errors are carried too."""
    for sample in samples:
        if isinstance(sample, CarriedError):
            return sample
    try:
        return collate_samples(samples)
    except MedMTLError as error:
        return _carry_in_worker(error)


class EpochSampler(Sampler):
    """Every index once per epoch, in an order drawn from (seed, epoch); yields ``(epoch, index)``.

    Lightning calls :meth:`set_epoch` at each epoch start (so does :class:`~medmtl.training.seeding.EpochSeeding`).
    Under DDP Lightning wraps the sampler in a ``DistributedSamplerWrapper``, which gives each rank
    its share of this (identical on every rank) order.
    """

    def __init__(self, length: int, seed: int) -> None:
        self.length = length
        self.seed = seed
        self.epoch = 0
        self.drawn_epoch: int | None = None

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.length

    def __iter__(self) -> Iterator[tuple[int, int]]:
        epoch = self.epoch
        self.drawn_epoch = epoch
        generator = torch.Generator().manual_seed(mix_seed(self.seed, SHUFFLE_STREAM, epoch))
        return iter([(epoch, index) for index in torch.randperm(self.length, generator=generator).tolist()])


class LoaderDataset(Dataset):
    """``dataset`` as a medmtl loader reads it: ``(epoch, index)`` keys seed the augmentation, worker errors are carried.

    Attributes other than ``dataset`` and ``seed`` are the wrapped dataset's (``available_targets()``, ``names()``…).
    """

    def __init__(self, dataset: Dataset, seed: int = 0) -> None:
        self.dataset = dataset
        self.seed = seed

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, key: int | tuple[int, int]) -> Any:
        try:
            if isinstance(key, tuple):
                epoch, index = key
                # a forked RNG: in the main process (num_workers=0) the model's draws are not shifted by the samples'
                with torch.random.fork_rng(devices=[]):
                    torch.manual_seed(mix_seed(self.seed, AUGMENT_STREAM, epoch, index))
                    return self.dataset[index]
            return self.dataset[key]
        except MedMTLError as error:
            return _carry_in_worker(error)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name in ("dataset", "seed"):  # not yet set (unpickling): no recursion
            raise AttributeError(name)
        return getattr(self.dataset, name)


def unwrap_dataset(dataset: Dataset) -> Dataset:
    """The dataset a loader was made for (``loader.dataset`` may be its :class:`LoaderDataset`)."""
    while isinstance(dataset, LoaderDataset):
        dataset = dataset.dataset
    return dataset


class _RaisingIterator:
    """A DataLoader iterator that raises the errors workers carried (everything else is the wrapped iterator's)."""

    def __init__(self, iterator: Iterator[Any]) -> None:
        self._iterator = iterator

    def __iter__(self) -> _RaisingIterator:
        return self

    def __next__(self) -> Any:
        batch = next(self._iterator)
        if isinstance(batch, CarriedError):
            raise batch.error() from None
        return batch

    def __len__(self) -> int:
        return len(self._iterator)  # type: ignore[arg-type]

    def __getattr__(self, name: str) -> Any:
        if name == "_iterator":
            raise AttributeError(name)
        return getattr(self._iterator, name)


class MedMTLDataLoader(DataLoader):
    """A ``DataLoader`` whose iterator raises a worker's :class:`MedMTLError` as itself (see the module docstring)."""

    def __iter__(self) -> Iterator[Any]:  # type: ignore[override]
        return _RaisingIterator(super().__iter__())


def make_loader(dataset: Dataset, batch_size: int, num_workers: int, shuffle: bool, seed: int = 0) -> DataLoader:
    """Batches of sample dicts (see :mod:`medmtl.data.collate`).

    With ``shuffle`` the order and the augmentation of each epoch are drawn from ``(seed, epoch)``
    (:class:`EpochSampler`); ``loader.dataset`` is then a :class:`LoaderDataset` (also with workers,
    to carry their errors; :func:`unwrap_dataset` gives the original).
    """
    if shuffle or num_workers > 0:
        dataset = LoaderDataset(dataset, seed)
    sampler = EpochSampler(len(dataset), seed) if shuffle else None  # type: ignore[arg-type]
    generator = torch.Generator().manual_seed(seed)  # the workers' base seed: drawn from it, not from torch's global RNG
    return MedMTLDataLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=num_workers,
                            collate_fn=collate_or_carry, generator=generator, drop_last=False,
                            persistent_workers=num_workers > 0)


def build_run_datasets(config: RunConfig, model: MultiTaskModel) -> dict[str, Dataset]:
    """The datasets of ``config.data`` with the targets ``model``'s tasks ask for (boxes from masks for detection)."""
    return build_datasets(config.data, boxes_from_masks=model.wants_boxes_from_masks)


def evaluation_loader(config: RunConfig, dataset: Dataset) -> DataLoader:
    """An unshuffled loader over ``dataset`` in the main process (evaluation, reports)."""
    return make_loader(dataset, config.data.batch_size, 0, shuffle=False)


def build_loaders(config: RunConfig, model: MultiTaskModel) -> dict[str, DataLoader]:
    """One loader per available split; raises when a task has no target anywhere in ``train``."""
    datasets = build_run_datasets(config, model)
    check_targets_available(model, datasets["train"].available_targets(), split="train")
    data = config.data
    return {
        split: make_loader(ds, data.batch_size, data.num_workers, shuffle=split == "train", seed=config.seed)
        for split, ds in datasets.items()
    }


def check_targets_available(model: MultiTaskModel, counts: dict[str, int], split: str) -> None:
    for name, task in model.tasks.items():
        if task.target == "image":
            continue
        if counts.get(task.target, 0) == 0:
            found = sorted(k for k, v in counts.items() if v)
            raise ConfigError(
                f"model.tasks.{name}",
                f"task '{name}' reads target '{task.target}', but no sample of the {split} split has it "
                f"(targets present: {found})",
            )
