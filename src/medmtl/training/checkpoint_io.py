"""Checkpoints written atomically, so a run killed while saving keeps its previous checkpoint."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO

from medmtl.io_utils import atomic_write_bytes


class AtomicCheckpointIO(TorchCheckpointIO):
    """Serialises to memory, then writes a temporary file and renames it over the target."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: str | Path, storage_options: Any = None) -> None:
        buffer = io.BytesIO()
        torch.save(checkpoint, buffer)
        atomic_write_bytes(path, buffer.getvalue())
