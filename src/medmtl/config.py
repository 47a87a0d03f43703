"""The run configuration: YAML validated by pydantic, with errors that name the bad key.

Top-level sections: ``seed``, ``data`` (:class:`medmtl.data.config.DataConfig`), ``model``
(encoder + tasks), ``loss`` (balancer), ``optim`` and ``trainer``. Unknown keys are errors.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from medmtl.data.config import DataConfig
from medmtl.errors import ConfigError

PRESETS_DIR = Path(__file__).parent / "presets"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class EncoderConfig(_Strict):
    name: str = "resnet18"
    weights: str | None = Field(None, description="local state-dict file; training starts from scratch without it")
    options: dict[str, Any] = Field(default_factory=dict, description="extra constructor arguments, e.g. width")


class _TaskBase(_Strict):
    name: str | None = None
    target: str | None = None
    consumes: list[str] = Field(default_factory=list)


class _PooledTask(_TaskBase):
    levels: Literal["last", "all"] = "last"
    hidden: int = 0
    dropout: float = 0.0


class ClassificationConfig(_PooledTask):
    kind: Literal["classification"]
    num_classes: int = 2
    loss: Literal["ce", "bce"] = "ce"
    class_weights: list[float] | None = None
    label_smoothing: float = 0.0


class RegressionConfig(_PooledTask):
    kind: Literal["regression"]
    num_outputs: int = 1
    loss: Literal["mse", "l1", "huber"] = "mse"


class SurvivalConfig(_PooledTask):
    kind: Literal["survival"]
    ties: Literal["breslow", "efron"] = "efron"
    memory: int = Field(0, ge=0, description="remember the last N training samples' risks for the Cox risk sets "
                                             "(for batches of one slide)")


class SegmentationConfig(_TaskBase):
    kind: Literal["segmentation"]
    num_classes: int = 2
    loss: Literal["dice_ce", "dice", "generalized_dice", "ce"] = "dice_ce"
    use_skips: bool = True


class ReconstructionConfig(_TaskBase):
    kind: Literal["reconstruction"]
    loss: Literal["mse", "l1"] = "mse"
    use_skips: bool = False


class DetectionConfig(_TaskBase):
    """Mask R-CNN-style detection; defaults sized for 128–256 px images on a CPU."""

    kind: Literal["detection"]
    num_classes: int = Field(1, ge=1, description="lesion classes, without background")
    label_source: Literal["boxes", "image_label"] = Field(
        "boxes", description="box classes from the boxes' own labels, or every box gets the image label + 1")
    label_key: str = "label"
    mask_head: bool = True
    feature_transfer: bool = Field(False, description="FT-MTL-Net: mask-weighted mask features feed the classifier")
    fpn_channels: int = Field(64, ge=8)
    min_reduction: int = Field(4, ge=1, description="smallest encoder stride the feature pyramid uses")
    anchor_scale: float = Field(4.0, gt=0, description="anchor size = anchor_scale × stride of each pyramid level")
    aspect_ratios: list[float] = Field(default_factory=lambda: [0.5, 1.0, 2.0])
    rpn_pre_nms_top_n: int = Field(300, ge=1)
    rpn_post_nms_top_n: int = Field(100, ge=1)
    rpn_batch_size: int = Field(128, ge=2)
    roi_batch_size: int = Field(64, ge=2)
    representation: int = Field(256, ge=8)
    mask_channels: int = Field(32, ge=8)
    score_thresh: float = Field(0.05, ge=0, lt=1)
    nms_thresh: float = Field(0.5, gt=0, le=1)
    detections_per_img: int = Field(20, ge=1)
    loss_weights: dict[str, float] = Field(default_factory=dict, description="λ per part: classification, box, mask")
    froc_iou: float = Field(0.2, ge=0, lt=1, description="IoU above which a detection hits a lesion (FROC)")
    fpi_levels: list[float] = Field(default_factory=lambda: [0.5, 1.0, 2.0, 4.0])
    veto_class: int | None = Field(None, description="class whose detections make an image positive; default the last")
    mask_score_thresh: float = Field(0.5, ge=0, le=1)
    detect_in_training: bool = False


TaskConfig = Annotated[
    ClassificationConfig | RegressionConfig | SurvivalConfig | SegmentationConfig | ReconstructionConfig
    | DetectionConfig,
    Field(discriminator="kind"),
]


class ModelConfig(_Strict):
    encoder: EncoderConfig = Field(default_factory=EncoderConfig)
    tasks: list[TaskConfig]


class LossConfig(_Strict):
    balancer: Literal["fixed", "uncertainty"] = "fixed"
    weights: dict[str, float] = Field(default_factory=dict, description="fixed weight per task name; default 1")


class OptimConfig(_Strict):
    optimizer: Literal["adamw", "adam", "sgd"] = "adamw"
    lr: float = 1e-3
    weight_decay: float = 1e-4
    scheduler: Literal["none", "cosine"] = "cosine"


class StageConfig(_Strict):
    epochs: int = Field(ge=1)
    train: list[str] = Field(min_length=1, description="parameter prefixes that train, e.g. tasks.detection.head.rpn")


class TrainerConfig(_Strict):
    max_epochs: int = 30
    patience: int = Field(0, description="early-stopping patience in epochs; 0 turns it off")
    min_delta: float = Field(0.0, ge=0, description="smallest change of the monitored metric that counts as improvement")
    monitor: str | None = Field(None, description="e.g. 'val/classification/auc'; default: first task's main metric")
    monitor_mode: Literal["min", "max"] | None = None
    accelerator: str = "cpu"
    devices: int = 1
    strategy: Literal["auto", "ddp"] = "auto"
    precision: str = "32-true"
    deterministic: bool = True
    limit_train_batches: float = 1.0
    limit_val_batches: float = 1.0
    log_every_n_steps: int = 10
    n_bootstrap: int = Field(1000, description="bootstrap resamples for the final metrics' 95% CIs")
    num_threads: int | None = Field(None, description="torch CPU threads; default: torch's choice")
    progress_bar: bool = True
    stages: list[StageConfig] = Field(default_factory=list,
                                      description="train only some parts first (FT-MTL-Net: RPN, then heads, then all)")


class RunConfig(_Strict):
    seed: int = 0
    data: DataConfig
    model: ModelConfig
    loss: LossConfig = Field(default_factory=LossConfig)
    optim: OptimConfig = Field(default_factory=OptimConfig)
    trainer: TrainerConfig = Field(default_factory=TrainerConfig)

    def task_name(self, index: int) -> str:
        task = self.model.tasks[index]
        return task.name or task.kind


_TASK_CONFIGS: dict[str, type[BaseModel]] = {
    cls.model_fields["kind"].annotation.__args__[0]: cls
    for cls in (ClassificationConfig, RegressionConfig, SurvivalConfig, SegmentationConfig, ReconstructionConfig,
                DetectionConfig)
}


def _format_validation_error(error: ValidationError, source: str) -> ConfigError:
    first = error.errors()[0]
    # pydantic puts the task kind (the union's tag) into the location; users never write it
    location = ".".join(str(part) for part in first["loc"] if part not in _TASK_CONFIGS)
    if first["type"] == "extra_forbidden":
        problem = f"unknown key (in {source}); {_allowed_keys_hint(first['loc'])}"
    else:
        problem = f"{first['msg']} (in {source}, got {first.get('input')!r})"
    return ConfigError(location or "<root>", problem)


def _allowed_keys_hint(loc: tuple[Any, ...]) -> str:
    """The keys allowed beside the unknown one at ``loc``."""
    model: type[BaseModel] | None = RunConfig
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        if part in _TASK_CONFIGS:
            model = _TASK_CONFIGS[part]
            continue
        field = model.model_fields.get(part)
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
    try:
        return RunConfig.model_validate(raw)
    except ValidationError as exc:
        raise _format_validation_error(exc, source) from None


def save_config(config: RunConfig, path: Path) -> None:
    from medmtl.io_utils import atomic_write_text

    atomic_write_text(path, yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False))
