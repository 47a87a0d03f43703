"""The task contract: a head, its loss, its metrics and the sample key that holds its target."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from medmtl.encoders.base import FeatureInfo

Outputs = dict[str, torch.Tensor]


class Task(nn.Module, ABC):
    """One prediction problem on top of the shared encoder.

    A task is created without knowing the encoder; :class:`medmtl.model.MultiTaskModel` calls
    :meth:`build_head` with the encoder's feature description. Samples lacking the task's target
    (``batch["present"][target_key]`` False) are left out of its loss and metrics; a batch
    without any target for the task contributes exactly zero.
    """

    kind: ClassVar[str]
    #: metric used for checkpoint selection / early stopping, and whether higher is better
    monitor: ClassVar[tuple[str, str]] = ("loss", "min")
    #: True when :meth:`forward` takes the batch as a fourth argument (heads whose training
    #: computation depends on the targets, such as detection's proposal sampling)
    uses_batch: ClassVar[bool] = False

    def __init__(self, name: str, target_key: str, consumes: tuple[str, ...] = ()) -> None:
        super().__init__()
        self.name = name
        self.target_key = target_key
        #: names of other tasks whose outputs this head reads (feature transfer); the model
        #: runs those first and passes their outputs in ``context``
        self.consumes = tuple(consumes)
        self.head: nn.Module | None = None

    @abstractmethod
    def build_head(self, feature_info: list[FeatureInfo], image_channels: int) -> None:
        """Create ``self.head`` for an encoder with these feature maps."""

    @abstractmethod
    def forward(self, features: list[torch.Tensor], image: torch.Tensor, context: Outputs) -> torch.Tensor:
        """Predict from encoder features ``[B, C_i, H_i, W_i]`` and the input ``[B, C, H, W]``."""

    @abstractmethod
    def compute_loss(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Scalar loss on the labelled rows only (both tensors already restricted to them)."""

    @abstractmethod
    def summarize(self, prediction: torch.Tensor, target: torch.Tensor) -> dict[str, np.ndarray]:
        """Per-sample numbers (rows = labelled samples) that :meth:`compute_metrics` aggregates."""

    @abstractmethod
    def compute_metrics(self, summary: dict[str, np.ndarray], n_resamples: int = 1000, seed: int = 0) -> dict[str, Any]:
        """Epoch metrics from concatenated summaries; ``<m>_ci95`` holds a bootstrap interval."""

    def postprocess(self, prediction: torch.Tensor) -> torch.Tensor:
        """Turn raw head output into the user-facing prediction (probabilities, masks…)."""
        return prediction

    # -- shared plumbing -----------------------------------------------------------------
    def select(self, prediction: torch.Tensor, batch: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor] | None:
        """``(prediction, target)`` restricted to the samples labelled for this task, or None."""
        if self.target_key == "image":
            return prediction, batch["image"]
        present = batch["present"].get(self.target_key)
        if present is None or not bool(present.any()):
            return None
        present = present.to(prediction.device)
        return prediction[present], batch["targets"][self.target_key].to(prediction.device)[present]

    def loss(self, prediction: torch.Tensor, batch: dict[str, Any]) -> torch.Tensor | None:
        """The task's loss on a batch, or None when no sample of the batch is labelled for it."""
        selected = self.select(prediction, batch)
        if selected is None:
            return None
        return self.compute_loss(*selected)

    def extra_repr(self) -> str:
        return f"name={self.name!r}, target_key={self.target_key!r}"


def concat_summaries(parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Join per-batch summaries into one per epoch (empty dict when nothing was labelled)."""
    parts = [p for p in parts if p]
    if not parts:
        return {}
    return {key: np.concatenate([p[key] for p in parts]) for key in parts[0]}
