"""The sample and batch conventions every dataset, transform, task and collate function share.

A **sample** is a dict: ``"image"`` (FloatTensor ``[C, H, W]``, in [0, 1] for images), ``"name"``
(str) and any subset of target keys. A missing key means "not labelled for this task". Target
conventions:

- ``"label"``: LongTensor ``[]`` (class index)
- ``"mask"``: LongTensor ``[H, W]`` (class index per pixel, 0 = background)
- ``"boxes"``: FloatTensor ``[N, 4]`` (x1, y1, x2, y2 in pixels), ``"box_labels"``: LongTensor ``[N]``
- ``"value"`` (or any regression key): FloatTensor ``[]`` or ``[K]``
- ``"survival"``: FloatTensor ``[2]`` = (time > 0, event in {0, 1})

A **batch** is a dict: ``"image"`` ``[B, C, H, W]``, ``"name"`` list[str], ``"targets"``
dict[key, Tensor ``[B, ...]``] (zeros where absent) and ``"present"`` dict[key, BoolTensor ``[B]``].
Variable-length targets (``boxes``, ``box_labels``) stay lists of tensors
(:func:`medmtl.data.collate.collate_samples` makes batches).

A **transform** (:class:`Transform`) maps a sample to a new sample and never changes the input's
tensors in place (datasets cache them).
"""

from __future__ import annotations

from typing import Any

import torch

Sample = dict[str, Any]
Batch = dict[str, Any]

RESERVED_KEYS = ("image", "name")  # every sample's keys that are not targets
LIST_KEYS = ("boxes", "box_labels")  # targets of variable length: lists of tensors in a batch


class Transform:
    """Base class: ``transform(sample, generator=None) -> sample``."""

    random = False

    def __init__(self, generator: torch.Generator | None = None) -> None:
        self.generator = generator

    def __call__(self, sample: Sample, generator: torch.Generator | None = None) -> Sample:
        return self.apply(sample, generator if generator is not None else self.generator)

    def apply(self, sample: Sample, generator: torch.Generator | None) -> Sample:  # pragma: no cover
        raise NotImplementedError

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if k != "generator")
        return f"{type(self).__name__}({fields})"


__all__ = ["Batch", "LIST_KEYS", "RESERVED_KEYS", "Sample", "Transform"]
