"""Turn a validated :class:`RunConfig` into model objects."""

from __future__ import annotations

from medmtl.balancing import LossBalancer, create_balancer
from medmtl.config import RunConfig
from medmtl.encoders import create_encoder
from medmtl.model import MultiTaskModel
from medmtl.tasks import TASKS, Task

_NOT_CONSTRUCTOR_ARGS = {"kind", "name", "target", "consumes"}


def build_tasks(config: RunConfig) -> list[Task]:
    tasks = []
    for index, task_cfg in enumerate(config.model.tasks):
        options = {k: v for k, v in task_cfg.model_dump().items() if k not in _NOT_CONSTRUCTOR_ARGS}
        if task_cfg.target is not None:
            options["target_key"] = task_cfg.target
        tasks.append(TASKS[task_cfg.kind](name=config.task_name(index), consumes=tuple(task_cfg.consumes), **options))
    return tasks


def build_model(config: RunConfig) -> MultiTaskModel:
    encoder_cfg = config.model.encoder
    encoder = create_encoder(encoder_cfg.name, in_channels=config.data.channels, weights=encoder_cfg.weights,
                             **encoder_cfg.options)
    return MultiTaskModel(encoder, build_tasks(config), image_channels=config.data.channels)


def build_balancer(config: RunConfig, model: MultiTaskModel) -> LossBalancer:
    return create_balancer(config.loss.balancer, list(model.tasks), config.loss.weights)
