"""Validating an ``options`` mapping against a component's pydantic options model (encoders, balancers)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from medmtl.errors import ConfigError

M = TypeVar("M", bound=BaseModel)


def validate_options(model: type[M], options: Mapping[str, Any] | None, key: str, owner: str) -> M:
    """``options`` as ``model`` (defaults filled in); a :class:`ConfigError` naming ``<key>.<option>``,
    the problem and the allowed keys (``owner``, e.g. "encoder 'small_cnn'", says whose options they are)."""
    allowed = sorted(model.model_fields)
    try:
        return model.model_validate(dict(options or {}))
    except ValidationError as exc:
        first = exc.errors()[0]
        location = ".".join([key, *(str(part) for part in first["loc"])])
        if first["type"] == "extra_forbidden":
            problem = f"unknown option of {owner}"
        else:
            problem = f"{first['msg']} (got {first.get('input')!r})"
        raise ConfigError(location, f"{problem}; allowed keys are {allowed or 'none'}") from None
