"""Sliding-window inference of a :class:`~medmtl.model.MultiTaskModel` on images larger than its patches.

Dense heads (``Task.dense``: segmentation, reconstruction; raw output ``[B, K, *S]``) are stitched by
MONAI's :func:`~monai.inferers.sliding_window_inference` with Gaussian (or constant) blending. Global
heads (classification, regression, survival; raw output ``[B, K]``) give one output per window; the
image's output is the **plain mean of its windows' raw outputs** (logits, values, risk scores), every
window counting once. All windows have the same size and lie inside the (padded) image, so weighting
them by the fraction of their voxels inside the image would give the same mean; note that the windows
are not spread evenly (MONAI shifts the last window of each axis back inside the image), so voxels near
the far end of an axis are seen by more windows.

The model runs as given: put it in ``eval()`` mode (BatchNorm would otherwise normalise each batch of
windows by its own statistics) and call under ``torch.no_grad()`` / ``torch.inference_mode()``
(:func:`predict_volume` does the latter for you). Gradients through the stitching are not supported:
MONAI scales the window outputs in place.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Literal

import torch

from medmtl.model import MultiTaskModel

#: key of the one-channel zero map handed to MONAI when the model has no dense head
_NO_DENSE = "__no_dense_head__"


class _WindowPredictor:
    """The predictor given to MONAI: runs the model on a batch of windows ``[N, C, *roi]``, returns the
    dense heads' outputs ``{task: [N, K, *roi]}`` and adds each global head's outputs ``[N, ...]`` to a
    running sum per image (``coords[i][0]`` is the batch slice of window ``i``, as MONAI passes it with
    ``with_coord=True``)."""

    def __init__(self, model: MultiTaskModel, dense: list[str], batch_size: int) -> None:
        self.model = model
        self.dense = dense
        self.batch_size = batch_size
        self.sums: dict[str, torch.Tensor] = {}
        self.counts = torch.zeros(batch_size, dtype=torch.long)

    def __call__(self, windows: torch.Tensor, coords: Sequence[Sequence[slice]]) -> dict[str, torch.Tensor]:
        outputs = self.model(windows)
        owners = torch.tensor([int(c[0].start) for c in coords], dtype=torch.long)
        self.counts += torch.bincount(owners, minlength=self.batch_size)
        for name, out in outputs.items():
            if name in self.dense:
                continue
            if not isinstance(out, torch.Tensor) or out.dim() == 0 or out.shape[0] != len(windows):
                raise TypeError(f"task {name!r}: sliding-window inference can only average tensor outputs with one "
                                f"row per window, got {type(out).__name__}; run the whole image instead")
            if name not in self.sums:
                self.sums[name] = out.new_zeros((self.batch_size, *out.shape[1:]), dtype=torch.float32)
            self.sums[name].index_add_(0, owners.to(out.device), out.float())
        if not self.dense:
            return {_NO_DENSE: windows.new_zeros((len(windows), 1, *windows.shape[2:]))}
        return {name: outputs[name] for name in self.dense}

    def means(self, dtype: torch.dtype) -> dict[str, torch.Tensor]:
        """Per image, the mean of its windows' outputs: ``{task: [B, ...]}``."""
        result = {}
        for name, total in self.sums.items():
            counts = self.counts.to(total.device).clamp_min(1).reshape(-1, *([1] * (total.dim() - 1)))
            result[name] = (total / counts).to(dtype)
        return result


def sliding_window_predict(model: MultiTaskModel, image: torch.Tensor, roi_size: int | Sequence[int],
                           overlap: float = 0.25, mode: Literal["gaussian", "constant"] = "gaussian",
                           sw_batch_size: int = 4, whole_volume_voxels: int | None = None, *,
                           sigma_scale: float = 0.125, padding_mode: str = "constant",
                           sw_device: torch.device | str | None = None,
                           device: torch.device | str | None = None) -> dict[str, torch.Tensor]:
    """Raw outputs of every task, as ``model(image)`` gives them, from windows of ``roi_size``.

    ``image``: ``[B, C, *S]`` (2D ``[B, C, H, W]`` or 3D ``[B, C, D, H, W]``); ``roi_size``: the window
    size, one int per spatial axis (an int is repeated; a non-positive value means the whole axis, as in
    MONAI). Returns ``{task: raw output}`` in the model's task order: dense heads ``[B, K, *S]``
    (windows blended with ``mode``, ``sigma_scale`` and ``overlap`` by MONAI), global heads ``[B, K]`` (the
    mean of the windows' raw outputs, see the module docstring). An axis shorter than the window is
    padded (``padding_mode``, zeros by default) and the dense outputs are cropped back to ``S``; the global
    heads then see the padded windows. Heads that consume other heads run inside each window, on that
    window's outputs.

    When the image has at most ``whole_volume_voxels`` voxels (``prod(S)``; None = never), the whole image
    goes through the model in one pass for **every** head and no window is cut.

    ``sw_device``: where windows run (default: the image's device); ``device``: where the outputs are
    gathered (default: the image's device). The caller sets ``model.eval()`` and ``torch.no_grad()``.
    A head whose raw output is not a tensor with one row per image (detection) cannot be averaged over
    windows and raises :class:`TypeError`; use ``whole_volume_voxels`` for such models.
    """
    spatial = tuple(image.shape[2:])
    roi = (roi_size,) * len(spatial) if isinstance(roi_size, int) else tuple(int(r) for r in roi_size)
    if image.dim() not in (4, 5) or len(roi) != len(spatial):
        raise ValueError(f"image [B, C, *S] with 2 or 3 spatial axes and one roi size per axis expected; got image "
                         f"{list(image.shape)} and roi_size {list(roi)}")
    out_device = torch.device(device) if device is not None else image.device
    if whole_volume_voxels is not None and math.prod(spatial) <= whole_volume_voxels:
        outputs = model(image.to(sw_device) if sw_device is not None else image)
        return {name: out.to(out_device) if isinstance(out, torch.Tensor) else out for name, out in outputs.items()}

    from monai.inferers import sliding_window_inference  # monai is slow to import

    dense = [name for name, task in model.tasks.items() if task.dense]
    predictor = _WindowPredictor(model, dense, len(image))
    stitched = sliding_window_inference(image, roi, sw_batch_size, predictor, overlap=overlap, mode=mode,
                                        sigma_scale=sigma_scale, padding_mode=padding_mode, sw_device=sw_device,
                                        device=out_device, with_coord=True)
    dtype = next(iter(stitched.values())).dtype
    outputs = {name: stitched[name] for name in dense}
    outputs.update({name: mean.to(out_device) for name, mean in predictor.means(dtype).items()})
    return {name: outputs[name] for name in model.tasks if name in outputs}


@torch.no_grad()
def predict_volume(model: MultiTaskModel, image: torch.Tensor, roi_size: int | Sequence[int],
                   **options: Any) -> dict[str, Any]:
    """User-facing predictions per task (``Task.postprocess`` of :func:`sliding_window_predict`'s raw
    outputs: class probabilities ``[B, K]``, label maps ``[B, *S]``…), under ``torch.no_grad`` (like
    :meth:`MultiTaskModel.predict`).

    ``options``: the keywords of :func:`sliding_window_predict` (``overlap``, ``mode``, ``sw_batch_size``,
    ``whole_volume_voxels``…). The model's train/eval mode is left as it is: call ``model.eval()`` first.
    """
    raw = sliding_window_predict(model, image, roi_size, **options)
    return {name: model.tasks[name].postprocess(out) for name, out in raw.items()}
