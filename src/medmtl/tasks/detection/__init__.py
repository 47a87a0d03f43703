"""Mask R-CNN-style lesion detection on the shared encoder (torchvision components)."""

from medmtl.tasks.detection.task import DetectionOptions, Detections, DetectionTask

__all__ = ["DetectionOptions", "DetectionTask", "Detections"]
