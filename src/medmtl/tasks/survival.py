"""Survival: a risk score per image trained with the Cox partial likelihood."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from pydantic import Field

from medmtl.encoders.base import FeatureInfo
from medmtl.io_utils import atomic_write_text
from medmtl.losses.cox import cox_partial_likelihood_loss
from medmtl.losses.cox_distributed import gather_survival, global_gradient, is_distributed
from medmtl.metrics import survival_metrics
from medmtl.metrics.bootstrap import as_numpy
from medmtl.tasks.base import Batch, Outputs, Summary, Task
from medmtl.tasks.heads import PooledHead, PooledHeadOptions


class SurvivalOptions(PooledHeadOptions):
    kind: Literal["survival"] = "survival"
    target: str = "survival"
    ties: Literal["breslow", "efron"] = Field("efron", description="how the Cox loss handles tied event times")
    memory: int = Field(0, ge=0, description="remember the last N training samples' risks for the Cox risk sets "
                                             "(for batches of one slide)")
    km_groups: Literal[2, 3] = Field(2, description="risk groups of the report's Kaplan–Meier figure: split at the "
                                                  "median predicted risk (2) or its tertiles (3)")


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

    def merge_outputs(self, outputs: list[torch.Tensor]) -> torch.Tensor:
        """Merged outputs (TTA copies, ensemble members): the mean of the log-risks ``[B, 1]`` (a Cox log-risk is
        defined up to a constant per model: the mean keeps each member's ordering, a member with a wider
        spread weighs more)."""
        return torch.stack(outputs).mean(dim=0)

    def explained_columns(self, prediction: torch.Tensor) -> list[tuple[int, str]]:
        return [(0, "log-risk")]

    def summarize(self, prediction: torch.Tensor, target: torch.Tensor) -> Summary:
        target = target.detach().float().cpu().numpy()
        return {"time": target[:, 0], "event": target[:, 1],
                "risk": prediction.detach().float()[:, 0].cpu().numpy()}

    def compute_metrics(self, summary: Summary, n_resamples: int = 1000, seed: int = 0) -> dict[str, Any]:
        return survival_metrics(summary["time"], summary["event"], summary["risk"], n_resamples=n_resamples, seed=seed)

    # -- results for people ---------------------------------------------------------------
    def report_figures(self, summary: Summary, out_dir: Path, split: str) -> list[str]:
        """Kaplan–Meier curves of the predicted risk groups (``km_<task>.png``, points in
        ``km_<task>.csv``: group, time, survival) with the log-rank p-value, the numbers at risk and
        the C-index; a sentence instead of the figure when the groups cannot be formed."""
        return km_section(self.name, summary["time"], summary["event"], summary["risk"], out_dir, split,
                          groups=self.options.km_groups)


#: names of the risk groups, lowest predicted risk first
_GROUP_NAMES = {2: ("low risk", "high risk"), 3: ("low risk", "intermediate risk", "high risk")}


@dataclass
class RiskGroups:
    """The result of :func:`km_risk_groups`."""

    #: group of each sample ``[N]`` (0 = lowest predicted risk)
    group: np.ndarray
    #: group names, lowest risk first
    names: list[str]
    #: the risk cut points (``groups - 1`` of them); group ``g`` holds ``cuts[g-1] < risk <= cuts[g]``
    cuts: list[float]
    #: fitted ``lifelines.KaplanMeierFitter`` per group, labelled ``"<name> (n=…)"``
    fitters: list[Any]
    #: log-rank test of equal survival across the groups (NaN when there is no event)
    p_value: float
    #: why ``p_value`` is NaN, else None
    note: str | None


def km_risk_groups(time: Any, event: Any, risk: Any, groups: int = 2) -> RiskGroups:
    """Split samples at the median (``groups=2``) or the tertiles (``groups=3``) of the predicted
    ``risk``, fit a Kaplan–Meier curve per group (lifelines ``KaplanMeierFitter``) and test the
    groups' survival with the log-rank test (lifelines ``multivariate_logrank_test``; with two
    groups the same as ``logrank_test``).

    Args:
        time: ``[N]`` follow-up times (finite, >= 0). event: ``[N]`` 1 event, 0 censored.
        risk: ``[N]`` predicted risk (higher = shorter survival). groups: 2 or 3.

    Returns:
        :class:`RiskGroups`; without any event the curves stay at 1 and the p-value is NaN.

    Raises:
        ValueError: empty or mismatched arrays, non-finite values, events other than 0/1, an
            unsupported ``groups``, fewer than ``2 * groups`` samples, all risks equal, or a group
            with fewer than 2 samples (tied risks at a cut point).
    """
    if groups not in _GROUP_NAMES:
        raise ValueError(f"groups must be 2 (median split) or 3 (tertiles), got {groups!r}")
    time = as_numpy(time).astype(np.float64)
    event = as_numpy(event).astype(np.float64)
    risk = as_numpy(risk).astype(np.float64)
    if time.ndim != 1 or event.shape != time.shape or risk.shape != time.shape:
        raise ValueError(f"time, event and risk must all be [N], got shapes {time.shape}, {event.shape}, {risk.shape}")
    if time.shape[0] == 0:
        raise ValueError("Kaplan–Meier risk groups need samples, got zero")
    if not (np.all(np.isfinite(time)) and np.all(np.isfinite(risk))):
        raise ValueError("time and risk must be finite (no NaN or infinity)")
    if np.any(time < 0):
        raise ValueError("time must be non-negative")
    if not np.all(np.isin(event, (0.0, 1.0))):
        raise ValueError("event must hold 0 (censored) or 1 (event) only")
    if time.shape[0] < 2 * groups:
        raise ValueError(f"{groups} risk groups of at least 2 samples need at least {2 * groups} samples, "
                         f"got {time.shape[0]}")
    if np.all(risk == risk[0]):
        raise ValueError("all predicted risks are equal, so there are no risk groups")
    cuts = [float(c) for c in np.quantile(risk, np.arange(1, groups) / groups)]
    group = np.searchsorted(np.asarray(cuts), risk, side="left")  # risk <= cut stays below it
    names = list(_GROUP_NAMES[groups])
    sizes = np.bincount(group, minlength=groups)
    if sizes.min() < 2:
        small = ", ".join(f"{names[g]}: {sizes[g]}" for g in range(groups) if sizes[g] < 2)
        raise ValueError(f"a risk group would have fewer than 2 samples ({small} of {len(risk)} samples; "
                         f"few samples or tied risks at a cut)")

    import warnings

    from lifelines import KaplanMeierFitter  # lifelines only when a survival report is written
    from lifelines.statistics import multivariate_logrank_test

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fitters = [KaplanMeierFitter(label=f"{names[g]} (n={sizes[g]})").fit(time[group == g], event[group == g])
                   for g in range(groups)]
        if event.sum() == 0:
            p_value, note = math.nan, "no events, so the log-rank test is undefined"
        else:
            p_value, note = float(multivariate_logrank_test(time, group, event).p_value), None
    return RiskGroups(group=group, names=names, cuts=cuts, fitters=fitters, p_value=p_value, note=note)


def km_points(result: RiskGroups) -> Any:
    """The curves of :func:`km_risk_groups` as a ``pandas.DataFrame`` of (group, time, survival)
    rows: each group's estimate at time 0 and at every observed time."""
    import pandas as pd  # pandas only when a report is written

    rows = []
    for name, fitter in zip(result.names, result.fitters):
        curve = fitter.survival_function_
        rows.append(pd.DataFrame({"group": name, "time": curve.index.to_numpy(dtype=np.float64),
                                  "survival": curve.iloc[:, 0].to_numpy(dtype=np.float64)}))
    return pd.concat(rows, ignore_index=True)


