"""Turn a validated :class:`RunConfig` into model objects."""

from __future__ import annotations

from medmtl.balancing import LossBalancer, create_balancer
from medmtl.config import RunConfig
from medmtl.encoders import create_encoder
from medmtl.errors import ConfigError
from medmtl.model import MultiTaskModel
from medmtl.tasks import Task, task_class


def build_tasks(config: RunConfig) -> list[Task]:
    """The configured tasks (their heads are built when the model is)."""
    return [task_class(options.kind)(name=config.task_name(index), options=options)
            for index, options in enumerate(config.model.tasks)]


def build_model(config: RunConfig) -> MultiTaskModel:
    encoder_cfg = config.model.encoder
    encoder = create_encoder(encoder_cfg.name, in_channels=config.data.channels, weights=encoder_cfg.weights,
                             spatial_dims=config.model.spatial_dims or 2, **encoder_cfg.options)
    model = MultiTaskModel(encoder, build_tasks(config), image_channels=config.data.channels)
    channels_last = config.trainer.channels_last
    if channels_last if channels_last is not None else config.model.spatial_dims == 3:
        model.use_channels_last()
    return model


def build_balancer(config: RunConfig, model: MultiTaskModel) -> LossBalancer:
    """The configured balancer; a :class:`ConfigError` when a gradient method at the parameter level
    (``loss.options.level: shared``) meets an encoder without trainable parameters: there would be no
    shared gradient to balance, and the method would silently apply its initial weights."""
    balancer = create_balancer(config.loss.balancer, list(model.tasks), config.loss.weights, config.loss.options)
    if balancer.gradients == "shared" and not any(p.requires_grad for p in model.encoder.parameters()):
        raise ConfigError("loss.options.level", f"balancer '{config.loss.balancer}' at level 'shared' needs the "
                                                f"encoder's trainable parameters, and encoder "
                                                f"'{config.model.encoder.name}' has none; use level: representation "
                                                "(the gradients of its feature maps)")
    return balancer
