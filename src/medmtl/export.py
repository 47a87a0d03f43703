"""Export a trained model for inference outside PyTorch's eager mode: ONNX (for onnxruntime) or TorchScript.

What is exported is the network of a :class:`~medmtl.model.MultiTaskModel` in evaluation mode, on
the CPU in float32: the input ``image`` (``[B, C, H, W]``, volumes ``[B, C, D, H, W]``, preprocessed as
``predict`` does) through the encoder and every head to each task's **raw** output (logits, values,
risk scores, per-pixel logits, reconstructions): one named output per task, named after it, in the
model's task order (a head whose raw output is a tuple or a dict has one output per item,
``<task>.<i>`` / ``<task>.<key>``). Post-processing (softmax, argmax…) and the prediction files
stay in Python: :mod:`medmtl.exported` rebuilds the tasks from the run configuration stored in
the file, so ``medmtl predict --backend onnxruntime`` writes the same files as the PyTorch path.

- **ONNX**: PyTorch's torch.export-based exporter (``torch.onnx.export(..., dynamo=True)``, the
  default and maintained one since PyTorch 2.9; it needs ``onnxscript``). Every axis but the
  channels is exported with ``Dim.AUTO``: torch.export keeps an axis symbolic when the network
  computes the same graph for every size and fixes it otherwise, so the file says itself which
  axes are dynamic (``batch``, ``height``, ``width``, ``depth``). The example input is made large
  enough for the deepest feature map to be at least 2 wide (torch.export treats sizes of 1 as
  constants), and a graph that does not match PyTorch at other sizes is exported again with the
  training size fixed. For medmtl's encoders and heads the batch and all spatial axes are dynamic.
- **TorchScript**: ``torch.jit.trace`` of the same network; the batch axis is dynamic, spatial
  axes are declared dynamic when the traced module matches eager PyTorch at a second size.

Both exports are checked against eager PyTorch on random inputs of batch 1 and 3 (and a second
spatial size where dynamic), and :attr:`ExportResult.max_abs_diff` reports the largest difference.
The file's metadata (ONNX ``metadata_props``, TorchScript ``_extra_files``) holds what predict needs:
see :mod:`medmtl.exported`.

**Detection** (``kind: detection``) is not exported: an :class:`~medmtl.errors.ExportError` says
why. torch.export cannot trace torchvision's NMS (its output size depends on the data), and
torchvision's own ONNX support of Mask R-CNN is the deprecated TorchScript-based exporter, for one
image per batch, which freezes the head's data-dependent branches (the image-level malignant-veto
score, the images without detections) at the example image: tried on our head, the exported score
was wrong (``inf`` or the example's value) whenever an image's detections differed in kind from the
example's.
"""

from __future__ import annotations

import contextlib
import io
import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

import medmtl
from medmtl.config import RunConfig
from medmtl.errors import ConfigError, DataError, ExportError
from medmtl.exported import ExportMetadata, Layout, layout_names
from medmtl.io_utils import atomic_write_bytes
from medmtl.model import MultiTaskModel

FORMATS = ("onnx", "torchscript")
#: the ONNX input name
INPUT_NAME = "image"
_AXIS_NAMES = {2: ("height", "width"), 3: ("depth", "height", "width")}
#: a traced TorchScript module whose outputs at a second spatial size differ more than this from
#: eager PyTorch is declared to have a fixed spatial size
_SPATIAL_TOLERANCE = 1e-3


@dataclass
class ExportResult:
    """What :func:`export_model` wrote."""

    path: Path
    format: str
    output_names: list[str]
    #: ``{axis: name}`` of the input's dynamic axes (0: batch)
    dynamic_axes: dict[int, str]
    #: the largest absolute difference from eager PyTorch over the check inputs
    max_abs_diff: float
    #: the input shapes it was checked on
    checked_shapes: list[tuple[int, ...]]

    def describe(self) -> str:
        axes = ", ".join(self.dynamic_axes.values()) or "none"
        shapes = ", ".join("×".join(str(s) for s in shape) for shape in self.checked_shapes)
        return (f"{self.path} ({self.format}; dynamic axes: {axes}; max |difference| from PyTorch "
                f"{self.max_abs_diff:.1e} on inputs {shapes})")


def check_format(format: str) -> str:
    """``format`` if medmtl can export to it, else a :class:`ConfigError` naming ``--format``."""
    if format not in FORMATS:
        raise ConfigError("--format", f"unknown export format '{format}'; choose one of {', '.join(FORMATS)}")
    return format


