"""Checkpoints written atomically, so a run killed while saving keeps its previous checkpoint, and read
weights-only, so a checkpoint file cannot run code."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO

from medmtl.io_utils import atomic_write_bytes
from medmtl.training.safe_load import load_checkpoint_file


class AtomicCheckpointIO(TorchCheckpointIO):
    """Serialises to memory, then writes a temporary file and renames it over the target; loads weights-only."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: str | Path, storage_options: Any = None) -> None:
        buffer = io.BytesIO()
        torch.save(checkpoint, buffer)
        atomic_write_bytes(path, buffer.getvalue())

    def load_checkpoint(self, path: str | Path, map_location: Any = "cpu", weights_only: bool | None = None
                        ) -> dict[str, Any]:
        """Lightning's resume reads through here: always weights-only (``weights_only`` is ignored), so a
        checkpoint file cannot run code; see :mod:`medmtl.training.safe_load`."""
        return load_checkpoint_file(path, map_location=map_location)
