"""Survival: a risk score per image trained with the Cox partial likelihood."""

from __future__ import annotations

from typing import Any, Literal

import torch
from pydantic import Field

from medmtl.encoders.base import FeatureInfo
from medmtl.losses.cox import cox_partial_likelihood_loss
from medmtl.metrics import survival_metrics
from medmtl.tasks.base import Batch, Outputs, Summary, Task
from medmtl.tasks.heads import PooledHead, PooledHeadOptions


class SurvivalOptions(PooledHeadOptions):
    kind: Literal["survival"] = "survival"
    target: str = "survival"
    ties: Literal["breslow", "efron"] = Field("efron", description="how the Cox loss handles tied event times")
    memory: int = Field(0, ge=0, description="remember the last N training samples' risks for the Cox risk sets "
                                             "(for batches of one slide)")


class SurvivalTask(Task[torch.Tensor, torch.Tensor]):
    """Predicts a log-risk ``[B, 1]`` (higher = shorter survival).

    Target ``[B, 2]`` = (time > 0, event ∈ {0, 1}). The Cox loss compares samples within a
    batch, so larger batches give a better estimate; a batch without events gives zero loss.

    ``memory = K > 0`` keeps the (detached) risks, times and events of the last ``K`` training
    samples and adds them to every training batch's risk sets, so that the loss is informative
    even with one sample per step (whole-slide grids). Gradients flow through the current batch
    only; the remembered risks come from slightly older weights.
    """

    kind = "survival"
    Options = SurvivalOptions
    monitor = ("c_index", "max")
    summary_metrics = ("c_index",)
    metric_names = ("c_index",)
    options: SurvivalOptions

    def __init__(self, name: str | None = None, options: SurvivalOptions | None = None, **values: Any) -> None:
        super().__init__(name, options, **values)
        #: remembered (risk, time, event) rows ``[M, 3]``, M ≤ memory
        self.register_buffer("bank", torch.zeros(0, 3), persistent=False)

    def build_head(self, feature_info: list[FeatureInfo], image_channels: int) -> None:
        self.head = PooledHead.for_task(self, feature_info, 1)

    def forward(self, features: list[torch.Tensor], image: torch.Tensor, context: Outputs,
                batch: Batch | None = None) -> torch.Tensor:
        return self.head(features)

    def compute_loss(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        ties, memory = self.options.ties, self.options.memory
        risk, time, event = prediction[:, 0], target[:, 0].to(prediction.dtype), target[:, 1].to(prediction.dtype)
        if not (self.training and memory > 0):
            return cox_partial_likelihood_loss(risk, time, event, ties=ties)
        bank = self.bank.to(prediction)
        loss = cox_partial_likelihood_loss(torch.cat([risk, bank[:, 0]]), torch.cat([time, bank[:, 1]]),
                                           torch.cat([event, bank[:, 2]]), ties=ties)
        current = torch.stack([risk.detach(), time.detach(), event.detach()], dim=1)
        self.bank = torch.cat([bank, current])[-memory:]
        return loss

    def summarize(self, prediction: torch.Tensor, target: torch.Tensor) -> Summary:
        target = target.detach().float().cpu().numpy()
        return {"time": target[:, 0], "event": target[:, 1],
                "risk": prediction.detach().float()[:, 0].cpu().numpy()}

    def compute_metrics(self, summary: Summary, n_resamples: int = 1000, seed: int = 0) -> dict[str, Any]:
        return survival_metrics(summary["time"], summary["event"], summary["risk"], n_resamples=n_resamples, seed=seed)
