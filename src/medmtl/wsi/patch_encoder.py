"""A trained medmtl encoder used as a patch → embedding function for compression."""

from __future__ import annotations

import hashlib
from functools import cached_property
from pathlib import Path

import numpy as np
import torch

from medmtl.data.image_io import images_to_chw
from medmtl.encoders.base import Encoder


class PatchEncoder:
    """``encode(tiles uint8 [N, P, P, 3]) -> float32 [N, C]``: the global average of the
    encoder's deepest feature map, ``C = encoder.out_channels``.

    Tiles go through the same conversion as the images of training (:meth:`preprocess`:
    :func:`medmtl.data.image_io.images_to_chw`): scaled to [0, 1], and turned grey by luminance
    when the encoder was trained on one-channel images.
    """

    def __init__(self, encoder: Encoder, in_channels: int = 3, source: str = "", device: str = "cpu") -> None:
        self.encoder = encoder.to(device).eval()
        self.in_channels = in_channels
        self.source = source
        self.device = torch.device(device)

    @property
    def channels(self) -> int:
        return self.encoder.out_channels

    @cached_property
    def weights_sha256(self) -> str:
        """The encoder's identity: sha256 over its state dict (each tensor's name, dtype, shape and
        bytes, in key order), computed once. Grid stores record it, so a store is reused only for
        the same weights (:func:`medmtl.wsi.compress.grid_settings`)."""
        digest = hashlib.sha256()
        for key, tensor in self.encoder.state_dict().items():
            data = tensor.detach().to("cpu").contiguous().reshape(-1)
            digest.update(f"{key}|{data.dtype}|{tuple(tensor.shape)}|".encode())
            digest.update(data.view(torch.uint8).numpy())
        return digest.hexdigest()

    @classmethod
    def from_run(cls, run_dir: str | Path, device: str = "cpu") -> PatchEncoder:
        """The encoder of a trained run directory (its best checkpoint)."""
        from medmtl.training.run import load_run  # the training stack is only needed here

        config, model = load_run(run_dir)
        return cls(model.encoder, config.data.channels, source=str(run_dir), device=device)

    def preprocess(self, tiles: np.ndarray) -> torch.Tensor:
        """Tiles ``[N, P, P, 3]`` (uint8) as the encoder's input: float32 ``[N, in_channels, P, P]`` on the device."""
        batch = images_to_chw(tiles, self.in_channels, source=self.source or None)
        return torch.from_numpy(batch).to(self.device)

    @torch.no_grad()
    def encode(self, tiles: np.ndarray) -> np.ndarray:
        features = self.encoder(self.preprocess(tiles))[-1]
        return features.mean(dim=(2, 3)).float().cpu().numpy()
