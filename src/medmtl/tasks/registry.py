"""Task kinds by name, so configurations can say ``kind: segmentation``.

A new kind registers itself here (``TASKS`` below, or :func:`register_task` for a kind defined
outside medmtl); the configuration, model, trainer, report, ``predict`` and ``compare`` find it
through this registry and the :class:`~medmtl.tasks.base.Task` contract alone.
"""

from __future__ import annotations

from medmtl.errors import ConfigError
from medmtl.tasks.base import Task
from medmtl.tasks.classification import ClassificationTask
from medmtl.tasks.detection import DetectionTask
from medmtl.tasks.reconstruction import ReconstructionTask
from medmtl.tasks.regression import RegressionTask
from medmtl.tasks.segmentation import SegmentationTask
from medmtl.tasks.survival import SurvivalTask

TASKS: dict[str, type[Task]] = {
    cls.kind: cls
    for cls in (ClassificationTask, RegressionTask, SurvivalTask, SegmentationTask, ReconstructionTask,
                DetectionTask)
}


def register_task(cls: type[Task]) -> type[Task]:
    """Make ``cls`` available as ``kind: <cls.kind>`` (usable as a class decorator)."""
    options_kind = cls.Options.model_fields["kind"].default
    if options_kind != cls.kind:
        raise TypeError(f"{cls.__name__}.Options has kind default {options_kind!r}, but the task's kind is {cls.kind!r}")
    existing = TASKS.get(cls.kind)
    if existing is not None and existing is not cls:
        raise ValueError(f"task kind {cls.kind!r} is already registered by {existing.__name__}")
    TASKS[cls.kind] = cls
    return cls


def task_class(kind: str, key: str = "kind") -> type[Task]:
    """The task class of ``kind``; a :class:`ConfigError` naming ``key`` lists the known kinds."""
    if kind not in TASKS:
        raise ConfigError(key, f"unknown task kind {kind!r}; choose one of {sorted(TASKS)}")
    return TASKS[kind]