def export_run(run_dir: str | Path, out: str | Path, format: str = "onnx",
               checkpoint: str | Path = "selected") -> tuple[ExportResult, Any]:
    """Export the model of a run directory with the weights of ``checkpoint`` (best, last or a path);
    returns what was written and which checkpoint (:class:`~medmtl.training.run.CheckpointInfo`) was used.

    A run that has no checkpoint yet is a :class:`DataError` naming the run directory.
    """
    from medmtl.training.run import load_run_checkpoint, run_checkpoint

    check_format(format)
    run_dir = Path(run_dir)
    if str(checkpoint) in ("selected", "best", "last") and (run_dir / "config.yaml").is_file() \
            and not (run_dir / "ensemble.json").is_file():
        try:
            run_checkpoint(run_dir, checkpoint)
        except DataError as error:
            raise DataError(run_dir, f"has no checkpoint to export ({error}); train the run first or pass "
                                     "--checkpoint PATH") from None
    config, model, used = load_run_checkpoint(run_dir, checkpoint)
    result = export_model(model, config, out, format, checkpoint=used.as_dict())
    return result, used


def export_model(model: MultiTaskModel, config: RunConfig, out: str | Path, format: str = "onnx", *,
                 checkpoint: dict[str, Any] | None = None, seed: int = 0) -> ExportResult:
    """Export ``model`` (put in eval mode, on the CPU) with ``config`` (its run configuration) to the
    file ``out``, written atomically; ``checkpoint`` is stored as information."""
    check_format(format)
    out = Path(out)
    if out.is_dir():
        example_file = out / f"model.{_suffix(format)}"
        raise ConfigError("--out", f"{out} is a folder; give the file to write, e.g. {example_file}")
    _refuse_detection(model)
    model = model.to("cpu", torch.float32).eval()
    spatial = tuple(int(s) for s in config.data.image_shape)
    stride = _largest_stride(model, len(spatial))
    generator = torch.Generator().manual_seed(seed)
    example = torch.rand(2, config.data.channels, *spatial, generator=generator)
    with torch.no_grad():
        reference = model(example)
    layouts = {name: _layout(name, reference[name]) for name in model.tasks}
    names = [name for layout in layouts.values() for name in layout_names(layout)]
    network = _FlatOutputs(model, layouts).eval()

    if format == "onnx":
        # torch.export treats sizes 1 as constants: the ONNX graph of a network whose deepest map is 1 wide at the
        # example is wrong at other sizes (a 3D ResNet-10 traced at 32³ read its 2×2×2 map at 64³ as 8 images), so
        # the example is made large enough for every map to be at least 2 wide (the training size if that fails)
        roomy = tuple(max(size, 2 * step) for size, step in zip(spatial, stride))
        if roomy != spatial:
            large = torch.rand(2, config.data.channels, *roomy, generator=generator)
            proto, dynamic = _export_onnx(network, large, names, len(spatial))
            if len(dynamic) == 1 + len(spatial):
                example = large
            else:
                proto, dynamic = _export_onnx(network, example, names, len(spatial))
        else:
            proto, dynamic = _export_onnx(network, example, names, len(spatial))
        run = _onnx_runner(proto.SerializeToString())
    else:
        traced = _trace(network, example)
        dynamic = {0: "batch", **dict(enumerate(_AXIS_NAMES[len(spatial)], start=2))}
        run = lambda image: list(traced(image))  # noqa: E731
    others = [tuple(size + step for size, step in zip(example.shape[2:], stride))]
    others += [spatial] if tuple(example.shape[2:]) != spatial else []
    checked, diff, spatial_ok = _check(network, run, example, dynamic, others, generator)
    if not spatial_ok:  # exported with the training size fixed
        dynamic = {0: "batch"}
        if format == "onnx":
            example = torch.rand(2, config.data.channels, *spatial, generator=generator)
            proto, dynamic = _export_onnx(network, example, names, len(spatial), fixed_size=True)
            run = _onnx_runner(proto.SerializeToString())
            checked, diff, _ = _check(network, run, example, dynamic, [], generator)

    shape: list[int | str] = [dynamic.get(axis, size) for axis, size in enumerate(example.shape)]
    metadata = ExportMetadata(config, medmtl.__version__, layouts, INPUT_NAME, shape, checkpoint).as_strings()
    if format == "onnx":
        del proto.metadata_props[:]
        for key, value in metadata.items():
            proto.metadata_props.add(key=key, value=value)
        proto.doc_string = "medmtl export: input 'image', one output per task (raw head outputs)"
        data = proto.SerializeToString()
    else:
        buffer = io.BytesIO()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # torch.jit is deprecated in favour of torch.export
            torch.jit.save(traced, buffer, _extra_files=metadata)
        data = buffer.getvalue()
    atomic_write_bytes(out, data)
    return ExportResult(out, format, names, dynamic, diff, checked)


