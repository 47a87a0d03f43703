"""Task kinds: each = options + head + loss + metrics + the sample key holding its target."""

from medmtl.tasks.base import Task, TaskOptions
from medmtl.tasks.classification import ClassificationOptions, ClassificationTask
from medmtl.tasks.detection import DetectionOptions, DetectionTask
from medmtl.tasks.reconstruction import ReconstructionOptions, ReconstructionTask
from medmtl.tasks.registry import TASKS, register_task, task_class
from medmtl.tasks.regression import RegressionOptions, RegressionTask
from medmtl.tasks.segmentation import SegmentationOptions, SegmentationTask
from medmtl.tasks.survival import SurvivalOptions, SurvivalTask

__all__ = ["TASKS", "ClassificationOptions", "ClassificationTask", "DetectionOptions", "DetectionTask",
           "ReconstructionOptions", "ReconstructionTask", "RegressionOptions", "RegressionTask",
           "SegmentationOptions", "SegmentationTask", "SurvivalOptions", "SurvivalTask", "Task", "TaskOptions",
           "register_task", "task_class"]
