"""A small detection batch: bright squares on noise, with boxes, masks and classes."""

from __future__ import annotations

import pytest

from helpers import square_sample
from medmtl.data.collate import collate_samples


@pytest.fixture
def square_batch() -> dict:
    samples = [square_sample(i, lesion=i != 3) for i in range(4)]  # sample 3: a negative (no boxes)
    return collate_samples(samples)
