"""Run a model exported by :mod:`medmtl.export` like a :class:`~medmtl.model.MultiTaskModel`.

:class:`OnnxRuntimeModel` (an ``.onnx`` file, run by onnxruntime on the CPU) and
:class:`TorchScriptModel` (a TorchScript file, run by ``torch.jit``) have what
:func:`medmtl.predict.predict_files` and :mod:`medmtl.sliding_window` use of a MultiTaskModel, so
``medmtl predict --backend onnxruntime`` goes through the same code as the PyTorch path:

- ``model(image)`` → ``{task: raw output}`` (float32 CPU tensors, the model's task order), for
  ``image`` ``[B, C, H, W]`` / ``[B, C, D, H, W]`` preprocessed as by ``predict``;
- ``model.predict(image)`` → each task's ``postprocess`` of those outputs;
- ``model.tasks`` → the run's tasks, rebuilt from the configuration stored in the file (without
  weights: they only post-process and write prediction files); ``model.config`` that configuration;
  ``model.eval()``.

Inference only: a ``batch`` argument is ignored (an exported network computes no losses).

What the file must hold besides the network (ONNX ``metadata_props``; TorchScript ``_extra_files``):
``medmtl.config`` (the run configuration, YAML), ``medmtl.version``, ``medmtl.outputs`` (JSON: each
task's raw output as the name of a network output, or a list / dict of them) and ``medmtl.input``
(JSON: the input's name and shape, a string for each dynamic axis); ``medmtl.checkpoint`` (which
checkpoint the weights are from) is informative. A file without one of the required keys was not
made by ``medmtl export``: a :class:`~medmtl.errors.DataError` names the file and the key.
"""

from __future__ import annotations

import io
import json
import warnings
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import yaml

from medmtl.config import RunConfig, config_from_dict
from medmtl.errors import DataError, MedMTLError

CONFIG_KEY = "medmtl.config"
VERSION_KEY = "medmtl.version"
OUTPUTS_KEY = "medmtl.outputs"
INPUT_KEY = "medmtl.input"
CHECKPOINT_KEY = "medmtl.checkpoint"
#: the metadata keys a file made by ``medmtl export`` always has
REQUIRED_KEYS = (CONFIG_KEY, VERSION_KEY, OUTPUTS_KEY, INPUT_KEY)
METADATA_KEYS = (*REQUIRED_KEYS, CHECKPOINT_KEY)

#: a task's raw output in the exported file: the name of one network output, or a list / dict of layouts
Layout = str | list[Any] | dict[str, Any]


@dataclass
class ExportMetadata:
    """What :mod:`medmtl.export` stores beside the network."""

    config: RunConfig
    version: str
    layouts: dict[str, Layout]
    input_name: str
    input_shape: list[int | str]
    checkpoint: dict[str, Any] | None = None

    @property
    def output_names(self) -> list[str]:
        """The network's outputs in their order (the tasks' in task order, depth first)."""
        return [name for layout in self.layouts.values() for name in layout_names(layout)]

    def as_strings(self) -> dict[str, str]:
        """The metadata as the file stores it."""
        strings = {CONFIG_KEY: yaml.safe_dump(self.config.model_dump(mode="json"), sort_keys=False),
                   VERSION_KEY: self.version, OUTPUTS_KEY: json.dumps({"tasks": self.layouts}),
                   INPUT_KEY: json.dumps({"name": self.input_name, "shape": self.input_shape})}
        if self.checkpoint is not None:
            strings[CHECKPOINT_KEY] = json.dumps(self.checkpoint)
        return strings


def layout_names(layout: Layout) -> list[str]:
    """The output names of one task's layout, depth first."""
    if isinstance(layout, str):
        return [layout]
    items = layout.values() if isinstance(layout, dict) else layout
    return [name for item in items for name in layout_names(item)]


