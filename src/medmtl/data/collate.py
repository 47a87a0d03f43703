"""Batching samples that carry any subset of task targets.

The sample and batch conventions are in :mod:`medmtl.data.sample`: a missing target key means
"not labelled for this task"; a batch records per key which samples have it (``"present"``).
"""

from __future__ import annotations

from typing import Any

import torch

from medmtl.data.sample import LIST_KEYS, RESERVED_KEYS, Batch, Sample
from medmtl.errors import DataError


def collate_samples(samples: list[Sample]) -> Batch:
    """Stack samples into a batch, recording per task which samples have a target.

    Images of different sizes cannot share a batch: a :class:`DataError` names two of them and
    their shapes (volumes kept whole with ``data.volume.crop: none`` need ``data.batch_size: 1``).
    """
    names = [str(s.get("name", i)) for i, s in enumerate(samples)]
    _check_same_size(samples, names)
    images = torch.stack([s["image"] for s in samples])
    keys = sorted({k for s in samples for k in s if k not in RESERVED_KEYS})
    targets: dict[str, Any] = {}
    present: dict[str, torch.Tensor] = {}
    for key in keys:
        has = torch.tensor([key in s for s in samples], dtype=torch.bool)
        present[key] = has
        if key in LIST_KEYS:
            template = next(s[key] for s in samples if key in s)
            empty = template.new_zeros((0, *template.shape[1:]))
            targets[key] = [s.get(key, empty) for s in samples]
            continue
        template = torch.as_tensor(next(s[key] for s in samples if key in s))
        targets[key] = torch.stack(
            [torch.as_tensor(s[key]) if key in s else torch.zeros_like(template) for s in samples]
        )
    return {"image": images, "name": names, "targets": targets, "present": present}


def _check_same_size(samples: list[Sample], names: list[str]) -> None:
    first = tuple(samples[0]["image"].shape)
    for name, sample in zip(names[1:], samples[1:]):
        shape = tuple(sample["image"].shape)
        if shape != first:
            raise DataError(name, f"image of shape {list(shape)} cannot share a batch with '{names[0]}' of shape "
                                  f"{list(first)}: crop or resize to data.image_size (for volumes data.volume.crop: "
                                  "center or mask), or set data.batch_size: 1")


def subset_batch(batch: Batch, keep: torch.Tensor) -> Batch:
    """The samples of ``batch`` where ``keep`` (BoolTensor ``[B]``) is True, as a batch of the same form
    (images ``[B', ...]``, names, per-key targets and ``present`` flags)."""
    keep = keep.to(torch.bool).cpu()
    rows = keep.nonzero().flatten().tolist()
    targets = {key: [value[i] for i in rows] if isinstance(value, list) else value[keep.to(value.device)]
               for key, value in batch["targets"].items()}
    return {**batch, "image": batch["image"][keep.to(batch["image"].device)],
            "name": [batch["name"][i] for i in rows], "targets": targets,
            "present": {key: flags[keep.to(flags.device)] for key, flags in batch["present"].items()}}