# ------------------------------------------------------------------------------------------ network
class _FlatOutputs(nn.Module):
    """The model with its outputs as one flat tuple of tensors (the exporters' convention)."""

    def __init__(self, model: MultiTaskModel, layouts: dict[str, Layout]) -> None:
        super().__init__()
        self.model = model
        self.layouts = layouts

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, ...]:
        outputs = self.model(image)
        flat: list[torch.Tensor] = []
        for name, layout in self.layouts.items():
            _flatten(outputs[name], layout, flat)
        return tuple(flat)


def _flatten(value: Any, layout: Layout, into: list[torch.Tensor]) -> None:
    if isinstance(layout, str):
        into.append(value)
    elif isinstance(layout, dict):
        for key, item in layout.items():
            _flatten(value[key], item, into)
    else:
        for element, item in zip(value, layout):
            _flatten(element, item, into)


def _layout(name: str, value: Any) -> Layout:
    """How a task's raw output maps to named outputs; an :class:`ExportError` for anything but tensors
    and tuples, lists or dicts (with string keys) of them."""
    if isinstance(value, torch.Tensor):
        return name
    if isinstance(value, (tuple, list)):
        return [_layout(f"{name}.{index}", item) for index, item in enumerate(value)]
    if isinstance(value, dict) and all(isinstance(key, str) for key in value):
        return {key: _layout(f"{name}.{key}", item) for key, item in value.items()}
    raise ExportError(f"task '{name.split('.')[0]}': its raw output ({type(value).__name__}) is not a tensor, nor a "
                      "tuple or dict of tensors, so it cannot be exported")


def _refuse_detection(model: MultiTaskModel) -> None:
    for name, task in model.tasks.items():
        if task.kind == "detection":
            raise ExportError(
                f"task '{name}' (kind: detection) cannot be exported: torch.export cannot trace torchvision's "
                "NMS (its output size depends on the image), and torchvision's own ONNX support (the deprecated "
                "TorchScript-based exporter, one image per batch) freezes the detection head's data-dependent "
                "steps (the image-level score, images without detections) at the example image; export a run "
                "without the detection task, or predict with the PyTorch backend")


def _largest_stride(model: MultiTaskModel, spatial_dims: int) -> tuple[int, ...]:
    """Per spatial axis, the encoder's largest stride (an ensemble's: over its members' encoders), so that
    a second check size keeps every scale whole."""
    encoders = [member.encoder for member in getattr(model, "members", [model])]
    info = [f for encoder in encoders for f in (getattr(encoder, "feature_info", None) or [])]
    strides = [tuple(f.strides) for f in info if len(tuple(f.strides)) == spatial_dims]
    return tuple(max(s[axis] for s in strides) for axis in range(spatial_dims)) if strides else (8,) * spatial_dims


# --------------------------------------------------------------------------------------------- ONNX
def _export_onnx(network: nn.Module, example: torch.Tensor, names: list[str], spatial_dims: int,
                 fixed_size: bool = False) -> tuple[Any, dict[int, str]]:
    """The ONNX ``ModelProto`` of ``network`` and its dynamic input axes ``{axis: name}`` (with
    ``fixed_size``: the batch axis alone may be)."""
    from medmtl.extras import require

    for module in ("onnx", "onnxscript"):
        require(module, "export", "exporting to ONNX")
    from torch.export import Dim

    axes = [0] if fixed_size else [0, *range(2, 2 + spatial_dims)]
    shapes = {"image": {axis: Dim.AUTO for axis in axes}}
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            program = torch.onnx.export(network, (example,), None, input_names=[INPUT_NAME], output_names=names,
                                        dynamic_shapes=shapes, dynamo=True, verbose=False, optimize=True)
    except Exception as error:  # torch.export's errors are of many types; the first lines say what failed
        raise ExportError(f"torch.onnx.export failed: {_first_lines(error)}") from error
    proto = program.model_proto
    wanted = {0: "batch", **dict(enumerate(_AXIS_NAMES[spatial_dims], start=2))}
    renames: dict[str, str] = {}
    for axis, dim in enumerate(proto.graph.input[0].type.tensor_type.shape.dim):
        if axis in wanted and dim.dim_param:
            renames[dim.dim_param] = wanted[axis]
    _rename_dims(proto, renames)
    dynamic = {axis: wanted[axis] for axis in axes if wanted[axis] in renames.values()}
    if 0 not in dynamic:
        raise ExportError("torch.export fixed the batch size of this model (a head depends on it), so it cannot be "
                          "exported with a dynamic batch")
    return proto, dynamic


