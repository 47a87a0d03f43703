"""Task kinds by name, so configs can say ``kind: segmentation``."""

from __future__ import annotations

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
