"""Heat maps of a slide-level model: how much each cell of a slide's embedding grid drives its prediction.

A slide-level model (``data.kind: grid``, Neural Image Compression) predicts one number per slide
and head; the map ``[H, W]`` of a head gives each tissue cell of the store's grid its share in that
number:

- classification: the probability of the predicted class (of class 1 when there are two classes);
- regression: the predicted value (one map per output);
- survival: the log-risk (higher = shorter survival).

Two methods, both signed the same way (positive: the cell pushes the number up):

- ``gradient`` (the default), gradient × input: ``Σ_c ∂y/∂x[c, i, j] · x[c, i, j]`` per cell, the
  whole grid in one backward pass per head. It is the first-order estimate of how much ``y`` would
  drop if the cell's embedding were replaced by zeros (the grid's background value), exact for what
  it measures, signed, and cheap for grids of any size — hence the default.
- ``occlusion``: each block of ``k × k`` cells (``occlusion_size``, a non-overlapping tiling) is set
  to zeros, the value the grid holds for non-tissue cells, and ``y(grid) − y(occluded)`` is given
  to every tissue cell of the block. Model-agnostic and it measures the actual effect of removing a
  region (interactions, saturation and all), but it needs one forward pass per block (batched):
  slower, and coarser for ``k > 1``.

The model sees what ``medmtl predict`` gives it: the store goes through
:func:`medmtl.data.build.inference_dataset` (the run's evaluation preprocessing: the centre
``S × S`` window, ``S = data.grid_size``, zero-padded when the grid is smaller). Cells outside that
window, and non-tissue cells, get NaN.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from medmtl.errors import ConfigError, DataError

if TYPE_CHECKING:
    from medmtl.config import RunConfig
    from medmtl.grid_store import GridStore
    from medmtl.model import MultiTaskModel

#: ``--method`` choices; the first is the default
METHODS = ("gradient", "occlusion")


@dataclass(frozen=True)
class ExplainedOutput:
    """One number per slide: column ``column`` of task ``task``'s postprocessed output ``[B, K]``."""

    task: str
    column: int
    #: the number itself, on the unchanged grid
    value: float
    #: the panel's and the .npy file's name: the task, or ``<task>_<i>`` for a multi-output regression
    label: str
    #: what the number is, for titles: ``P(class 1)``, ``predicted value``, ``log-risk``
    quantity: str


@dataclass
class SlideExplanation:
    """The maps of one store: ``maps[label]`` ``[H, W]`` float32 on the store's grid (NaN off tissue and
    outside the model's window); each output's ``value`` is the model's output on the unchanged grid."""

    outputs: list[ExplainedOutput]
    maps: dict[str, np.ndarray]
    method: str
    occlusion_size: int
    #: the model's window on the store's grid: top, left (negative when padded) and side, in cells
    window: tuple[int, int, int]
    #: the run directory the model came from
    run: str = ""

    def method_title(self) -> str:
        """``gradient × input`` or ``occlusion (k × k cells)``."""
        if self.method == "gradient":
            return "gradient × input"
        return f"occlusion ({self.occlusion_size} × {self.occlusion_size} cell{'s' if self.occlusion_size > 1 else ''})"


def check_method(method: str, occlusion_size: int = 1) -> None:
    """A :class:`ConfigError` naming ``--method`` or ``--occlusion-size`` for a value that cannot be used."""
    if method not in METHODS:
        raise ConfigError("--method", f"unknown method '{method}'; choose one of {', '.join(METHODS)}")
    if isinstance(occlusion_size, bool) or int(occlusion_size) != occlusion_size or occlusion_size < 1:
        raise ConfigError("--occlusion-size", f"must be a whole number of cells ≥ 1, not {occlusion_size!r}")


