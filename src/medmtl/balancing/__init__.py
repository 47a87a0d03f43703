"""Loss balancers: one small class per method, each citing its paper, with its options model.

``BALANCERS`` maps a name (``loss.balancer``) to ``(class, options model)``; ``loss.options`` is
validated by the options model at config load, ``create_balancer`` builds one.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

from medmtl.balancing.base import (
    BalancerOptions,
    GradientBalancer,
    GradientBalancerOptions,
    LossBalancer,
    weighted_sum,
)
from medmtl.balancing.dwa import DWAOptions, DynamicWeightAverage
from medmtl.balancing.equal import EqualOptions, EqualWeights
from medmtl.balancing.famo import FAMO, FAMOOptions
from medmtl.balancing.fixed import FixedOptions, FixedWeights
from medmtl.balancing.gradient import GRADIENT_BALANCERS as GRADIENT_METHODS
from medmtl.balancing.rlw import RandomLossWeights, RLWOptions
from medmtl.balancing.uncertainty import UncertaintyOptions, UncertaintyWeights
from medmtl.errors import ConfigError
from medmtl.options import validate_options

OPTIONS_KEY = "loss.options"


class BalancerSpec(NamedTuple):
    """One registered balancer: its class and the options model of ``loss.options``."""

    cls: type[LossBalancer]
    options: type[BalancerOptions]


LOSS_BALANCERS: dict[str, BalancerSpec] = {
    "fixed": BalancerSpec(FixedWeights, FixedOptions),
    "uncertainty": BalancerSpec(UncertaintyWeights, UncertaintyOptions),
    "equal": BalancerSpec(EqualWeights, EqualOptions),
    "dwa": BalancerSpec(DynamicWeightAverage, DWAOptions),
    "rlw": BalancerSpec(RandomLossWeights, RLWOptions),
    "famo": BalancerSpec(FAMO, FAMOOptions),
}

#: gradient-level balancers (:mod:`medmtl.balancing.gradient`), each with its own options model
GRADIENT_BALANCERS: dict[str, BalancerSpec] = {
    name: BalancerSpec(cls, cls.Options) for name, cls in GRADIENT_METHODS.items()
}

BALANCERS: dict[str, BalancerSpec] = {**LOSS_BALANCERS, **GRADIENT_BALANCERS}


def register_balancer(name: str, cls: type[LossBalancer], options: type[BalancerOptions] | None = None) -> None:
    """Add a balancer (from outside medmtl, or a test double) under ``name``."""
    BALANCERS[name] = BalancerSpec(cls, options or cls.Options)


def balancer_spec(name: str) -> BalancerSpec:
    """The registry entry of ``name``; a :class:`ConfigError` naming the choices when there is none."""
    spec = BALANCERS.get(name)
    if spec is None:
        raise ConfigError("loss.balancer", f"unknown balancer '{name}'; choose one of {sorted(BALANCERS)}")
    return spec


def validate_balancer_options(name: str, options: Mapping[str, Any] | None = None) -> BalancerOptions:
    """``options`` checked against balancer ``name``'s options model (defaults filled in); a
    :class:`ConfigError` with key ``loss.options.<key>`` names the allowed keys."""
    return validate_options(balancer_spec(name).options, options, OPTIONS_KEY, f"balancer '{name}'")


def check_weights(name: str, task_names: list[str], weights: Mapping[str, float] | None) -> None:
    """``loss.weights`` names only existing tasks (every balancer), and sets weights other than 1
    only for balancers that apply them (``fixed``)."""
    weights = dict(weights or {})
    unknown = sorted(set(weights) - set(task_names))
    if unknown:
        raise ConfigError("loss.weights", f"names unknown task(s) {unknown}; tasks are {task_names}")
    if not balancer_spec(name).cls.uses_weights and any(value != 1 for value in weights.values()):
        users = sorted(n for n, spec in BALANCERS.items() if spec.cls.uses_weights)
        raise ConfigError("loss.weights", f"balancer '{name}' sets its own weights; loss.weights apply only "
                                          f"to {users}")


def create_balancer(name: str, task_names: list[str], weights: Mapping[str, float] | None = None,
                    options: Mapping[str, Any] | BalancerOptions | None = None) -> LossBalancer:
    """Build balancer ``name`` for ``task_names`` (``weights``: ``fixed`` only; ``options``:
    ``loss.options``, validated by the balancer's options model)."""
    spec = balancer_spec(name)
    check_weights(name, task_names, weights)
    if not isinstance(options, BalancerOptions):
        options = validate_balancer_options(name, options)
    if spec.cls.uses_weights:
        return spec.cls(task_names, dict(weights or {}), options=options)
    return spec.cls(task_names, options=options)


__all__ = [
    "BALANCERS",
    "FAMO",
    "GRADIENT_BALANCERS",
    "LOSS_BALANCERS",
    "BalancerOptions",
    "BalancerSpec",
    "DWAOptions",
    "DynamicWeightAverage",
    "EqualWeights",
    "FAMOOptions",
    "FixedWeights",
    "GradientBalancer",
    "GradientBalancerOptions",
    "LossBalancer",
    "RandomLossWeights",
    "UncertaintyWeights",
    "balancer_spec",
    "check_weights",
    "create_balancer",
    "register_balancer",
    "validate_balancer_options",
    "weighted_sum",
]
