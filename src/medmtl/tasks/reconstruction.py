"""Reconstruction of the input image, an auxiliary task that needs no labels."""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field

from medmtl.encoders.base import FeatureInfo
from medmtl.metrics.bootstrap import batched_mean, bootstrap_ci
from medmtl.tasks.base import Batch, Outputs, Summary, Task, TaskOptions
from medmtl.tasks.heads import UNetDecoder
from medmtl.tasks.outputs import PredictionSink

_LOSSES = {"mse": F.mse_loss, "l1": F.l1_loss}


class ReconstructionOptions(TaskOptions):
    kind: Literal["reconstruction"] = "reconstruction"
    target: str = "image"
    loss: Literal["mse", "l1"] = "mse"
    use_skips: bool = Field(False, description="skips would let the decoder copy the input instead of "
                                               "learning a compressed representation")


class ReconstructionTask(Task[torch.Tensor, torch.Tensor]):
    """Decodes the image back from the features; prediction ``[B, C, H, W]`` in [0, 1].

    ``use_skips=False`` (default) decodes from the deepest map only, so the head must learn a
    compressed representation instead of copying the input through the shallow skips.
    """

    kind = "reconstruction"
    dense = True
    Options = ReconstructionOptions
    monitor = ("mse", "min")
    summary_metrics = ("mse",)
    lower_is_better = frozenset({"loss", "mse"})
    metric_names = ("mse", "psnr")
    auxiliary = True
    options: ReconstructionOptions

    def __init__(self, name: str | None = None, options: ReconstructionOptions | None = None,
                 **values: Any) -> None:
        super().__init__(name, options, **values)
        self.loss_fn = _LOSSES[self.options.loss]

    def build_head(self, feature_info: list[FeatureInfo], image_channels: int) -> None:
        self.head = UNetDecoder(feature_info, image_channels, use_skips=self.options.use_skips)

    def forward(self, features: list[torch.Tensor], image: torch.Tensor, context: Outputs,
                batch: Batch | None = None) -> torch.Tensor:
        return torch.sigmoid(self.head(features, image.shape[2:]))

    def compute_loss(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return self.loss_fn(prediction, target.float())

    def merge_outputs(self, outputs: list[torch.Tensor]) -> torch.Tensor:
        """Merged outputs (TTA copies, ensemble members): the mean of the reconstructions ``[B, C, *S]`` (already
        mapped back onto the input's grid)."""
        return torch.stack(outputs).mean(dim=0)

    def summarize(self, prediction: torch.Tensor, target: torch.Tensor) -> Summary:
        mse = (prediction.detach().float() - target.detach().float()).pow(2).flatten(1).mean(dim=1)
        psnr = 10 * torch.log10(1.0 / mse.clamp_min(1e-10))
        return {"mse": mse.cpu().numpy(), "psnr": psnr.cpu().numpy()}

    def compute_metrics(self, summary: Summary, n_resamples: int = 1000, seed: int = 0) -> dict[str, Any]:
        result: dict[str, Any] = {"n": int(len(summary["mse"]))}
        for key in ("mse", "psnr"):
            values = summary[key]
            result[key] = float(np.mean(values))
            result[f"{key}_ci95"] = list(bootstrap_ci(batched_mean, values, n_resamples=n_resamples, seed=seed,
                                                      vectorized=True))
        return result

    def write_prediction(self, prediction: torch.Tensor, sink: PredictionSink) -> None:
        """Reconstructions are an auxiliary output: not written."""
        return None
