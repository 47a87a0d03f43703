"""medmtl: multi-task deep learning on medical images."""

__version__ = "0.1.0"
