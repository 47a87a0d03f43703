"""The Cox partial likelihood over the global batch of a distributed (DDP) step.

The Cox loss is not a sum over samples: every event is compared with its whole risk set. On each
rank's local batch alone the risk sets are per rank and the loss (and its gradient) differs from
one process on the same global batch. :func:`distributed_cox_loss` makes it global:

1. the ranks' sizes are all-gathered, then their ``(risk, time, event)`` rows, padded to the
   largest size (ranks may hold different numbers of samples, also none), without autograd;
2. this rank's own ``risk`` (with its graph) is put back into its slot of the global ``[N]``
   vector, the other ranks' rows are constants, and the loss ``L`` is
   :func:`~medmtl.losses.cox.cox_partial_likelihood_loss` on the global batch: the same value on
   every rank, and its backward gives this rank's samples ``∂L/∂r_local``;
3. DDP averages the parameters' gradients over ranks (``(1/W)·Σ_ranks``), while the gradient of
   ``L`` is the *sum* of every rank's ``∂L/∂r_local·∂r_local/∂θ``. The returned scalar is therefore
   ``L + (W − 1)·(L − L.detach())``: its value is exactly ``L``, its gradient ``W·∂L/∂r_local``,
   so that after DDP's average the parameters' gradient is that of the one-process loss on the
   concatenated global batch.

No collective runs in the backward pass (the other ranks' rows are constants), so per-task
``torch.autograd.grad`` calls (gradient balancers) need no coordination either.

Collective: under an initialised ``torch.distributed`` with world size > 1 every rank must call
it at the same step, also a rank without samples (pass empty ``[0]`` tensors). The values
(time > 0, event ∈ {0, 1}) are checked on the gathered global batch, so a bad value raises on
every rank alike instead of leaving the others waiting. Without distributed (or world size 1) it
is exactly :func:`~medmtl.losses.cox.cox_partial_likelihood_loss`.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import torch
import torch.distributed as dist

from medmtl.losses.cox import Reduction, Ties, cox_partial_likelihood_loss

__all__ = ["GlobalSurvivalBatch", "distributed_cox_loss", "gather_survival", "global_gradient", "is_distributed"]


def is_distributed(group: Any = None) -> bool:
    """Whether ``torch.distributed`` is initialised with more than one rank (in ``group``)."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size(group) > 1


def _collective_device(group: Any = None) -> torch.device:
    """Where collectives run: CUDA for NCCL, else the CPU (gloo)."""
    if dist.get_backend(group) == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


class GlobalSurvivalBatch(NamedTuple):
    """What :func:`gather_survival` returns: the global batch in rank order.

    ``risk`` ``[N]`` (this rank's rows are the local ``risk`` tensor itself, with its graph; the
    other ranks' rows are constants), ``time`` ``[N]`` and ``event`` ``[N]`` (dtypes and device of
    the local inputs), ``world`` the number of ranks (1 without distributed) and ``start`` the
    index of this rank's first row.
    """

    risk: torch.Tensor
    time: torch.Tensor
    event: torch.Tensor
    world: int
    start: int


def _check_shapes(risk: torch.Tensor, time: torch.Tensor, event: torch.Tensor) -> None:
    for name, tensor in (("risk", risk), ("time", time), ("event", event)):
        if not isinstance(tensor, torch.Tensor):
            raise ValueError(f"{name} must be a torch.Tensor, got {type(tensor).__name__}")
    if risk.dim() != 1 or time.shape != risk.shape or event.shape != risk.shape:
        raise ValueError("risk, time and event must all be 1-D [N] with the same N, got shapes "
                         f"{tuple(risk.shape)}, {tuple(time.shape)} and {tuple(event.shape)}")
    if not risk.is_floating_point():
        raise ValueError(f"risk must be a floating point tensor, got {risk.dtype}")