def rebuild(layout: Layout, outputs: dict[str, torch.Tensor]) -> Any:
    """A task's raw output (tensor, tuple or dict, as the PyTorch model returns it) from the named outputs."""
    if isinstance(layout, str):
        return outputs[layout]
    if isinstance(layout, dict):
        return {key: rebuild(item, outputs) for key, item in layout.items()}
    return tuple(rebuild(item, outputs) for item in layout)


def parse_metadata(path: Path, strings: dict[str, str]) -> ExportMetadata:
    """:class:`ExportMetadata` from a file's metadata strings; a :class:`DataError` naming ``path`` and
    the first required key that is missing or unreadable."""
    missing = [key for key in REQUIRED_KEYS if not strings.get(key)]
    if missing:
        raise DataError(path, f"was not made by `medmtl export`: its metadata has no '{missing[0]}' (missing: "
                              f"{', '.join(missing)}); export the run with `medmtl export RUN --out {path.name}`")
    key = CONFIG_KEY
    try:
        raw = yaml.safe_load(strings[CONFIG_KEY])
        if not isinstance(raw, dict):
            raise ValueError("not a mapping of sections")
        config = config_from_dict(raw, source=f"{path} ({CONFIG_KEY})")
        key = OUTPUTS_KEY
        layouts = json.loads(strings[OUTPUTS_KEY])["tasks"]
        if not isinstance(layouts, dict) or not layouts:
            raise ValueError("no tasks")
        key = INPUT_KEY
        described = json.loads(strings[INPUT_KEY])
        input_name, input_shape = str(described["name"]), list(described["shape"])
        key = CHECKPOINT_KEY
        checkpoint = json.loads(strings[CHECKPOINT_KEY]) if strings.get(CHECKPOINT_KEY) else None
    except (MedMTLError, ValueError, KeyError, TypeError, yaml.YAMLError) as error:
        detail = " ".join(str(error).split())[:300]
        raise DataError(path, f"its metadata '{key}' cannot be read ({detail}); export the run again") from None
    return ExportMetadata(config, strings[VERSION_KEY], layouts, input_name, input_shape, checkpoint)


class ExportedModel:
    """The common part of :class:`OnnxRuntimeModel` and :class:`TorchScriptModel` (see the module docstring)."""

    def __init__(self, path: Path, metadata: ExportMetadata) -> None:
        from medmtl.builders import build_tasks

        self.path = Path(path)
        self.metadata = metadata
        self.config = metadata.config
        tasks = {task.name: task.eval() for task in build_tasks(metadata.config)}
        if set(tasks) != set(metadata.layouts):
            raise DataError(self.path, f"its metadata '{OUTPUTS_KEY}' names the tasks {sorted(metadata.layouts)}, "
                                       f"but its configuration has {sorted(tasks)}; export the run again")
        self.tasks = {name: tasks[name] for name in metadata.layouts}  # the model's order (consumers last)
        self.output_names = metadata.output_names
        self.image_channels = metadata.config.data.channels

    def eval(self) -> ExportedModel:
        return self

    def _run(self, image: torch.Tensor) -> list[torch.Tensor]:
        """The network's outputs for ``image``, in :attr:`output_names` order."""
        raise NotImplementedError

    def __call__(self, image: torch.Tensor, batch: dict[str, Any] | None = None,
                 tasks: Collection[str] | None = None) -> dict[str, Any]:
        """``{task: raw output}`` like :meth:`MultiTaskModel.forward` (``tasks``: only those)."""
        self._check_input(image)
        by_name = dict(zip(self.output_names, self._run(image)))
        wanted = self.tasks if tasks is None else [name for name in self.tasks if name in set(tasks)]
        return {name: rebuild(self.metadata.layouts[name], by_name) for name in wanted}

    forward = __call__

    @torch.no_grad()
    def predict(self, image: torch.Tensor) -> dict[str, Any]:
        """User-facing predictions per task, like :meth:`MultiTaskModel.predict`."""
        return {name: self.tasks[name].postprocess(out) for name, out in self(image).items()}

    def _check_input(self, image: torch.Tensor) -> None:
        expected = self.metadata.input_shape
        fits = image.dim() == len(expected) and all(
            isinstance(size, str) or int(size) == actual for size, actual in zip(expected, image.shape))
        if not fits:
            shown = "[" + ", ".join(str(size) for size in expected) + "]"
            raise DataError(self.path, f"takes images {shown} (names: dynamic axes), got {list(image.shape)}")


