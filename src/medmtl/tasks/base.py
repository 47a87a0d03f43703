"""The task contract: a head, its loss, its metrics, the sample key that holds its target, and how
its results are shown (report figures, overlays, prediction files).

Nothing outside ``medmtl.tasks`` knows task kinds: the model, the trainer, the report, ``predict`` and
``compare`` only call the methods below. A new kind is one file (an options model and a
:class:`Task` subclass) plus one line in :mod:`medmtl.tasks.registry`.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar, Generic, TypeVar

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from torch import nn

from medmtl.encoders.base import FeatureInfo
from medmtl.errors import ConfigError
from medmtl.tasks.outputs import Overlay, PredictionSink

Batch = dict[str, Any]
Outputs = dict[str, Any]
Summary = dict[str, np.ndarray]

#: raw head output of a task (a tensor for most kinds, :class:`~medmtl.tasks.detection.Detections` for detection)
P = TypeVar("P")
#: what :meth:`Task.select` pairs with the prediction: the labelled rows' targets
T = TypeVar("T")


class TaskOptions(BaseModel):
    """Options every task kind has. Each kind subclasses this once, in its own file, with its own
    fields and defaults (the only place they are stated); the run configuration validates
    ``model.tasks[i]`` with the subclass of the entry's ``kind``."""

    model_config = ConfigDict(extra="forbid")

    kind: str
    name: str | None = Field(None, description="task name (default: the kind); names its losses, metrics, files")
    target: str = Field(description="sample key of the task's target")
    consumes: list[str] = Field(default_factory=list, description="tasks whose outputs this head reads "
                                                                   "(feature transfer)")


