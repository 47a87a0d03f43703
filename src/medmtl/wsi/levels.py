"""Choosing a pyramid level for a wanted resolution (µm/px) or downsample factor.

Pure functions over ``level_downsamples`` (level-0 pixels per level pixel, first entry 1.0), so
that they can be checked without a slide file.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from medmtl.errors import ConfigError


def check_mpp(mpp: float, key: str = "mpp") -> float:
    """``mpp`` as a positive finite float, else :class:`ConfigError` naming ``key``."""
    try:
        value = float(mpp)
    except (TypeError, ValueError):
        raise ConfigError(key, f"must be a number of µm per pixel, not {mpp!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise ConfigError(key, f"must be a positive number of µm per pixel, not {mpp!r}")
    return value


def best_level_for_downsample(level_downsamples: Sequence[float], downsample: float,
                              tolerance: float = 0.0) -> int:
    """The coarsest level whose downsample is at most ``downsample * (1 + tolerance)`` (0 if none)."""
    limit = downsample * (1.0 + tolerance)
    best = 0
    for index, level_downsample in enumerate(level_downsamples):
        if level_downsample <= limit and level_downsample >= level_downsamples[best]:
            best = index
    return best


def level_for_downsample(level_downsamples: Sequence[float], downsample: float,
                         tolerance: float = 0.1) -> tuple[int, float]:
    """``(level, extra)``: read ``level`` and shrink it by ``extra`` to reach ``downsample``.

    The level is the coarsest one not coarser than ``downsample`` beyond ``tolerance`` (relative);
    ``extra = downsample / level_downsample`` is snapped to exactly 1.0 when it lies within the
    tolerance, so a level that is "close enough" is read as is. ``extra`` is ``>= 1`` except for a
    wanted downsample below 1 (finer than level 0), which callers reject before.
    """
    level = best_level_for_downsample(level_downsamples, downsample, tolerance)
    extra = downsample / level_downsamples[level]
    if 1.0 / (1.0 + tolerance) <= extra <= 1.0 + tolerance:
        extra = 1.0
    return level, extra


def level_to_level0(coordinate: int, downsample: float) -> int:
    """The level-0 coordinate that OpenSlide maps back to level pixel ``coordinate``.

    OpenSlide turns a level-0 ``x`` into ``floor(x / downsample)`` at the level; rounding up here
    keeps that exact for non-integer downsamples such as 2.0005 (``ceil(c * d) / d`` lies in
    ``[c, c + 1)`` for ``d >= 1``).
    """
    return int(math.ceil(coordinate * downsample))
