"""Per-task gradients for gradient-level balancers (:class:`medmtl.balancing.GradientBalancer`).

``task_gradients`` differentiates each task's loss w.r.t. the shared inputs (the encoder's
trainable parameters, or its output feature maps) with ``torch.autograd.grad(retain_graph=True)``
and stacks the flattened gradients to ``[T, D]``. ``torch.autograd.grad`` does not trigger DDP's
gradient all-reduce, so under DDP the matrix is made global here, once per step, so that every rank
computes identical weights from the global batch:

* ``shared``: the rows are all-reduced (sum / world size) — the gradient of the global-batch loss;
* ``representation``: each rank's feature maps hold its own samples, so the global matrix is the
  concatenation of the ranks' rows (all-gathered, divided by the world size).

Partial labels under DDP: the set of tasks is the union of the tasks present on any rank; a task
absent on a rank contributes a zero gradient there (exactly what DDP's gradient average does with
it). The loss values the balancer sees are the means over the ranks where each task is present
(``L − L.detach() + mean``: the global value with the local gradient), so weights that depend on the
losses are identical on every rank too. With fewer than two tasks present globally nothing is
computed and the balancer gets ``grads=None`` (one task: its loss, weight 1).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch
import torch.distributed as dist


def _distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def _collective_device(fallback: torch.device) -> torch.device:
    """Where collectives run: CUDA for NCCL, else the CPU (gloo)."""
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


class TaskGradients(NamedTuple):
    """What :func:`task_gradients` returns: the losses for the balancer (dict order = row order), the
    gradient matrix ``[T, D]`` the balancer sees (global under DDP; None with < 2 tasks), and this
    rank's own per-task gradients of ``inputs + extra`` (``local[i][k]``: task ``i``, tensor ``k``;
    None where the task has no gradient) for :func:`combined_surrogate`."""

    losses: dict[str, torch.Tensor]
    grads: torch.Tensor | None
    local: list[list[torch.Tensor | None]]


def task_gradients(losses: dict[str, torch.Tensor], inputs: Sequence[torch.Tensor], task_names: Sequence[str],
                   level: str, extra: Sequence[torch.Tensor] = ()) -> TaskGradients:
    """Per-task gradients of ``inputs`` (the shared parameters or feature maps), and of ``extra``
    (the task heads' parameters) in the same backward pass, for :func:`combined_surrogate`.

    Collective under DDP: every rank must call it at the same step (also a rank without losses).
    """
    reference = next(iter(losses.values()), None)
    device = reference.device if reference is not None else (inputs[0].device if inputs else torch.device("cpu"))
    distributed = _distributed()
    if distributed:
        comm = _collective_device(device)
        stats = torch.zeros(2, len(task_names), dtype=torch.float64, device=comm)
        for i, name in enumerate(task_names):
            if name in losses:
                stats[0, i] = 1.0
                stats[1, i] = float(losses[name].detach())
        dist.all_reduce(stats)
        present = [name for i, name in enumerate(task_names) if stats[0, i] > 0]
        mean_loss = {name: float(stats[1, i] / stats[0, i]) for i, name in enumerate(task_names) if stats[0, i] > 0}
    else:
        present = [name for name in task_names if name in losses]
    if not inputs or not present:
        return TaskGradients(losses, None, [])
    if len(present) < 2:  # nothing to balance (weight 1); representation level: the heads read detached
        # maps, so the one task's gradients are what reaches the encoder (through combined_surrogate)
        local = [list(torch.autograd.grad(losses[name], [*inputs, *extra], retain_graph=True, allow_unused=True))
                 for name in present if level == "representation" and name in losses and losses[name].requires_grad]
        return TaskGradients({name: losses[name] for name in present if name in losses}, None, local)
    size = sum(x.numel() for x in inputs)
    targets = [*inputs, *extra]
    rows, local = [], []
    for name in present:
        loss = losses.get(name)
        if loss is None or not loss.requires_grad:
            rows.append(torch.zeros(size, device=device))
            local.append([None] * len(targets))
            continue
        parts = list(torch.autograd.grad(loss, targets, retain_graph=True, allow_unused=True))
        local.append(parts)
        rows.append(torch.cat([(g if g is not None else torch.zeros_like(x)).reshape(-1)
                               for g, x in zip(parts[:len(inputs)], inputs)]))
    grads = torch.stack(rows)
    if not distributed:
        return TaskGradients({name: losses[name] for name in present}, grads, local)
    world = dist.get_world_size()
    if level == "shared":
        moved = grads.to(comm)
        dist.all_reduce(moved)
        grads = (moved / world).to(device)
    else:
        grads = _gather_columns(grads, comm).to(device) / world
    balanced = {}
    for name in present:
        value = torch.tensor(mean_loss[name], dtype=grads.dtype, device=device)
        balanced[name] = losses[name] - losses[name].detach() + value if name in losses else value
    return TaskGradients(balanced, grads, local)


def combined_surrogate(value: torch.Tensor, weights: torch.Tensor, local: list[list[torch.Tensor | None]],
                       tensors: Sequence[torch.Tensor]) -> torch.Tensor:
    """A scalar equal to ``value`` whose backward gives each of ``tensors`` the gradient
    ``Σ_i weights[i] · local[i][k]`` — exactly what back-propagating ``Σ wᵢ·Lᵢ`` would give, without
    running the heads' backward a second time (their per-task gradients are already known).

    With the feature maps among ``tensors`` (representation level) the encoder receives the combined
    gradient through one backward pass; the head parameters get theirs directly.
    """
    dot = value.new_zeros(())
    for k, tensor in enumerate(tensors):
        parts = [w * part[k] for w, part in zip(weights, local) if part[k] is not None]
        if parts:
            dot = dot + (tensor * torch.stack(parts).sum(0).detach()).sum()
    return dot - dot.detach() + value.detach()


def _gather_columns(grads: torch.Tensor, comm: torch.device) -> torch.Tensor:
    """``[T, D_r]`` of every rank concatenated along D (ranks may hold different batch sizes)."""
    world = dist.get_world_size()
    local = grads.to(comm)
    sizes = [torch.zeros(1, dtype=torch.long, device=comm) for _ in range(world)]
    dist.all_gather(sizes, torch.tensor([local.shape[1]], dtype=torch.long, device=comm))
    widest = int(max(int(s) for s in sizes))
    padded = torch.zeros(local.shape[0], widest, dtype=local.dtype, device=comm)
    padded[:, :local.shape[1]] = local
    parts = [torch.empty_like(padded) for _ in range(world)]
    dist.all_gather(parts, padded)
    return torch.cat([part[:, :int(n)] for part, n in zip(parts, sizes)], dim=1)


def gradient_cosines(names: Sequence[str], grads: torch.Tensor) -> dict[str, float]:
    """``{"<a>~<b>": cos(g_a, g_b)}`` for every pair of rows (names in row order)."""
    unit = grads / grads.norm(dim=1, keepdim=True).clamp_min(1e-12)
    cos = (unit @ unit.T).detach().cpu()
    return {f"{a}~{b}": float(cos[i, j]) for i, a in enumerate(names) for j, b in enumerate(names) if j > i}
