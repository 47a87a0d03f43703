"""The run configuration: YAML validated by pydantic, with errors that name the bad key.

Top-level sections: ``seed``, ``data`` (:class:`medmtl.data.config.DataConfig`), ``model``
(encoder + tasks), ``loss`` (balancer), ``optim`` and ``trainer``. Unknown keys are errors.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, SerializeAsAny, ValidationError, field_validator

from medmtl.config_migration import migrate_old_keys
from medmtl.data.config import DataConfig
from medmtl.errors import ConfigError
from medmtl.tasks.base import TaskOptions
from medmtl.tasks.registry import TASKS, task_class

PRESETS_DIR = Path(__file__).parent / "presets"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class EncoderConfig(_Strict):
    name: str = "resnet18"
    weights: str | None = Field(None, description="local state-dict file; training starts from scratch without it")
    options: dict[str, Any] = Field(default_factory=dict, description="the encoder's options, e.g. small_cnn's "
                                                                      "width, stages and norm")

    def model_post_init(self, context: Any) -> None:
        # the options model lives beside each encoder; a bad key or value is a ConfigError naming
        # model.encoder.options.<key> (or an unknown name: model.encoder.name) before any work
        from medmtl.encoders.registry import validate_encoder_options  # imports torch: only when validating

        validate_encoder_options(self.name, self.options)


class ModelConfig(_Strict):
    spatial_dims: Literal[2, 3] | None = Field(None, description="2 (images) or 3 (volumes); default: what the "
                                                                 "data section implies (a volume section or a "
                                                                 "[D, H, W] image_size), else 2")
    encoder: EncoderConfig = Field(default_factory=EncoderConfig)
    #: each entry validated by the options model of its ``kind`` (:mod:`medmtl.tasks.registry`)
    tasks: list[SerializeAsAny[TaskOptions]] = Field(min_length=1)

    @field_validator("tasks", mode="before")
    @classmethod
    def _options_of_each_kind(cls, tasks: Any) -> Any:
        if not isinstance(tasks, list):
            return tasks
        return [task_options(entry, f"model.tasks.{index}") for index, entry in enumerate(tasks)]


def task_options(entry: Any, key: str, source: str = "<dict>") -> TaskOptions:
    """``entry`` (a mapping with a ``kind``) validated by that kind's options model; a
    :class:`ConfigError` names ``<key>.<option>`` and, for an unknown option, the allowed ones."""
    if isinstance(entry, TaskOptions):
        return entry
    if not isinstance(entry, dict) or "kind" not in entry:
        raise ConfigError(f"{key}.kind", f"every task needs a kind; choose one of {sorted(TASKS)} (in {source})")
    options_model = task_class(entry["kind"], f"{key}.kind").Options
    try:
        return options_model.model_validate(entry)
    except ValidationError as exc:
        raise _format_validation_error(exc, source, key, options_model) from None


class LossConfig(_Strict):
    balancer: str = Field("fixed", description="a name of medmtl.balancing.BALANCERS (fixed, uncertainty, equal, "
                                                "dwa, rlw and the gradient-level ones)")
    weights: dict[str, Annotated[float, Field(ge=0, allow_inf_nan=False)]] = Field(
        default_factory=dict, description="fixed weight (≥ 0; 0 switches the task's loss off) per task name; default 1")
    options: dict[str, Any] = Field(default_factory=dict, description="the balancer's options, e.g. dwa's "
                                                                       "temperature, a gradient balancer's level")

    def model_post_init(self, context: Any) -> None:
        # each balancer's options model lives beside it; an unknown name is a ConfigError naming
        # loss.balancer, a bad option one naming loss.options.<key>
        from medmtl.balancing import validate_balancer_options  # imports torch: only when validating

        validate_balancer_options(self.balancer, self.options)


class OptimConfig(_Strict):
    optimizer: Literal["adamw", "adam", "sgd"] = "adamw"
    lr: float = Field(1e-3, gt=0, allow_inf_nan=False, description="learning rate, > 0")
    weight_decay: float = Field(1e-4, ge=0, allow_inf_nan=False, description="weight decay, ≥ 0")
    scheduler: Literal["none", "cosine"] = "cosine"


class StageConfig(_Strict):
    epochs: int = Field(ge=1)
    train: list[str] = Field(min_length=1, description="parameter prefixes that train, e.g. tasks.detection.head.rpn")


class TrainerConfig(_Strict):
    max_epochs: int = Field(30, ge=1, description="epochs to train, ≥ 1")
    patience: int = Field(0, ge=0, description="early-stopping patience in epochs; 0 turns it off")
    min_delta: float = Field(0.0, ge=0, description="smallest change of the monitored metric that counts as improvement")
    monitor: str | None = Field(None, description="e.g. 'val/classification/auc'; default: first task's main metric")
    monitor_mode: Literal["min", "max"] | None = None
    accelerator: str = Field("auto", description="cpu, gpu, auto (a GPU when there is one) …; the device used is printed")
    devices: int = Field(1, ge=1, description="devices (CPU processes or GPUs), ≥ 1")
    strategy: Literal["auto", "ddp"] = "auto"
    precision: str = "32-true"
    deterministic: bool = True
    limit_train_batches: float = Field(1.0, gt=0, le=1, description="fraction of the training batches per epoch, in (0, 1]")
    limit_val_batches: float = Field(1.0, gt=0, le=1, description="fraction of the validation batches per epoch, in (0, 1]")
    log_every_n_steps: int = Field(10, ge=1, description="training steps between logged values, ≥ 1")
    n_bootstrap: int = Field(1000, ge=0, description="bootstrap resamples for the final metrics' 95% CIs (0: no CIs)")
    num_threads: int | None = Field(None, ge=1, description="torch CPU threads, ≥ 1; default: torch's choice")
    progress_bar: bool = True
    channels_last: bool | None = Field(None, description="channels-last memory layout (faster 3D convolutions on "
                                                         "CPU); default: on for 3D models, off for 2D")
    stages: list[StageConfig] = Field(default_factory=list,
                                      description="train only some parts first (FT-MTL-Net: RPN, then heads, then all)")
    ema_decay: float | None = Field(None, gt=0, lt=1, allow_inf_nan=False,
                                    description="exponential moving average of the weights, updated every step "
                                                "(ema = decay·ema + (1 − decay)·weights), in (0, 1), e.g. 0.999; "
                                                "validation, checkpoints' weights and the final evaluation use it; "
                                                "None: off")
    ema_batchnorm: Literal["recompute", "average"] = Field(
        "recompute", description="BatchNorm statistics of the EMA weights: recompute (one pass over the training "
                                 "data before each validation and at each epoch's end) or average (like the "
                                 "weights, no extra pass)")
    swa_start: float | None = Field(None, ge=0, lt=1, allow_inf_nan=False,
                                    description="stochastic weight averaging: the equal average of every step's "
                                                "weights from this fraction of trainer.max_epochs on, in [0, 1), "
                                                "BatchNorm statistics recomputed for it; used like the EMA; "
                                                "None: off")
    select: Literal["best", "last", "ema"] = Field(
        "best", description="the weights evaluated into metrics.json: best (best.ckpt by trainer.monitor), last "
                            "(last.ckpt) or ema (the EMA weights at the end; needs trainer.ema_decay); "
                            "recorded in selection.json")

    def model_post_init(self, context: Any) -> None:
        if self.select == "ema" and self.ema_decay is None:
            raise ConfigError("trainer.select", "is 'ema', but trainer.ema_decay is not set (choose e.g. "
                                                "trainer.ema_decay=0.999, or trainer.select best or last)")
        if self.ema_decay is not None and self.swa_start is not None:
            raise ConfigError("trainer.swa_start", "and trainer.ema_decay are both set; choose one way of "
                                                   "averaging the weights")


class RunConfig(_Strict):
    seed: int = 0
    data: DataConfig
    model: ModelConfig
    loss: LossConfig = Field(default_factory=LossConfig)
    optim: OptimConfig = Field(default_factory=OptimConfig)
    trainer: TrainerConfig = Field(default_factory=TrainerConfig)

    def model_post_init(self, context: Any) -> None:
        # loss.weights names existing tasks, and only balancers that apply weights get values ≠ 1
        from medmtl.balancing import check_weights  # imports torch: only when validating

        check_weights(self.loss.balancer, [self.task_name(i) for i in range(len(self.model.tasks))],
                      self.loss.weights)
        self._resolve_spatial_dims()

    def _resolve_spatial_dims(self) -> None:
        """Fill in ``model.spatial_dims`` from the data section and check every part supports it."""
        from medmtl.encoders.registry import check_encoder_dims

        implied = self.data.implied_spatial_dims()
        dims = self.model.spatial_dims or implied or 2
        if implied is not None and implied != dims:
            raise ConfigError("model.spatial_dims", f"is {dims}, but the data section describes {implied}D data "
                                                    f"(data.image_size {self.data.image_size!r}"
                                                    f"{', data.volume' if self.data.volume else ''})")
        self.model.spatial_dims = dims
        self.data._spatial_dims = dims
        check_encoder_dims(self.model.encoder.name, dims)
        for index, task in enumerate(self.model.tasks):
            supported = task_class(task.kind).spatial_dims
            if dims not in supported:
                raise ConfigError(f"model.tasks.{index}.kind", f"'{task.kind}' works on "
                                                               f"{'/'.join(map(str, supported))}D images only, and "
                                                               f"this model is {dims}D (model.spatial_dims)")

    def task_name(self, index: int) -> str:
        task = self.model.tasks[index]
        return task.name or task.kind


def _format_validation_error(error: ValidationError, source: str, prefix: str = "",
                             model: type[BaseModel] = RunConfig) -> ConfigError:
    first = error.errors()[0]
    parts = ([prefix] if prefix else []) + [str(part) for part in first["loc"]]
    location = ".".join(parts)
    if first["type"] == "extra_forbidden":
        problem = f"unknown key (in {source}); {_allowed_keys_hint(first['loc'], model)}"
    else:
        problem = f"{first['msg']} (in {source}, got {first.get('input')!r})"
    return ConfigError(location or "<root>", problem)


def _allowed_keys_hint(loc: tuple[Any, ...], model: type[BaseModel] | None) -> str:
    """The keys allowed beside the unknown one at ``loc`` (relative to ``model``)."""
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        field = model.model_fields.get(part) if model is not None else None
        model = _model_of(field.annotation) if field is not None else None
        if model is None:
            return "see the documentation for allowed keys"
    return f"allowed keys are {sorted(model.model_fields)}"


def _model_of(annotation: Any) -> Any:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        found = _model_of(arg)
        if found is not None:
            return found
    return None


def resolve_config_path(name_or_path: str | Path) -> Path:
    """A YAML path, or the name of a preset shipped in ``medmtl/presets``."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    preset = PRESETS_DIR / f"{name_or_path}.yaml"
    if preset.is_file():
        return preset
    presets = sorted(p.stem for p in PRESETS_DIR.glob("*.yaml"))
    raise ConfigError("CONFIG", f"'{name_or_path}' is neither a YAML file nor a preset; presets: {presets}")


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``a.b.c=value`` overrides (value parsed as YAML; list items by index: ``model.tasks.0.loss=dice``)."""
    for item in overrides:
        if "=" not in item:
            raise ConfigError(item, "an override must look like key.path=value")
        key, text = item.split("=", 1)
        parts = key.split(".")
        node: Any = raw
        for depth, part in enumerate(parts[:-1]):
            if isinstance(node, list):
                if not part.isdigit() or int(part) >= len(node):
                    raise ConfigError(key, f"'{part}' is not an index of the list at {'.'.join(parts[:depth])}")
                node = node[int(part)]
            else:
                node = node.setdefault(part, {})
        last = parts[-1]
        value = yaml.safe_load(text)
        if isinstance(node, list):
            if not last.isdigit() or int(last) >= len(node):
                raise ConfigError(key, f"'{last}' is not an index of the list")
            node[int(last)] = value
        else:
            node[last] = value
    return raw


def load_config(name_or_path: str | Path, overrides: list[str] | None = None) -> RunConfig:
    """Read, override and validate a configuration."""
    path = resolve_config_path(name_or_path)
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(str(path), f"is not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise ConfigError(str(path), "must hold a mapping of sections (data, model, …)")
    return config_from_dict(apply_overrides(raw, list(overrides or [])), source=str(path))


def config_from_dict(raw: dict[str, Any], source: str = "<dict>") -> RunConfig:
    raw = migrate_old_keys(raw, source)
    tasks = raw.get("model", {}).get("tasks") if isinstance(raw.get("model"), dict) else None
    if isinstance(tasks, list):  # validated here first, so errors name model.tasks.<i>.<key> and the source
        raw = {**raw, "model": {**raw["model"], "tasks": [task_options(entry, f"model.tasks.{index}", source)
                                                          for index, entry in enumerate(tasks)]}}
    try:
        return RunConfig.model_validate(raw)
    except ValidationError as exc:
        raise _format_validation_error(exc, source) from None


def save_config(config: RunConfig, path: Path) -> None:
    from medmtl.io_utils import atomic_write_text

    atomic_write_text(path, yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False))
