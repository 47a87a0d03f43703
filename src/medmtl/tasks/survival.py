"""Survival: a risk score per image trained with the Cox partial likelihood."""

from __future__ import annotations

from typing import Any, Literal

import torch
from pydantic import Field

from medmtl.encoders.base import FeatureInfo
from medmtl.losses.cox import cox_partial_likelihood_loss
from medmtl.losses.cox_distributed import gather_survival, global_gradient, is_distributed
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

    Under DDP (``torch.distributed`` initialised, world size > 1), in training, the risk set is
    the global batch: :meth:`loss` gathers every rank's labelled (risk, time, event) rows
    (:func:`~medmtl.losses.cox_distributed.gather_survival`) and computes the Cox loss of the
    concatenated global batch, the same value on every rank, whose gradient (scaled by the world
    size, :func:`~medmtl.losses.cox_distributed.global_gradient`) becomes, after DDP's gradient
    average, the one-process gradient on that batch. This is a collective: every rank takes part
    at every training step, also one without labelled samples, which then returns the global
    loss with a zero gradient; only when no rank has a labelled sample is the loss None (on every
    rank alike). With ``memory`` the bank receives the gathered global rows, so it is identical
    on every rank. In evaluation (``eval()``: validation, the final evaluation that runs on rank 0
    alone) the loss is the local batch's, with no collective; the C-index is computed on the
    gathered summaries anyway.
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

    def loss(self, prediction: torch.Tensor, batch: Batch) -> torch.Tensor | None:
        """The Cox loss of ``prediction`` ``[B, 1]`` on the batch's labelled samples, or None.

        In training under DDP the loss of the global batch (see the class docstring); collective
        there, so every rank must call it at every step. Otherwise :meth:`Task.loss`.
        """
        if not (self.training and is_distributed()):
            return super().loss(prediction, batch)
        present = self.labelled(batch).to(prediction.device)
        targets = batch["targets"].get(self.target)  # absent when no sample of the batch has it
        target = prediction.new_zeros(0, 2) if targets is None else targets.to(prediction.device)[present]
        risk = prediction[present][:, 0]  # [n]; n = 0 still carries the graph (zero gradient)
        batch_rows = gather_survival(risk, target[:, 0].to(prediction.dtype), target[:, 1].to(prediction.dtype))
        if batch_rows.risk.numel() == 0:  # nothing labelled on any rank: None everywhere
            return None
        loss = self._cox(batch_rows.risk, batch_rows.time, batch_rows.event)
        return global_gradient(loss, batch_rows.world)

    def compute_loss(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return self._cox(prediction[:, 0], target[:, 0].to(prediction.dtype), target[:, 1].to(prediction.dtype))

    def _cox(self, risk: torch.Tensor, time: torch.Tensor, event: torch.Tensor) -> torch.Tensor:
        """Cox loss of ``[N]`` risks, times and events, with the memory bank in training."""
        ties, memory = self.options.ties, self.options.memory
        if not (self.training and memory > 0):
            return cox_partial_likelihood_loss(risk, time, event, ties=ties)
        bank = self.bank.to(risk)
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
