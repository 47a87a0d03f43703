"""Negative log partial likelihood of the Cox proportional hazards model.

References:
    Cox, D. R. (1972). Regression models and life-tables. JRSS B 34(2), 187-220.
    Breslow, N. (1974). Covariance analysis of censored survival data. Biometrics 30(1), 89-99.
    Efron, B. (1977). The efficiency of Cox's likelihood function for censored data. JASA 72(359),
    557-565.
"""

from __future__ import annotations

from typing import Literal

import torch

__all__ = ["CoxLoss", "cox_partial_likelihood_loss"]

Ties = Literal["breslow", "efron"]
Reduction = Literal["mean", "sum"]


def _validate(risk: torch.Tensor, time: torch.Tensor, event: torch.Tensor, ties: str, reduction: str) -> None:
    if ties not in ("breslow", "efron"):
        raise ValueError(f"ties must be 'breslow' or 'efron', got {ties!r}")
    if reduction not in ("mean", "sum"):
        raise ValueError(f"reduction must be 'mean' or 'sum', got {reduction!r}")
    for name, tensor in (("risk", risk), ("time", time), ("event", event)):
        if not isinstance(tensor, torch.Tensor):
            raise ValueError(f"{name} must be a torch.Tensor, got {type(tensor).__name__}")
    if risk.dim() != 1 or time.shape != risk.shape or event.shape != risk.shape:
        raise ValueError("risk, time and event must all be 1-D [N] with the same N, got shapes "
                         f"{tuple(risk.shape)}, {tuple(time.shape)} and {tuple(event.shape)}")
    if not risk.is_floating_point():
        raise ValueError(f"risk must be a floating point tensor, got {risk.dtype}")
    if risk.numel() == 0:
        return
    if not bool(torch.isfinite(time).all()) or bool((time <= 0).any()):
        raise ValueError("time must be finite and > 0 for every sample (got a value <= 0, NaN or inf)")
    if not bool(((event == 0) | (event == 1)).all()):
        raise ValueError("event must hold only 0 (censored) or 1 (event)")


def cox_partial_likelihood_loss(risk: torch.Tensor, time: torch.Tensor, event: torch.Tensor,
                                ties: Ties = "efron", reduction: Reduction = "mean") -> torch.Tensor:
    """Negative log Cox partial likelihood (Cox, 1972).

    For each distinct event time ``t`` with ``d`` events ``D`` and risk set ``R = {j : time_j >= t}``
    the log partial likelihood adds

    * Breslow (1974): ``sum_{i in D} risk_i - d * log sum_{j in R} exp(risk_j)``;
    * Efron (1977): ``sum_{i in D} risk_i - sum_{l=0}^{d-1} log(sum_{j in R} exp(risk_j)
      - l/d * sum_{i in D} exp(risk_i))``.

    Both equal Cox's likelihood without tied event times. Computed stably: samples are sorted by
    time (descending), the risk-set sums are a cumulative log-sum-exp, and Efron's correction is
    ``log S_R + log1p(-l/d * S_D / S_R)`` with ``S_D <= S_R``.

    Args:
        risk: ``[N]`` float log-risk (linear predictor); higher = shorter survival.
        time: ``[N]`` follow-up times, all > 0.
        event: ``[N]`` 1 for an observed event, 0 for censoring (bool, int or float).
        ties: ``"efron"`` (default) or ``"breslow"``.
        reduction: ``"mean"`` divides the sum by the number of events; ``"sum"`` does not.

    Returns:
        Scalar tensor (dtype of ``risk``). Without events (or with ``N == 0``) it is
        ``risk.sum() * 0.0``: exactly zero, with a gradient path, never NaN.

    Raises:
        ValueError: shape mismatch, non-finite or non-positive time, event not in {0, 1}, or an
            unknown ``ties``/``reduction``.
    """
    _validate(risk, time, event, ties, reduction)
    time = time.to(risk.device)
    observed = event.to(risk.device) == 1
    n_events = int(observed.sum())
    if n_events == 0:
        return risk.sum() * 0.0

    order = torch.argsort(time, descending=True, stable=True)
    eta = risk[order]
    t = time[order]
    obs = observed[order]
    e = obs.to(risk.dtype)

    # Groups of tied times, in descending time order; each element's group id.
    _, group, counts = torch.unique_consecutive(t, return_inverse=True, return_counts=True)
    group_end = torch.cumsum(counts, 0) - 1
    # log sum_{j: time_j >= t_i} exp(eta_j): cumulative LSE read at the end of i's tie group.
    log_risk_set = torch.logcumsumexp(eta, 0)[group_end][group]

    if ties == "breslow":
        log_denominator = log_risk_set
    else:
        n_groups = counts.shape[0]
        d = torch.zeros(n_groups, dtype=risk.dtype, device=risk.device).scatter_add(0, group, e)
        # l_i in {0, ..., d-1}: rank of event i among the events of its group.
        events_before = torch.cumsum(d, 0) - d
        rank = torch.cumsum(e, 0) - 1.0 - events_before[group]
        # log S_D per group, shifted by the (detached) maximum log-risk of the group's events.
        neg_inf = torch.full_like(eta, float("-inf"))
        event_eta = torch.where(obs, eta.detach(), neg_inf)
        shift = torch.full((n_groups,), float("-inf"), dtype=risk.dtype, device=risk.device)
        shift = shift.scatter_reduce(0, group, event_eta, reduce="amax", include_self=True)
        shift = torch.where(torch.isfinite(shift), shift, torch.zeros_like(shift))
        shifted = torch.where(obs, eta - shift[group], neg_inf)
        s_d = torch.zeros(n_groups, dtype=risk.dtype, device=risk.device).scatter_add(0, group, torch.exp(shifted))
        has_events = d > 0
        log_s_d = torch.where(has_events, torch.log(torch.where(has_events, s_d, torch.ones_like(s_d))) + shift,
                              torch.zeros_like(s_d))
        ratio = torch.exp(torch.clamp(log_s_d[group] - log_risk_set, max=0.0))  # S_D / S_R <= 1
        fraction = torch.where(obs, rank / d[group].clamp_min(1.0), torch.zeros_like(eta))
        log_denominator = log_risk_set + torch.log1p(-fraction * ratio)

    log_likelihood = torch.sum(torch.where(obs, eta - log_denominator, torch.zeros_like(eta)))
    loss = -log_likelihood
    if reduction == "mean":
        loss = loss / n_events
    return loss


class CoxLoss(torch.nn.Module):
    """``torch.nn.Module`` form of :func:`cox_partial_likelihood_loss` (Cox, 1972; ties after
    Breslow, 1974 or Efron, 1977).

    Args:
        ties: ``"efron"`` or ``"breslow"``.
        reduction: ``"mean"`` (per event) or ``"sum"``.
    """

    def __init__(self, ties: Ties = "efron", reduction: Reduction = "mean") -> None:
        super().__init__()
        if ties not in ("breslow", "efron"):
            raise ValueError(f"ties must be 'breslow' or 'efron', got {ties!r}")
        if reduction not in ("mean", "sum"):
            raise ValueError(f"reduction must be 'mean' or 'sum', got {reduction!r}")
        self.ties = ties
        self.reduction = reduction

    def forward(self, risk: torch.Tensor, time: torch.Tensor, event: torch.Tensor) -> torch.Tensor:
        """``risk``, ``time``, ``event``: ``[N]`` each; returns a scalar loss."""
        return cox_partial_likelihood_loss(risk, time, event, ties=self.ties, reduction=self.reduction)

    def extra_repr(self) -> str:
        return f"ties={self.ties!r}, reduction={self.reduction!r}"
