"""A trained medmtl encoder used as a patch → embedding function for compression."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from medmtl.encoders.base import Encoder

# ITU-R BT.601 luma: how an encoder trained on grey images sees an RGB tile
_LUMA = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)


class PatchEncoder:
    """``encode(tiles uint8 [N, P, P, 3]) -> float32 [N, C]``: the global average of the
    encoder's deepest feature map, ``C = encoder.out_channels``.

    Tiles are scaled to [0, 1] like medmtl's image readers, and turned grey by luminance when the
    encoder was trained on one-channel images.
    """

    def __init__(self, encoder: Encoder, in_channels: int = 3, source: str = "", device: str = "cpu") -> None:
        self.encoder = encoder.to(device).eval()
        self.in_channels = in_channels
        self.source = source
        self.device = torch.device(device)

    @property
    def channels(self) -> int:
        return self.encoder.out_channels

    @classmethod
    def from_run(cls, run_dir: str | Path, device: str = "cpu") -> PatchEncoder:
        """The encoder of a trained run directory (its best checkpoint)."""
        from medmtl.training.run import load_run  # the training stack is only needed here

        config, model = load_run(run_dir)
        return cls(model.encoder, config.data.channels, source=str(run_dir), device=device)

    @torch.no_grad()
    def encode(self, tiles: np.ndarray) -> np.ndarray:
        batch = torch.from_numpy(np.ascontiguousarray(tiles)).to(self.device)
        batch = batch.permute(0, 3, 1, 2).float().div_(255.0)
        if self.in_channels == 1:
            batch = (batch * _LUMA.to(batch.device)).sum(dim=1, keepdim=True)
        features = self.encoder(batch)[-1]
        return features.mean(dim=(2, 3)).float().cpu().numpy()
