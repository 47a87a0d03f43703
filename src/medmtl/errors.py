"""Errors medmtl raises for bad input.

Every error names the offending file or configuration key and says what was expected, so
that a user never has to read a stack trace from deep inside torch.
"""

from __future__ import annotations

from pathlib import Path


class MedMTLError(Exception):
    """Base class of all errors that medmtl raises for bad input."""


class DataError(MedMTLError):
    """A data file or sample is missing, unreadable or inconsistent."""

    def __init__(self, path: str | Path | None, problem: str) -> None:
        self.path = None if path is None else str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}" if self.path else problem)

    def __reduce__(self) -> tuple:  # pickled intact: errors of Dask workers reach the caller
        return type(self), (self.path, self.problem)


class ConfigError(MedMTLError):
    """A configuration key is unknown, has the wrong type or an unsupported value."""

    def __init__(self, key: str, problem: str) -> None:
        self.key = key
        self.problem = problem
        super().__init__(f"config key '{key}': {problem}")

    def __reduce__(self) -> tuple:
        return type(self), (self.key, self.problem)


class TrainingError(MedMTLError):
    """Training cannot go on (for example the loss became NaN or infinite)."""


class MissingExtraError(MedMTLError):
    """A feature needs an optional extra (``pip install 'medmtl[wsi]'``) that is not installed."""

    def __init__(self, module: str, extra: str, feature: str) -> None:
        self.module = module
        self.extra = extra
        self.feature = feature
        super().__init__(f"{feature} needs the optional extra '{extra}': pip install 'medmtl[{extra}]' "
                         f"(module '{module}' is not installed)")

    def __reduce__(self) -> tuple:
        return type(self), (self.module, self.extra, self.feature)


class ExportError(MedMTLError):
    """A model cannot be exported (``medmtl export``): a head the exporter cannot trace, or an exporter failure."""