def _rename_dims(proto: Any, renames: dict[str, str]) -> None:
    """Name torch.export's symbolic sizes (``s40``…) after the axes they stand for (``batch``…)."""
    graph = proto.graph
    for value in (*graph.input, *graph.output, *graph.value_info):
        for dim in value.type.tensor_type.shape.dim:
            if dim.dim_param in renames:
                dim.dim_param = renames[dim.dim_param]


def _onnx_runner(data: bytes) -> Callable[[torch.Tensor], list[torch.Tensor]]:
    from medmtl.extras import require

    ort = require("onnxruntime", "export", "checking an ONNX export")
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(data, sess_options=options, providers=["CPUExecutionProvider"])
    return lambda image: [torch.from_numpy(a) for a in session.run(None, {INPUT_NAME: image.numpy()})]


# -------------------------------------------------------------------------------------- TorchScript
def _trace(network: nn.Module, example: torch.Tensor) -> torch.jit.ScriptModule:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # deprecation, and "a tensor converted to a Python bool" (checked below)
            return torch.jit.trace(network, (example,), check_trace=False)
    except Exception as error:
        raise ExportError(f"torch.jit.trace failed: {_first_lines(error)}") from error


# ---------------------------------------------------------------------------------------- checking
def _check(network: nn.Module, run: Callable[[torch.Tensor], list[torch.Tensor]], example: torch.Tensor,
           dynamic: dict[int, str], others: Sequence[tuple[int, ...]], generator: torch.Generator
           ) -> tuple[list[tuple[int, ...]], float, bool]:
    """Compare the export with eager PyTorch at batch 1 and 3, then (when a spatial axis is dynamic) at
    the spatial sizes ``others`` (batch 1): the shapes checked, the largest difference at the checks that
    passed, and whether the spatial checks passed (True when no spatial axis is dynamic)."""
    channels, spatial = example.shape[1], tuple(example.shape[2:])
    checked: list[tuple[int, ...]] = []
    worst = 0.0
    for batch in (1, 3):
        shape = (batch, channels, *spatial)
        try:
            diff = _difference(network, run, torch.rand(shape, generator=generator))
        except Exception:  # the runtime refused the shape
            diff = None
        if diff is None or not math.isfinite(diff):
            raise ExportError(f"the exported model does not reproduce PyTorch at batch size {batch} (its batch axis "
                              "is not dynamic); please report it")
        worst = max(worst, diff)
        checked.append(shape)
    if not any(axis >= 2 for axis in dynamic):
        return checked, worst, True
    for size in others:
        other = (1, channels, *size)
        try:
            diff = _difference(network, run, torch.rand(other, generator=generator))
        except Exception:  # a traced module whose recorded sizes do not fit the new input
            diff = None
        if diff is None or not diff <= _SPATIAL_TOLERANCE:
            return checked, worst, False
        checked.append(other)
        worst = max(worst, diff)
    return checked, worst, True


def _difference(network: nn.Module, run: Callable[[torch.Tensor], list[torch.Tensor]],
                image: torch.Tensor) -> float | None:
    """Max |export − PyTorch| over all outputs, or None when a shape differs."""
    with torch.no_grad():
        expected = network(image)
        actual = run(image)
    worst = 0.0
    for want, got in zip(expected, actual, strict=True):
        if tuple(want.shape) != tuple(got.shape):
            return None
        if want.numel():
            worst = max(worst, float((want.float() - got.float()).abs().max()))
    return worst


def _suffix(format: str) -> str:
    return "onnx" if format == "onnx" else "pt"


def _first_lines(error: BaseException, count: int = 3) -> str:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return " ".join(lines[:count])[:500] or type(error).__name__