class OnnxRuntimeModel(ExportedModel):
    """An ``.onnx`` file made by ``medmtl export --format onnx``, run by onnxruntime (CPU).

    ``threads``: onnxruntime's intra-op threads (default: its own choice, the machine's cores).
    """

    def __init__(self, path: str | Path, threads: int | None = None) -> None:
        from medmtl.extras import require

        path = Path(path)
        ort = require("onnxruntime", "export", "running ONNX models (--backend onnxruntime)")
        if not path.is_file():
            raise DataError(path, "does not exist (an .onnx file made by `medmtl export` was expected)")
        options = ort.SessionOptions()
        options.log_severity_level = 3  # errors only: no warnings about shapes of unused intermediate values
        if threads:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        try:
            self.session = ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])
        except Exception as error:  # onnxruntime raises its own exception types for unreadable files
            detail = " ".join(str(error).split())[:300]
            raise DataError(path, f"cannot be read as an ONNX model ({detail})") from None
        super().__init__(path, parse_metadata(path, dict(self.session.get_modelmeta().custom_metadata_map)))
        inputs = [item.name for item in self.session.get_inputs()]
        outputs = {item.name for item in self.session.get_outputs()}
        absent = [name for name in self.output_names if name not in outputs]
        if inputs != [self.metadata.input_name] or absent:
            what = f"output '{absent[0]}'" if absent else f"input '{self.metadata.input_name}' (it has {inputs})"
            raise DataError(path, f"its network has no {what} that its metadata '{OUTPUTS_KEY}'/'{INPUT_KEY}' "
                                  "names; export the run again")

    def _run(self, image: torch.Tensor) -> list[torch.Tensor]:
        array = image.detach().to("cpu", torch.float32).contiguous().numpy()
        results = self.session.run(self.output_names, {self.metadata.input_name: array})
        return [torch.from_numpy(result) for result in results]


class TorchScriptModel(ExportedModel):
    """A TorchScript file made by ``medmtl export --format torchscript``, run by ``torch.jit`` on the CPU."""

    def __init__(self, path: str | Path) -> None:
        path = Path(path)
        if not path.is_file():
            raise DataError(path, "does not exist (a TorchScript file made by `medmtl export` was expected)")
        extra = dict.fromkeys(METADATA_KEYS, "")
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FutureWarning)  # torch.jit is deprecated in favour of torch.export
                self.module = torch.jit.load(io.BytesIO(path.read_bytes()), map_location="cpu", _extra_files=extra)
        except (RuntimeError, ValueError) as error:
            detail = " ".join(str(error).split())[:300]
            raise DataError(path, f"cannot be read as a TorchScript module ({detail})") from None
        self.module.eval()
        strings = {key: value.decode() if isinstance(value, bytes) else value for key, value in extra.items()}
        super().__init__(path, parse_metadata(path, strings))

    @torch.no_grad()
    def _run(self, image: torch.Tensor) -> list[torch.Tensor]:
        return [out.float() for out in self.module(image.detach().to("cpu", torch.float32))]


def load_exported(path: str | Path, threads: int | None = None) -> ExportedModel:
    """An exported model: ``.onnx`` through onnxruntime, any other file as TorchScript."""
    path = Path(path)
    return OnnxRuntimeModel(path, threads) if path.suffix.lower() == ".onnx" else TorchScriptModel(path)
