"""Task heads: each = head + loss + metrics + the sample key holding its target."""

from medmtl.tasks.base import Task
from medmtl.tasks.classification import ClassificationTask
from medmtl.tasks.detection import DetectionTask
from medmtl.tasks.reconstruction import ReconstructionTask
from medmtl.tasks.registry import TASKS
from medmtl.tasks.regression import RegressionTask
from medmtl.tasks.segmentation import SegmentationTask
from medmtl.tasks.survival import SurvivalTask

__all__ = ["TASKS", "ClassificationTask", "DetectionTask", "ReconstructionTask", "RegressionTask", "SegmentationTask",
           "SurvivalTask", "Task"]