def check_grid_model(config: RunConfig, model: MultiTaskModel, channels: int, run: str | Path,
                     store: str | Path) -> None:
    """Refuse a run that is not a slide-level model for a store of ``channels``-channel embeddings."""
    if config.data.kind != "grid":
        raise ConfigError("--explain", f"{run} is not a slide-level model: its data.kind is '{config.data.kind}', "
                                       "not 'grid' (train one on grid stores, e.g. the nic-slide preset)")
    if int(model.image_channels) != channels:
        raise DataError(store, f"has {channels}-channel embeddings, but the model of {run} takes "
                               f"{int(model.image_channels)} input channels (data.channels)")


def explained_outputs(model: MultiTaskModel, image: torch.Tensor, run: str | Path = "the model"
                      ) -> list[ExplainedOutput]:
    """The numbers to explain for ``image`` ``[C, S, S]``, in the model's head order; a
    :class:`ConfigError` when no head predicts one number per slide."""
    with torch.no_grad():
        predictions = model.predict(image[None].to(_device(model)))
    outputs: list[ExplainedOutput] = []
    for name, task in model.tasks.items():
        columns = task.explained_columns(predictions[name]) or []
        outputs += [ExplainedOutput(name, column, float(predictions[name][0, column]),
                                    name if len(columns) == 1 else f"{name}_{column}", quantity)
                    for column, quantity in columns]
    if not outputs:
        heads = ", ".join(f"{name} ({task.kind})" for name, task in model.tasks.items())
        raise ConfigError("--explain", f"{run} has no head that predicts a number per slide (classification, "
                                       f"regression and survival heads do); its heads: {heads}")
    return outputs


def output_values(model: MultiTaskModel, images: torch.Tensor, output: ExplainedOutput) -> torch.Tensor:
    """``[B]``: the explained number for each grid of ``images`` ``[B, C, S, S]`` (differentiable)."""
    task = model.tasks[output.task]
    raw = model(images, tasks=[output.task])[output.task]
    return task.postprocess(raw)[:, output.column]


def gradient_x_input(model: MultiTaskModel, image: torch.Tensor, output: ExplainedOutput) -> np.ndarray:
    """``[S, S]``: ``Σ_c ∂y/∂x · x`` per cell of ``image`` ``[C, S, S]``, in one backward pass."""
    x = image[None].to(_device(model), torch.float32).requires_grad_(True)
    with torch.enable_grad():
        (grad,) = torch.autograd.grad(output_values(model, x, output).sum(), x)
    return (grad * x.detach()).sum(dim=1)[0].cpu().numpy()


def occlusion(model: MultiTaskModel, image: torch.Tensor, output: ExplainedOutput, tissue: np.ndarray,
              size: int = 1, batch_size: int = 32) -> np.ndarray:
    """``[S, S]``: ``y(image) − y(image with the block set to zeros)`` for each ``size × size`` block of
    ``image`` ``[C, S, S]`` that holds tissue (``tissue`` ``[S, S]`` bool), on all its cells; NaN on
    blocks without tissue. ``batch_size`` occluded copies per forward pass."""
    _, height, width = image.shape
    blocks = [(top, left) for top in range(0, height, size) for left in range(0, width, size)
              if tissue[top:top + size, left:left + size].any()]
    result = np.full((height, width), np.nan, dtype=np.float32)
    x = image.to(_device(model), torch.float32)
    with torch.no_grad():
        reference = float(output_values(model, x[None], output)[0])
        for start in range(0, len(blocks), batch_size):
            chunk = blocks[start:start + batch_size]
            occluded = x.repeat(len(chunk), 1, 1, 1)
            for i, (top, left) in enumerate(chunk):
                occluded[i, :, top:top + size, left:left + size] = 0.0  # the background value of the grid
            changes = reference - output_values(model, occluded, output).cpu().numpy()
            for (top, left), change in zip(chunk, changes):
                result[top:top + size, left:left + size] = change
    return result


