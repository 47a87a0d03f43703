"""Test-time augmentation (TTA): run a model on flipped / rotated copies of the input and merge the outputs.

:class:`TTAModel` wraps a :class:`~medmtl.model.MultiTaskModel` (or an exported model that behaves like
one, :mod:`medmtl.exported`) and behaves like it: the same ``tasks``, ``model(image) -> {task: raw
output}``, ``predict(image)``, ``eval()``; any other attribute is the wrapped model's. Evaluation
(:func:`medmtl.evaluation.collect_summaries`), ``predict`` (:func:`medmtl.predict.predict_files`), the
report and the sliding window (:mod:`medmtl.sliding_window`, where each window batch is augmented) use
it unchanged.

For each transform ``t`` of the set the model runs on ``t(image)``; the outputs of dense heads
(``Task.dense``: ``[B, K, *S]`` at the image's size) are mapped back with ``t⁻¹``; then each task merges
its list of outputs with :meth:`medmtl.tasks.base.Task.merge_outputs` (classification and segmentation:
the mean of the probabilities, returned as log-probabilities; regression, survival, reconstruction: the
mean). A task whose ``merge_outputs`` is None (detection: boxes would need merging) cannot use TTA: the
wrapper refuses it with a :class:`~medmtl.errors.ConfigError`.

Transform sets (:func:`tta_transforms`, ``--tta`` of ``medmtl evaluate`` / ``medmtl predict``):

- ``none``: no augmentation (the model is used as it is);
- ``hflip``: the identity and a left–right flip (the last axis; 2 passes): for images whose up–down
  orientation means something (ultrasound with the probe on top, chest radiographs) while their left
  and right are interchangeable;
- ``flip``: the identity and a flip of each spatial axis alone (2D images: 3 passes; volumes: 4);
- ``flip+rot90``: those and rotations by 90°, 180° and 270° in the plane of the last two axes
  (H–W; 2D: 6 passes, 3D: 7); square H–W planes only (``H == W``), else a :class:`ConfigError` on
  ``--tta``.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from medmtl.errors import ConfigError

#: the choices of ``--tta``
TTA_CHOICES = ("none", "hflip", "flip", "flip+rot90")


@dataclass(frozen=True)
class Transform:
    """Flip the spatial axes ``flips`` (0 = the first spatial axis), then rotate by ``rot90 × 90°`` in the
    plane of the last two axes; :meth:`apply` to an input ``[B, C, *S]``, :meth:`invert` on a dense output
    ``[B, K, *S]`` of the transformed input."""

    flips: tuple[int, ...] = ()
    rot90: int = 0

    @property
    def name(self) -> str:
        parts = [f"flip{axis}" for axis in self.flips] + ([f"rot{90 * self.rot90}"] if self.rot90 else [])
        return "+".join(parts) or "identity"

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        if self.flips:
            x = torch.flip(x, [2 + axis for axis in self.flips])
        if self.rot90:
            x = torch.rot90(x, self.rot90, dims=(-2, -1))
        return x

    def invert(self, x: torch.Tensor) -> torch.Tensor:
        if self.rot90:
            x = torch.rot90(x, -self.rot90, dims=(-2, -1))
        if self.flips:
            x = torch.flip(x, [2 + axis for axis in self.flips])
        return x


IDENTITY = Transform()


def tta_transforms(choice: str, spatial_dims: int) -> list[Transform]:
    """The transforms of ``--tta choice`` for images with ``spatial_dims`` (2 or 3) spatial axes, identity first."""
    if choice not in TTA_CHOICES:
        raise ConfigError("--tta", f"unknown test-time augmentation '{choice}'; choose one of {', '.join(TTA_CHOICES)}")
    transforms = [IDENTITY]
    if choice == "hflip":
        transforms.append(Transform(flips=(spatial_dims - 1,)))
    if choice in ("flip", "flip+rot90"):
        transforms += [Transform(flips=(axis,)) for axis in range(spatial_dims)]
    if choice == "flip+rot90":
        transforms += [Transform(rot90=k) for k in (1, 2, 3)]
    return transforms


def with_tta(model: Any, choice: str, spatial_dims: int) -> Any:
    """``model`` itself for ``choice == "none"``, else a :class:`TTAModel` of its ``--tta`` transform set."""
    transforms = tta_transforms(choice, spatial_dims)
    return model if choice == "none" else TTAModel(model, transforms)


class TTAModel:
    """``model`` run on each of ``transforms`` and merged per task (see the module docstring).

    Raises a :class:`ConfigError` when a task of the model cannot use TTA (``Task.merge_outputs`` is None),
    and, when called, when a transform rotates a non-square H–W plane.
    """

    def __init__(self, model: Any, transforms: Sequence[Transform]) -> None:
        if not transforms:
            raise ConfigError("--tta", "at least one transform is needed")
        for name, task in model.tasks.items():
            if getattr(task, "merge_outputs", None) is None:
                reason = getattr(task, "merge_refusal", "its outputs cannot be averaged")
                raise ConfigError("--tta", f"task '{name}' ({task.kind}) does not support test-time augmentation: "
                                           f"{reason}; run without --tta")
        self.model = model
        self.transforms = list(transforms)

    @property
    def tasks(self) -> Any:
        return self.model.tasks

    def eval(self) -> TTAModel:
        self.model.eval()
        return self

    def __getattr__(self, name: str) -> Any:  # only called for attributes TTAModel lacks
        if name == "model":  # not set yet (e.g. while unpickling): no recursion
            raise AttributeError(name)
        return getattr(self.model, name)

    def __call__(self, image: torch.Tensor, batch: dict[str, Any] | None = None,
                 tasks: Collection[str] | None = None) -> dict[str, Any]:
        """``{task: merged raw output}``, shaped like the wrapped model's outputs."""
        rotates = any(t.rot90 for t in self.transforms)
        if rotates and image.shape[-1] != image.shape[-2]:
            raise ConfigError("--tta", f"90° rotations need square images (H == W); got H × W = "
                                       f"{image.shape[-2]} × {image.shape[-1]}; use --tta flip")
        runs: list[dict[str, Any]] = []
        for transform in self.transforms:
            kwargs: dict[str, Any] = {} if tasks is None else {"tasks": tasks}
            if batch is not None:
                kwargs["batch"] = batch
            outputs = self.model(transform.apply(image), **kwargs)
            runs.append({name: transform.invert(out) if self.model.tasks[name].dense else out
                         for name, out in outputs.items()})
        if len(runs) == 1:  # nothing to merge: the (inverse-transformed) outputs as they are
            return runs[0]
        return {name: self.model.tasks[name].merge_outputs([run[name] for run in runs]) for name in runs[0]}

    forward = __call__

    @torch.no_grad()
    def predict(self, image: torch.Tensor) -> dict[str, Any]:
        """User-facing predictions per task (``Task.postprocess`` of the merged outputs)."""
        outputs = self(image)
        return {name: self.tasks[name].postprocess(out) for name, out in outputs.items()}

    def __repr__(self) -> str:
        return f"TTAModel({', '.join(t.name for t in self.transforms)}; {type(self.model).__name__})"