class Task(nn.Module, ABC, Generic[P, T]):
    """One prediction problem on top of the shared encoder.

    Create with options as keywords (``ClassificationTask(num_classes=3)``) or a validated options
    object (``ClassificationTask(options=ClassificationOptions(...))``); bad options raise a
    :class:`ConfigError` naming ``tasks.<name>.<key>``. :class:`medmtl.model.MultiTaskModel` calls
    :meth:`build_head` with the encoder's feature description. Samples lacking the task's target
    (``batch["present"][target]`` False) are left out of its loss and metrics; a batch without any
    target for the task contributes exactly zero.
    """

    kind: ClassVar[str]
    Options: ClassVar[type[TaskOptions]]
    #: metric used for checkpoint selection / early stopping, and whether higher is better
    monitor: ClassVar[tuple[str, str]] = ("loss", "min")
    #: metrics that ``medmtl compare`` tabulates (mean ± std over splits), most important first
    summary_metrics: ClassVar[tuple[str, ...]] = ()
    #: a helper task that only shapes the shared features (``compare`` trains no single-task model of it)
    auxiliary: ClassVar[bool] = False
    #: metrics where lower is better (all others: higher is better), for comparisons and Δm%
    lower_is_better: ClassVar[frozenset[str]] = frozenset({"loss"})
    #: the image dimensionalities the head works in (``model.spatial_dims``); 2D images are
    #: ``[B, C, H, W]``, volumes ``[B, C, D, H, W]``
    spatial_dims: ClassVar[tuple[int, ...]] = (2, 3)
    #: the head predicts one value per pixel/voxel at the image's size (``[B, K, *S]``: segmentation,
    #: reconstruction), so a sliding-window pass stitches it; otherwise it predicts per image
    dense: ClassVar[bool] = False
    #: why the task's outputs cannot be merged (test-time augmentation, ensembles) when :meth:`merge_outputs` is None
    merge_refusal: ClassVar[str] = "its outputs cannot be averaged"
    #: a method ``merge_outputs(outputs) -> raw output`` that merges several raw outputs for the same batch
    #: (the transformed copies of test-time augmentation, :class:`medmtl.tta.TTAModel`, with dense outputs
    #: already mapped back onto the input's grid; the members of an ensemble, :class:`medmtl.ensemble.
    #: EnsembleModel`) into one raw output that :meth:`postprocess`, :meth:`select` and :meth:`summarize`
    #: take as they take the head's; None (the default): the task can use neither
    merge_outputs: ClassVar[Any] = None

    def __init__(self, name: str | None = None, options: TaskOptions | None = None, **values: Any) -> None:
        super().__init__()
        self.options = self._validated(name, options, values)
        self.name = name or self.options.name or self.kind
        self.target = self.options.target
        #: names of other tasks whose outputs this head reads (feature transfer); the model
        #: runs those first and passes their outputs in ``context``
        self.consumes = tuple(self.options.consumes)
        self.head: nn.Module | None = None

    @classmethod
    def _validated(cls, name: str | None, options: TaskOptions | None, values: dict[str, Any]) -> Any:
        if options is not None:
            if values:
                raise TypeError(f"{cls.__name__}: pass either options= or option keywords, not both")
            if not isinstance(options, cls.Options):
                raise TypeError(f"{cls.__name__} takes {cls.Options.__name__}, not {type(options).__name__}")
            return options
        try:
            return cls.Options(kind=cls.kind, name=name, **values)
        except ValidationError as error:
            first = error.errors()[0]
            key = ".".join(str(part) for part in first["loc"])
            prefix = f"tasks.{name or cls.kind}"
            problem = first["msg"]
            if first["type"] == "extra_forbidden":
                problem = f"unknown option; allowed: {sorted(set(cls.Options.model_fields) - {'kind'})}"
            raise ConfigError(f"{prefix}.{key}" if key else prefix, problem) from None

    # -- the model ------------------------------------------------------------------------
    @abstractmethod
    def build_head(self, feature_info: list[FeatureInfo], image_channels: int) -> None:
        """Create ``self.head`` for an encoder with these feature maps."""

    @abstractmethod
    def forward(self, features: list[torch.Tensor], image: torch.Tensor, context: Outputs,
                batch: Batch | None = None) -> P:
        """Predict from encoder features ``[B, C_i, H_i, W_i]`` and the input ``[B, C, H, W]``.

        ``context`` holds the outputs of the tasks named in ``consumes``; ``batch`` (when training
        or evaluating) lets heads whose computation depends on the targets use them (detection's
        proposal sampling); most heads ignore it.
        """

    @abstractmethod
    def compute_loss(self, prediction: P, target: T) -> torch.Tensor:
        """Scalar loss on the labelled rows only (both already restricted to them by :meth:`select`)."""

    @abstractmethod
    def summarize(self, prediction: P, target: T) -> Summary:
        """Per-sample numbers (rows = labelled samples) that :meth:`compute_metrics` aggregates."""

    @abstractmethod
    def compute_metrics(self, summary: Summary, n_resamples: int = 1000, seed: int = 0) -> dict[str, Any]:
        """Epoch metrics from concatenated summaries; ``<m>_ci95`` holds a bootstrap interval."""

    def postprocess(self, prediction: P) -> Any:
        """Turn raw head output into the user-facing prediction (probabilities, masks…)."""
        return prediction

    # -- shared plumbing -----------------------------------------------------------------
    def labelled(self, batch: Batch) -> torch.Tensor:
        """BoolTensor ``[B]``: the samples of ``batch`` labelled for this task (the rows :meth:`select`
        keeps, in order); the target ``image`` (the input itself) is always there."""
        size = len(batch["image"])
        if self.target == "image":
            return torch.ones(size, dtype=torch.bool)
        present = batch["present"].get(self.target)
        return torch.zeros(size, dtype=torch.bool) if present is None else present.bool()

    def select(self, prediction: P, batch: Batch) -> tuple[P, T] | None:
        """``(prediction, target)`` restricted to the samples labelled for this task, or None.

        The default handles tensor outputs with one row per sample.
        """
        if self.target == "image":
            return prediction, batch["image"]
        present = self.labelled(batch)
        if not bool(present.any()):
            return None
        present = present.to(prediction.device)
        return prediction[present], batch["targets"][self.target].to(prediction.device)[present]

    def loss(self, prediction: P, batch: Batch) -> torch.Tensor | None:
        """The task's loss on a batch, or None when no sample of the batch is labelled for it."""
        selected = self.select(prediction, batch)
        if selected is None:
            return None
        return self.compute_loss(*selected)

    def loss_parts(self, prediction: P) -> dict[str, torch.Tensor]:
        """Named sub-losses worth logging beside the task's loss (detection: RPN, RoI, mask); none by default."""
        return {}

    @property
    def metric_names(self) -> tuple[str, ...]:
        """The scalar metrics :meth:`compute_metrics` returns (logged as ``val/<task>/<metric>``, so the
        ones ``trainer.monitor`` may name besides the losses); by default :attr:`summary_metrics` and
        the :attr:`monitor` metric."""
        return tuple(name for name in dict.fromkeys((*self.summary_metrics, self.monitor[0])) if name != "loss")

    @property
    def wants_boxes_from_masks(self) -> bool:
        """Whether samples should carry boxes derived from their masks (one per connected component)."""
        return False

    # -- results for people ---------------------------------------------------------------
    def report_figures(self, summary: Summary, out_dir: Path, split: str) -> list[str]:
        """Write this task's figures (and their data as CSV) into ``out_dir``; return the Markdown
        sections that show them. ``summary``: this task's concatenated :meth:`summarize` output."""
        return []

    def overlay(self, prediction: Any, batch: Batch, index: int) -> Overlay | None:
        """What the report's picture of sample ``index`` shows for this task (``prediction``: the
        :meth:`postprocess` output of the batch), or None."""
        return None

    def write_prediction(self, prediction: Any, sink: PredictionSink) -> Any:
        """The JSON entry of one image's prediction (``prediction``: the :meth:`postprocess` output
        of a batch of one), writing any files through ``sink``; None leaves the task out of
        ``predictions.json``. Default: the values as a list."""
        return prediction[0].tolist()

    def explained_columns(self, prediction: Any) -> list[tuple[int, str]] | None:
        """The per-image numbers an attribution map can explain (``medmtl show-grid --explain``), for one
        image's :meth:`postprocess` output ``[1, K]``: ``[(column, what it is), …]``; None (the default):
        the head predicts no single number per image (segmentation, reconstruction, detection)."""
        return None

    def extra_repr(self) -> str:
        return f"name={self.name!r}, target={self.target!r}"


def mean_log_probabilities(log_probs: list[torch.Tensor]) -> torch.Tensor:
    """``log(mean_i exp(log_probs[i]))``, computed stably (in float32 at least, returned in the inputs' dtype)."""
    stacked = torch.stack([p.float() for p in log_probs])
    return (torch.logsumexp(stacked, dim=0) - math.log(len(log_probs))).to(log_probs[0].dtype)


def concat_summaries(parts: list[Summary]) -> Summary:
    """Join per-batch summaries into one per epoch (empty dict when nothing was labelled)."""
    parts = [p for p in parts if p]
    if not parts:
        return {}
    return {key: np.concatenate([p[key] for p in parts]) for key in parts[0]}