def _p_text(p_value: float) -> str:
    return "p < 0.001" if p_value < 1e-3 else f"p = {p_value:.3f}"


def km_section(name: str, time: Any, event: Any, risk: Any, out_dir: Path, split: str, groups: int = 2) -> list[str]:
    """Write ``km_<name>.png`` and ``km_<name>.csv`` (see :meth:`SurvivalTask.report_figures`);
    the Markdown section (a sentence saying why when no figure can be drawn)."""
    heading = f"## Kaplan–Meier — {name}"
    split_text = "the median" if groups == 2 else "the tertiles"
    try:
        metrics = survival_metrics(time, event, risk)
    except ValueError as error:  # e.g. NaN risks of a diverged model: no figure either
        return [f"{heading}\n\nNo Kaplan–Meier figure: {error}."]
    if math.isnan(metrics["c_index"]):
        c_text, c_note = "C-index undefined (no comparable pair)", ""
    else:
        low, high = metrics["c_index_ci95"]
        c_text = f"C-index {metrics['c_index']:.3f}" + ("" if math.isnan(low) else f" [{low:.3f}, {high:.3f}]")
        c_note = "" if math.isnan(low) else " (95% bootstrap CI, 1000 resamples)"
    counts = f"{metrics['n']} samples, events: {metrics['events']}"
    try:
        result = km_risk_groups(time, event, risk, groups)
    except ValueError as error:
        return [(f"{heading}\n\nNo Kaplan–Meier figure of risk groups at {split_text} of the predicted risk: "
                 f"{error}. {c_text}{c_note}; {counts}.")]
    from medmtl.report.plots import plot_kaplan_meier  # matplotlib only when a report is written

    atomic_write_text(out_dir / f"km_{name}.csv", km_points(result).to_csv(index=False))
    test_text = f"log-rank {_p_text(result.p_value)}" if result.note is None else f"log-rank test: {result.note}"
    png = plot_kaplan_meier(result.fitters, out_dir / f"km_{name}.png", at_risk_labels=result.names,
                            title=f"Kaplan–Meier — {name} ({split}): risk groups at {split_text}\n"
                                  f"{test_text}; {c_text}")
    cuts = ", ".join(f"{c:.3g}" for c in result.cuts)
    return [f"{heading}\n\nSamples split at {split_text} of the predicted risk ({cuts}; "
            + ", ".join(f"{n}: {len(f.durations)}" for n, f in zip(result.names, result.fitters))
            + f"); {test_text}; {c_text}{c_note}; {counts}. Numbers at risk under the plot; "
            f"curve points in `km_{name}.csv`."
            f"\n\n![Kaplan–Meier {name}]({png.name})"]