def cell_attributions(model: MultiTaskModel, image: torch.Tensor, output: ExplainedOutput, method: str = "gradient",
                      tissue: np.ndarray | None = None, occlusion_size: int = 1) -> np.ndarray:
    """``[S, S]`` float32 attribution of each cell of the model input ``image`` ``[C, S, S]`` to
    ``output``, by ``method`` (see the module docstring); NaN where ``tissue`` ``[S, S]`` (default:
    every cell) is False."""
    check_method(method, occlusion_size)
    tissue = np.ones(image.shape[-2:], dtype=bool) if tissue is None else np.asarray(tissue, dtype=bool)
    if method == "gradient":
        values = gradient_x_input(model, image, output)
    else:
        values = occlusion(model, image, output, tissue, occlusion_size)
    return np.where(tissue, values, np.nan).astype(np.float32)


def to_store_grid(window_map: np.ndarray, shape: tuple[int, int], top: int, left: int) -> np.ndarray:
    """``window_map`` ``[S, S]`` put back on the store's ``[H, W]`` grid at (top, left); NaN elsewhere."""
    size = window_map.shape[0]
    out = np.full(shape, np.nan, dtype=np.float32)
    ys, xs = max(0, top), max(0, left)
    ye, xe = min(shape[0], top + size), min(shape[1], left + size)
    if ye > ys and xe > xs:
        out[ys:ye, xs:xe] = window_map[ys - top:ye - top, xs - left:xe - left]
    return out


def explain_store(config: RunConfig, model: MultiTaskModel, store: GridStore, method: str = "gradient",
                  occlusion_size: int = 1, run: str | Path | None = None) -> SlideExplanation:
    """Every explainable head's map of ``store`` for a slide-level model (``config``: its run's;
    ``run``: where it came from, for messages and titles)."""
    from medmtl.data.build import inference_dataset
    from medmtl.data.grid import centre_window, crop_or_pad

    check_method(method, occlusion_size)
    channels, height, width = store.shape
    source = "the model" if run is None else run
    check_grid_model(config, model, channels, source, store.path)
    model.eval()
    image = inference_dataset(config.data, [store.path])[0]["image"]  # [C, S, S], exactly as predict sees it
    size = int(image.shape[-1])
    top, left = centre_window(height, width, size)
    tissue = crop_or_pad(store.tissue()[None].astype(np.float32), size, top, left)[0] > 0.5
    outputs = explained_outputs(model, image, source)
    maps = {}
    for output in outputs:
        window_map = cell_attributions(model, image, output, method, tissue, occlusion_size)
        maps[output.label] = to_store_grid(window_map, (height, width), top, left)
    return SlideExplanation(outputs, maps, method, occlusion_size, (top, left, size),
                            "" if run is None else str(run))


def explain_run(run_dir: str | Path, store: GridStore, method: str = "gradient", occlusion_size: int = 1,
                checkpoint: str | Path = "selected") -> SlideExplanation:
    """:func:`explain_store` with the model of a run directory (``checkpoint``: see
    :func:`medmtl.training.run.run_checkpoint`)."""
    from medmtl.training.run import load_run_checkpoint  # the training stack is only needed here

    check_method(method, occlusion_size)  # before the model is loaded
    config, model, _ = load_run_checkpoint(run_dir, checkpoint)
    return explain_store(config, model, store, method, occlusion_size, run=run_dir)


def write_maps(explanation: SlideExplanation, out_png: Path) -> list[Path]:
    """One ``<png stem>_<label>.npy`` (float32 ``[H, W]``, NaN off tissue) per map, beside the PNG."""
    out_png.parent.mkdir(parents=True, exist_ok=True)
    paths = []
    for label, values in explanation.maps.items():
        path = out_png.with_name(f"{out_png.stem}_{label}.npy")
        np.save(path, values)
        paths.append(path)
    return paths


def _device(model: MultiTaskModel) -> torch.device:
    parameter = next(model.parameters(), None)
    return parameter.device if parameter is not None else torch.device("cpu")
