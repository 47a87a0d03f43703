"""Shared helpers of the gradient-level balancers: input checks, Gram matrices, the min-norm solver."""

from __future__ import annotations

from collections.abc import Sequence
from itertools import combinations

import numpy as np
import torch
from torch import Tensor

from medmtl.errors import ConfigError


def check_grads(grads: Tensor) -> Tensor:
    """``grads [T, D]`` detached, in its own dtype and on its device (checked: a 2-D tensor, T ≥ 1).

    The T×D matrix is never copied to float64 or to the CPU: at the representation level D is the
    size of a batch's feature maps (millions), and such copies cost as much as the training step's
    backward. Only the T×T Gram matrix and T-vectors are carried to float64 (:func:`gram_of`).
    """
    if not isinstance(grads, Tensor) or grads.dim() != 2 or grads.shape[0] < 1:
        shape = tuple(grads.shape) if isinstance(grads, Tensor) else type(grads).__name__
        raise ValueError(f"grads must be a tensor [T, D] with T ≥ 1; got {shape}")
    return grads.detach()


def _finite(values: np.ndarray) -> np.ndarray:
    # a NaN or infinite gradient entry makes its Gram row / norm NaN or infinite
    if not np.all(np.isfinite(values)):
        raise ValueError("grads contain NaN or infinite values")
    return values


def gram_of(grads: Tensor) -> np.ndarray:
    """``G Gᵀ`` ``[T, T]`` (float64 numpy, symmetrised) of ``grads [T, D]``, computed in the gradients'
    own dtype and device (checked: 2-D, finite)."""
    g = check_grads(grads)
    m = (g @ g.T).to("cpu", torch.float64).numpy()
    return _finite((m + m.T) / 2)


def row_norms(grads: Tensor) -> np.ndarray:
    """``|gᵢ|`` ``[T]`` (float64 numpy) of ``grads [T, D]`` (checked: 2-D, finite)."""
    return _finite(check_grads(grads).norm(dim=1).to("cpu", torch.float64).numpy())


def as_losses(losses: Sequence[Tensor | float] | Tensor | None, count: int, *, needed_by: str) -> np.ndarray:
    """Per-task loss values ``[T]`` as float64 numpy (checked: T values, finite)."""
    if losses is None:
        raise ValueError(f"{needed_by} needs the task losses")
    if isinstance(losses, Tensor):
        values = losses.detach().to("cpu", torch.float64).flatten().numpy()
    else:
        values = np.array([float(v.detach()) if isinstance(v, Tensor) else float(v) for v in losses])
    if values.shape != (count,):
        raise ValueError(f"{needed_by} needs {count} losses (one per gradient); got {values.size}")
    if not np.all(np.isfinite(values)):
        raise ValueError(f"{needed_by}: the losses contain NaN or infinite values")
    return values


def out(weights: np.ndarray | Tensor, like: Tensor) -> Tensor:
    """Weights as a tensor of ``like``'s dtype and device."""
    return torch.as_tensor(np.asarray(weights, dtype=np.float64)).to(device=like.device, dtype=like.dtype)


def check_range(key: str, value: float, *, ge: float | None = None, gt: float | None = None,
                lt: float | None = None, le: float | None = None) -> None:
    """Raise ``ConfigError('loss.options.<key>')`` unless ``value`` lies in the range."""
    problems = []
    if ge is not None and not value >= ge:
        problems.append(f"≥ {ge}")
    if gt is not None and not value > gt:
        problems.append(f"> {gt}")
    if lt is not None and not value < lt:
        problems.append(f"< {lt}")
    if le is not None and not value <= le:
        problems.append(f"≤ {le}")
    if problems:
        raise ConfigError(f"loss.options.{key}", f"must be {' and '.join(problems)}; got {value!r}")


def check_choice(key: str, value: object, choices: Sequence[object]) -> None:
    if value not in choices:
        raise ConfigError(f"loss.options.{key}", f"must be one of {list(choices)}; got {value!r}")


# ---------------------------------------------------------------- min-norm point of a convex hull

def min_norm_2(v11: float, v12: float, v22: float) -> float:
    """γ minimising |γ·x₁ + (1−γ)·x₂|² over [0, 1] from the dot products (Sener & Koltun, Alg. 1)."""
    denom = v11 + v22 - 2 * v12
    if denom <= 0:  # x₁ = x₂
        return 0.5 if v11 == v22 else float(v11 < v22)
    return float(np.clip((v22 - v12) / denom, 0.0, 1.0))


def min_norm_exact(m: np.ndarray) -> np.ndarray:
    """The simplex point α minimising αᵀMα, exactly: the KKT system of every support (small T only).

    Every candidate is a feasible point, so the minimum over all supports is the optimum (an
    optimum exists on an affinely independent support, whose KKT system is regular).
    """
    t = len(m)
    scale = max(float(np.max(np.abs(np.diag(m)))), 1e-300)
    best, best_value = np.eye(t)[int(np.argmin(np.diag(m)))], float(np.min(np.diag(m)))
    for size in range(2, t + 1):
        for support in combinations(range(t), size):
            idx = list(support)
            kkt = np.zeros((size + 1, size + 1))
            kkt[:size, :size] = m[np.ix_(idx, idx)]
            kkt[:size, size] = 1.0
            kkt[size, :size] = 1.0
            rhs = np.zeros(size + 1)
            rhs[size] = 1.0
            try:
                sol = np.linalg.solve(kkt, rhs)[:size]
            except np.linalg.LinAlgError:
                continue
            if not np.all(np.isfinite(sol)) or sol.min() < -1e-9:
                continue
            alpha = np.zeros(t)
            alpha[idx] = np.clip(sol, 0.0, None)
            alpha /= alpha.sum()
            value = float(alpha @ m @ alpha)
            if value < best_value - 1e-13 * scale:
                best, best_value = alpha, value
    return best


def min_norm_frank_wolfe(m: np.ndarray, max_iter: int, tol: float) -> np.ndarray:
    """Frank–Wolfe on the simplex with exact line search (Sener & Koltun 2018, Algorithm 2).

    Starts from the best pair (the closed-form two-point solution), then moves toward the vertex
    of the smallest directional derivative until the step changes α by less than ``tol`` (L1).
    """
    t = len(m)
    if t == 1:
        return np.ones(1)
    best, best_value = None, np.inf
    for i, j in combinations(range(t), 2):
        gamma = min_norm_2(m[i, i], m[i, j], m[j, j])
        value = gamma**2 * m[i, i] + 2 * gamma * (1 - gamma) * m[i, j] + (1 - gamma) ** 2 * m[j, j]
        if value < best_value:
            best_value, best = value, (i, j, gamma)
    i, j, gamma = best
    alpha = np.zeros(t)
    alpha[i], alpha[j] = gamma, 1 - gamma
    for _ in range(max_iter):
        k = int(np.argmin(m @ alpha))
        v11, v12, v22 = float(alpha @ m @ alpha), float(alpha @ m[:, k]), float(m[k, k])
        gamma = min_norm_2(v11, v12, v22)
        new = gamma * alpha
        new[k] += 1 - gamma
        if np.abs(new - alpha).sum() < tol:
            alpha = new
            break
        alpha = new
    return alpha
