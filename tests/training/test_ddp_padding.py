"""The padding a distributed sampler adds to the validation split is recognised and dropped."""

import pytest
import torch
from lightning.fabric.utilities.distributed import DistributedSamplerWrapper
from torch.utils.data import DataLoader, DistributedSampler, SequentialSampler

from medmtl.training.ddp_padding import loader_sampler, padding_mask, real_sample_count


def _real_indices(sampler, batch_size: int) -> list[int]:
    """The indices a rank keeps: its order, batch by batch, without the padded positions."""
    order, kept, start = list(sampler), [], 0
    real = real_sample_count(sampler)
    for first in range(0, len(order), batch_size):
        batch = order[first:first + batch_size]
        mask = padding_mask(real, start, len(batch))
        kept += [index for index, pad in zip(batch, mask.tolist()) if not pad]
        start += len(batch)
    return kept


@pytest.mark.parametrize("length,world", [(23, 2), (5, 4), (7, 3), (8, 2), (2, 3)])
@pytest.mark.parametrize("shuffle", [False, True])
def test_every_sample_is_kept_exactly_once_over_the_ranks(length, world, shuffle):
    samplers = [DistributedSampler(range(length), num_replicas=world, rank=r, shuffle=shuffle, seed=3)
                for r in range(world)]
    assert sum(len(list(s)) for s in samplers) > length or length % world == 0  # it does pad
    kept = [index for s in samplers for index in _real_indices(s, batch_size=2)]
    assert sorted(kept) == list(range(length))


def test_lightning_wrapper_of_a_custom_sampler_is_recognised():
    inner = SequentialSampler(range(5))
    wrapped = [DistributedSamplerWrapper(inner, num_replicas=2, rank=r, shuffle=False) for r in range(2)]
    assert [real_sample_count(s) for s in wrapped] == [3, 2]
    kept = [index for s in wrapped for index in _real_indices(s, batch_size=4)]
    assert sorted(kept) == list(range(5))


def test_no_padding_without_a_padding_sampler():
    loader = DataLoader(range(5), batch_size=2)
    assert real_sample_count(loader_sampler(loader)) is None
    assert not padding_mask(None, 4, 3).any()
    dropping = DistributedSampler(range(5), num_replicas=2, rank=0, drop_last=True)
    assert real_sample_count(dropping) is None


def test_loader_sampler_finds_the_distributed_sampler():
    sampler = DistributedSampler(range(5), num_replicas=2, rank=1, shuffle=False)
    loader = DataLoader(range(5), batch_size=2, sampler=sampler)
    assert loader_sampler(loader) is sampler
    assert padding_mask(real_sample_count(sampler), 0, 3).tolist() == [False, False, True]
    assert torch.equal(padding_mask(2, 1, 2), torch.tensor([False, True]))
