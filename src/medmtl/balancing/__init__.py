"""Loss balancers: one small class per method, each citing its paper."""

from __future__ import annotations

from medmtl.balancing.base import LossBalancer
from medmtl.balancing.fixed import FixedWeights
from medmtl.balancing.uncertainty import UncertaintyWeights
from medmtl.errors import ConfigError

BALANCERS = {"fixed": FixedWeights, "uncertainty": UncertaintyWeights}


def create_balancer(name: str, task_names: list[str], weights: dict[str, float] | None = None) -> LossBalancer:
    """Build a balancer by name (``fixed`` takes ``weights``)."""
    if name == "fixed":
        return FixedWeights(task_names, weights)
    if name == "uncertainty":
        return UncertaintyWeights(task_names)
    raise ConfigError("loss.balancer", f"unknown balancer '{name}'; choose one of {sorted(BALANCERS)}")


__all__ = ["BALANCERS", "FixedWeights", "LossBalancer", "UncertaintyWeights", "create_balancer"]
