"""Datasets and data loaders of a run, with a check that every task has labelled samples."""

from __future__ import annotations

import torch
from torch.utils.data import DataLoader, Dataset

from medmtl.config import RunConfig
from medmtl.data.build import build_datasets
from medmtl.data.collate import collate_samples
from medmtl.errors import ConfigError
from medmtl.model import MultiTaskModel


def make_loader(dataset: Dataset, batch_size: int, num_workers: int, shuffle: bool, seed: int = 0) -> DataLoader:
    """Batches of sample dicts (see :mod:`medmtl.data.collate`); shuffling is seeded."""
    generator = torch.Generator().manual_seed(seed)
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, num_workers=num_workers,
                      collate_fn=collate_samples, generator=generator, drop_last=False,
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
