"""Batching samples that carry any subset of task targets.

A **sample** is a dict: ``"image"`` (FloatTensor ``[C, H, W]``), ``"name"`` (str) and any subset
of target keys. A missing key means "not labelled for this task". Target conventions:

- ``"label"``: LongTensor ``[]`` (class index)
- ``"mask"``: LongTensor ``[H, W]`` (class index per pixel, 0 = background)
- ``"boxes"``: FloatTensor ``[N, 4]`` (x1, y1, x2, y2 in pixels), ``"box_labels"``: LongTensor ``[N]``
- ``"value"`` (or any regression key): FloatTensor ``[]`` or ``[K]``
- ``"survival"``: FloatTensor ``[2]`` = (time > 0, event in {0, 1})

A **batch** is a dict: ``"image"`` ``[B, C, H, W]``, ``"name"`` list[str], ``"targets"``
dict[key, Tensor ``[B, ...]``] (zeros where absent) and ``"present"`` dict[key, BoolTensor ``[B]``].
Variable-length targets (``boxes``, ``box_labels``) stay lists of tensors.
"""

from __future__ import annotations

from typing import Any

import torch

RESERVED_KEYS = ("image", "name")
LIST_KEYS = ("boxes", "box_labels")

Sample = dict[str, Any]
Batch = dict[str, Any]


def collate_samples(samples: list[Sample]) -> Batch:
    """Stack samples into a batch, recording per task which samples have a target."""
    images = torch.stack([s["image"] for s in samples])
    names = [str(s.get("name", i)) for i, s in enumerate(samples)]
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
