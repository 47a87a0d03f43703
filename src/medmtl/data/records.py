"""A record: where one sample's image, mask and targets come from, before decoding."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

BOX_TARGETS = frozenset({"boxes", "box_labels"})


@dataclass
class Record:
    """One sample, described without decoding it.

    - ``image_path`` (a file) or ``image_array`` (in-memory ``[H, W]`` / ``[H, W, C]`` pixels,
      uint8, uint16 or float in [0, 1]) gives the image. Volumes (``model.spatial_dims: 3``): a
      NIfTI/NRRD/MHA file, or an array ``[D, H, W]`` / ``[C, D, H, W]``.
    - ``mask_paths``: mask files merged with OR (several lesions annotated in separate files;
      a single volume mask file keeps its class indices); ``mask_array``: an in-memory label map
      ``[H, W]`` (``[D, H, W]`` for volumes; 0 = background, 1..K = class). A record
      with either has the target ``mask`` (an empty mask is a valid label: "no lesion"), and
      ``boxes``/``box_labels`` derived from it when a dataset is asked for them (a detection task).
    - ``targets``: ``label`` (int), ``value`` (float or tuple of floats), ``survival``
      ``(time, event)``, optionally ``boxes`` (``[N, 4]`` xyxy in original pixels) and
      ``box_labels`` for records without a mask; ``None`` or a missing key means "not labelled".
    - ``expects_lesion``: the image is known to show a lesion (BUSI benign/malignant), so an empty
      mask is an annotation error rather than "no lesion".
    - ``group``: records of one group (patches of one slide, images of one patient) are never
      split between train and validation.
    """

    name: str
    image_path: Path | None = None
    image_array: np.ndarray | None = None
    mask_paths: list[Path] = field(default_factory=list)
    mask_array: np.ndarray | None = None
    targets: dict[str, Any] = field(default_factory=dict)
    expects_lesion: bool = False
    group: str | None = None

    def __post_init__(self) -> None:
        if self.image_path is None and self.image_array is None:
            raise ValueError(f"record '{self.name}' needs an image_path or an image_array")
        if self.image_path is not None:
            self.image_path = Path(self.image_path)
        self.mask_paths = [Path(p) for p in self.mask_paths]
        self.targets = {k: v for k, v in self.targets.items() if v is not None}

    @property
    def has_mask(self) -> bool:
        return bool(self.mask_paths) or self.mask_array is not None

    @property
    def label(self) -> int | None:
        value = self.targets.get("label")
        return None if value is None else int(value)

    @property
    def source(self) -> str:
        """Where the image comes from, for messages."""
        return str(self.image_path) if self.image_path is not None else f"<in-memory image '{self.name}'>"

    def available_targets(self, boxes_from_masks: bool = False) -> set[str]:
        """The target keys this record's sample will have (decodes nothing).

        A record with a mask has ``mask``, and ``boxes``/``box_labels`` (from the mask) only with
        ``boxes_from_masks``; a record without a mask has the ``boxes`` it gives.
        """
        keys = {k for k, v in self.targets.items() if v is not None}
        if self.has_mask:
            keys.add("mask")
            keys -= BOX_TARGETS  # given boxes never stand beside a mask: a mask's boxes come from it
            if boxes_from_masks:
                keys |= BOX_TARGETS
        elif "boxes" in keys:  # boxes without a mask: labels default to 1 (lesion)
            keys.add("box_labels")
        return keys
