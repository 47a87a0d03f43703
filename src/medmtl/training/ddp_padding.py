"""Which validation samples a distributed sampler repeated to give every rank the same count.

``DistributedSampler`` (and Lightning's ``DistributedSamplerWrapper``, which Lightning puts on the
validation loader under DDP) pads the index list with its first entries up to a multiple of the
world size, then gives rank ``r`` the positions ``r, r + W, r + 2W, …``. The padded copies are the
positions ``≥ N`` (N = the dataset's length), whether or not the list was shuffled, so rank ``r``
holds ``len(range(r, N, W))`` real samples followed by its padding. Dropping those keeps every rank's
number of validation steps equal (no collective is left waiting) while the per-epoch metrics see
each sample exactly once.
"""

from __future__ import annotations

from typing import Any

import torch
from torch.utils.data import DistributedSampler


def loader_sampler(loader: Any) -> Any:
    """The sampler that orders ``loader``'s samples (its batch sampler's, when it has one)."""
    batch_sampler = getattr(loader, "batch_sampler", None)
    return getattr(batch_sampler, "sampler", None) or getattr(loader, "sampler", None)


def real_sample_count(sampler: Any) -> int | None:
    """How many of this rank's samples are not padding; None when ``sampler`` does not pad (not a
    ``DistributedSampler``, or one that drops the tail instead)."""
    if not isinstance(sampler, DistributedSampler) or sampler.drop_last:
        return None
    return len(range(sampler.rank, len(sampler.dataset), sampler.num_replicas))  # type: ignore[arg-type]


def padding_mask(real: int | None, start: int, count: int) -> torch.Tensor:
    """BoolTensor ``[count]``: True for this rank's samples at positions ``start … start+count−1`` (in
    its own order) that are padding, given its ``real`` sample count (None: nothing is padding)."""
    positions = torch.arange(start, start + count)
    return positions >= real if real is not None else torch.zeros(count, dtype=torch.bool)