def gather_survival(risk: torch.Tensor, time: torch.Tensor, event: torch.Tensor,
                    group: Any = None) -> GlobalSurvivalBatch:
    """All ranks' ``(risk, time, event)`` concatenated in rank order (collective under DDP).

    Args:
        risk: ``[n]`` this rank's float log-risks (``n`` may differ between ranks, also 0).
        time: ``[n]`` follow-up times.
        event: ``[n]`` 1 = event, 0 = censored.
        group: the process group (default: the world).

    Returns:
        :class:`GlobalSurvivalBatch` with ``[N]`` tensors, ``N`` = the sum of the ranks' ``n``;
        without distributed the inputs themselves (``world = 1``, ``start = 0``).
    """
    _check_shapes(risk, time, event)
    if not is_distributed(group):
        return GlobalSurvivalBatch(risk, time, event, 1, 0)
    world, rank = dist.get_world_size(group), dist.get_rank(group)
    comm = _collective_device(group)
    size = torch.tensor([risk.shape[0]], dtype=torch.long, device=comm)
    sizes = [torch.zeros_like(size) for _ in range(world)]
    dist.all_gather(sizes, size, group=group)
    counts = [int(s) for s in sizes]
    widest = max(counts)
    if widest > 0:  # the same decision on every rank: all take part in the second gather, or none does
        # float64 carries times exactly and casts back to the local dtypes without loss
        rows = torch.stack([x.detach().to(device=comm, dtype=torch.float64) for x in (risk, time, event)], dim=1)
        padded = torch.zeros(widest, 3, dtype=torch.float64, device=comm)
        padded[:counts[rank]] = rows
        gathered = [torch.empty_like(padded) for _ in range(world)]
        dist.all_gather(gathered, padded, group=group)
        parts = [part[:n].to(risk.device) for part, n in zip(gathered, counts)]
    else:
        parts = [torch.zeros(0, 3, dtype=torch.float64, device=risk.device) for _ in range(world)]

    def column(k: int, local: torch.Tensor) -> torch.Tensor:
        return torch.cat([local if r == rank else part[:, k].to(local.dtype) for r, part in enumerate(parts)])

    return GlobalSurvivalBatch(column(0, risk), column(1, time.to(risk.device)), column(2, event.to(risk.device)),
                               world, sum(counts[:rank]))


def global_gradient(loss: torch.Tensor, world: int) -> torch.Tensor:
    """``loss + (world − 1)·(loss − loss.detach())``: the value of ``loss`` exactly, ``world`` times its
    gradient, so that DDP's average of the ranks' gradients is the sum of their contributions to a
    loss computed on the global batch (a scalar; ``loss`` itself when ``world == 1``)."""
    if world == 1:
        return loss
    return loss + (world - 1) * (loss - loss.detach())


def distributed_cox_loss(risk: torch.Tensor, time: torch.Tensor, event: torch.Tensor, ties: Ties = "efron",
                         reduction: Reduction = "mean", group: Any = None) -> torch.Tensor:
    """The negative log Cox partial likelihood of the global batch (all ranks' samples).

    Args:
        risk: ``[n]`` this rank's float log-risks (higher = shorter survival); ``n`` may differ
            between ranks, also 0.
        time: ``[n]`` follow-up times, all > 0.
        event: ``[n]`` 1 for an observed event, 0 for censoring.
        ties: ``"efron"`` (default) or ``"breslow"``.
        reduction: ``"mean"`` (per event of the global batch) or ``"sum"``.
        group: the process group (default: the world).

    Returns:
        Scalar tensor: the loss of the concatenated global batch, identical on every rank; its
        gradient w.r.t. this rank's ``risk`` is ``world ×`` that of the global loss (see the
        module docstring: after DDP's gradient average the parameters get the one-process
        gradient). Zero (never NaN) when the global batch holds no event. Without distributed it
        is :func:`~medmtl.losses.cox.cox_partial_likelihood_loss` itself.
    """
    if not is_distributed(group):
        return cox_partial_likelihood_loss(risk, time, event, ties=ties, reduction=reduction)
    batch = gather_survival(risk, time, event, group)
    loss = cox_partial_likelihood_loss(batch.risk, batch.time, batch.event, ties=ties, reduction=reduction)
    return global_gradient(loss, batch.world)
