"""Mask R-CNN-style lesion detection on the shared encoder (torchvision components)."""

from medmtl.tasks.detection.task import Detections, DetectionTask

__all__ = ["DetectionTask", "Detections"]
