"""Gradient-level multi-task balancing as pure functions: ``<method>_weights(grads [T, D]) -> w [T]``.

Each method's combined update direction is exactly ``w @ grads`` (Σᵢ wᵢ·gᵢ): every method here
combines the task gradients linearly, so returning the coefficients is exact and lets the training
step back-propagate ``Σ wᵢ·Lᵢ`` instead of writing gradients by hand. The one ``G Gᵀ`` (and DB-MTL's
EMA) runs in the gradients' own dtype and device; everything after it is float64 on the CPU (the
T×T Gram matrix and small vectors); the weights come back in the dtype and on the device of
``grads``. Out-of-range options raise
``ConfigError('loss.options.<key>', ...)``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from scipy.optimize import minimize
from torch import Tensor

from medmtl.balancing.gradient._common import (
    as_losses,
    check_choice,
    check_grads,
    check_range,
    gram_of,
    min_norm_exact,
    min_norm_frank_wolfe,
    out,
    row_norms,
)

Losses = Sequence[Tensor | float] | Tensor | None

MGDA_NORMALIZATIONS = ("none", "l2", "loss", "loss+")
MGDA_SOLVERS = ("auto", "exact", "frank_wolfe")
#: ``solver="auto"`` solves exactly up to this many tasks (2^T small KKT systems), Frank–Wolfe above
EXACT_MAX_TASKS = 8


def min_norm_point(grads: Tensor, *, solver: str = "auto", max_iter: int = 250, tol: float = 1e-5) -> Tensor:
    """Simplex weights α of the min-norm point ``α @ grads`` of the convex hull of the rows."""
    return out(min_norm_of_gram(gram_of(grads), solver=solver, max_iter=max_iter, tol=tol), grads)


def min_norm_of_gram(m: np.ndarray, *, solver: str = "auto", max_iter: int = 250, tol: float = 1e-5) -> np.ndarray:
    """:func:`min_norm_point` from the Gram matrix ``m = G Gᵀ`` ``[T, T]`` (float64 numpy)."""
    check_choice("solver", solver, MGDA_SOLVERS)
    check_range("max_iter", max_iter, ge=1)
    check_range("tol", tol, gt=0)
    if solver == "exact" or (solver == "auto" and len(m) <= EXACT_MAX_TASKS):
        return min_norm_exact(m)
    return min_norm_frank_wolfe(m, max_iter, tol)


def mgda_weights(grads: Tensor, losses: Losses = None, *, normalization: str = "none", solver: str = "auto",
                 max_iter: int = 250, tol: float = 1e-5) -> Tensor:
    """MGDA-UB (Sener & Koltun, "Multi-Task Learning as Multi-Objective Optimization", NeurIPS 2018).

    α = argmin over the simplex of |Σ αᵢ·ĝᵢ|² with ĝᵢ = gᵢ / nᵢ, the gradients normalised as in the
    paper's code: ``none`` nᵢ = 1, ``l2`` nᵢ = |gᵢ|, ``loss`` nᵢ = Lᵢ, ``loss+`` nᵢ = Lᵢ·|gᵢ|
    (``loss``/``loss+`` need ``losses``). As in the authors' implementation the weights α then
    scale the *unnormalised* losses, so the returned w = α (≥ 0, Σ = 1) and the update is Σ αᵢ·gᵢ;
    with ``none`` this is the min-norm point of the convex hull of the gradients itself.

    ``solver``: ``exact`` (the KKT system of every support, exact, for small T), ``frank_wolfe``
    (the paper's Algorithm 2, ``max_iter`` steps, stops when α moves by < ``tol`` in L1; the
    paper's line search, with exact 0/1 end points instead of its 0.001/0.999), ``auto`` (exact for
    T ≤ 8). MGDA-UB's "upper bound" is the choice of g = gradients w.r.t. the shared representation,
    which is the balancer's ``level="representation"``.
    """
    check_choice("normalization", normalization, MGDA_NORMALIZATIONS)
    m = gram_of(grads)
    if normalization != "none":  # ĝᵢ = gᵢ / nᵢ: the Gram matrix of the ĝ is m / (n nᵀ)
        norms = np.sqrt(np.clip(np.diag(m), 0.0, None))
        if normalization == "l2":
            scale = norms
        else:
            values = as_losses(losses, len(m), needed_by=f"MGDA normalization '{normalization}'")
            if np.any(values <= 0):
                raise ValueError(f"MGDA normalization '{normalization}' needs positive losses; got {values}")
            scale = values * norms if normalization == "loss+" else values
        scale = np.maximum(scale, 1e-300)
        m = m / np.outer(scale, scale)
    return out(min_norm_of_gram(m, solver=solver, max_iter=max_iter, tol=tol), grads)


def pcgrad_weights(grads: Tensor, *, generator: torch.Generator | None = None, reduction: str = "sum") -> Tensor:
    """PCGrad (Yu et al., "Gradient Surgery for Multi-Task Learning", NeurIPS 2020), Algorithm 1.

    For every task i, g'ᵢ starts at gᵢ and, for the other tasks j in a random order (drawn from
    ``generator``, one permutation per i), if g'ᵢ·gⱼ < 0 it is projected on the normal plane of the
    original gⱼ: g'ᵢ ← g'ᵢ − (g'ᵢ·gⱼ / |gⱼ|²)·gⱼ. Each g'ᵢ stays a linear combination Σⱼ Cᵢⱼ·gⱼ
    (C = I at the start; a projection subtracts from Cᵢⱼ), so the update Σᵢ g'ᵢ (``reduction="sum"``,
    the paper) or its mean (``"mean"``) is w @ G with w = Σᵢ Cᵢ (or / T).
    """
    check_choice("reduction", reduction, ("sum", "mean"))
    m = gram_of(grads)
    t = len(m)
    coefficients = np.eye(t)
    for i in range(t):
        order = torch.randperm(t, generator=generator).tolist()
        for j in order:
            if j == i or m[j, j] <= 0:
                continue
            dot = float(coefficients[i] @ m[:, j])  # g'ᵢ · gⱼ
            if dot < 0:
                coefficients[i, j] -= dot / m[j, j]
    weights = coefficients.sum(axis=0)
    return out(weights / t if reduction == "mean" else weights, grads)


def cagrad_dual(m: np.ndarray, c: float, *, max_iter: int = 100) -> np.ndarray:
    """Simplex weights w of CAGrad's dual min_w g_wᵀg₀ + c·|g₀|·|g_w| (g_w = Σ wᵢgᵢ) via SLSQP."""
    t = len(m)
    if t == 1:
        return np.ones(1)
    b = np.full(t, 1.0 / t)
    mb = m @ b
    g0_norm = np.sqrt(max(float(b @ mb), 0.0) + 1e-8)
    cc = c * g0_norm + 1e-8

    def objective(x: np.ndarray) -> float:
        return float(x @ mb + cc * np.sqrt(max(float(x @ m @ x), 0.0) + 1e-8))

    def gradient(x: np.ndarray) -> np.ndarray:
        return mb + cc * (m @ x) / np.sqrt(max(float(x @ m @ x), 0.0) + 1e-8)

    res = minimize(objective, b, jac=gradient, method="SLSQP", bounds=[(0.0, 1.0)] * t,
                   constraints=({"type": "eq", "fun": lambda x: 1.0 - x.sum(), "jac": lambda x: -np.ones(t)},),
                   options={"maxiter": max_iter, "ftol": 1e-12})
    w = np.clip(res.x, 0.0, None)
    return w / w.sum() if w.sum() > 0 else b


def cagrad_weights(grads: Tensor, *, c: float = 0.5, rescale: int = 1, max_iter: int = 100) -> Tensor:
    """CAGrad (Liu et al., "Conflict-Averse Gradient Descent for Multi-task Learning", NeurIPS 2021).

    d = argmax_d minᵢ gᵢ·d subject to |d − g₀| ≤ c·|g₀|, with g₀ the mean gradient. Through the
    dual, w = argmin over the simplex of g_wᵀg₀ + c·|g₀|·|g_w| (solved with SLSQP as in the
    authors' code) and d = g₀ + (c·|g₀| / |g_w|)·g_w, i.e. weights 1/T + λ·wᵢ with λ = c|g₀|/|g_w|.
    ``rescale`` as in the authors' code: 0 returns d, 1 (their default) d / (1 + c²), 2 d / (1 + c).
    With c = 0 the update is the mean gradient (w = 1/T each) for every ``rescale``. The constants
    1e-8 of the authors' code are kept (|g₀| and |g_w| stabilised), so for c = 0 the weights are
    1/T up to ~1e-8 relative.
    """
    check_range("c", c, ge=0)
    check_choice("rescale", rescale, (0, 1, 2))
    check_range("max_iter", max_iter, ge=1)
    m = gram_of(grads)
    t = len(m)
    mean = np.full(t, 1.0 / t)
    if c == 0:
        return out(mean, grads)
    w = cagrad_dual(m, c, max_iter=max_iter)
    g0_norm = np.sqrt(max(float(mean @ m @ mean), 0.0) + 1e-8)
    gw_norm = np.sqrt(max(float(w @ m @ w), 0.0))
    lam = (c * g0_norm + 1e-8) / (gw_norm + 1e-8)
    weights = mean + lam * w
    weights = weights / {0: 1.0, 1: 1.0 + c**2, 2: 1.0 + c}[rescale]
    return out(weights, grads)


def imtl_g_weights(grads: Tensor) -> Tensor:
    """IMTL-G (Liu et al., "Towards Impartial Multi-task Learning", ICLR 2021), the gradient part.

    The closed form of the paper: the combined g = Σ αᵢ·gᵢ with Σ αᵢ = 1 whose projections onto
    every unit task gradient uᵢ = gᵢ/|gᵢ| are equal (g·uᵢ = g·u₁). With D the rows g₁ − gᵢ and
    U the rows u₁ − uᵢ (i ≥ 2): α₂..T = g₁Uᵀ(DUᵀ)⁻¹, α₁ = 1 − Σ α₂..T. Computed from the Gram
    matrix; a singular DUᵀ (e.g. collinear gradients) is solved in the least-squares sense, and a
    zero gradient gets weight 0 (it has no direction) with the rest solved among the others.
    """
    m = gram_of(grads)
    t = len(m)
    norms = np.sqrt(np.clip(np.diag(m), 0.0, None))
    live = np.flatnonzero(norms > 1e-12 * max(norms.max(), 1e-300))
    alpha = np.zeros(t)
    if len(live) == 0:
        return out(np.full(t, 1.0 / t), grads)
    if len(live) == 1:
        alpha[live[0]] = 1.0
        return out(alpha, grads)
    ml, nl = m[np.ix_(live, live)], norms[live]
    gu = ml / nl[None, :]  # gu[k, i] = g_k · u_i
    g1u = gu[0, 0] - gu[0, 1:]  # g₁ · (u₁ − uᵢ)
    du = (gu[0, 0] - gu[0, 1:])[None, :] - (gu[1:, 0][:, None] - gu[1:, 1:])  # (g₁ − g_k)·(u₁ − uᵢ)
    # α D Uᵀ = g₁ Uᵀ  ⇔  (D Uᵀ)ᵀ αᵀ = (g₁ Uᵀ)ᵀ
    rest = np.linalg.lstsq(du.T, g1u, rcond=None)[0]
    alpha[live] = np.concatenate([[1.0 - rest.sum()], rest])
    return out(alpha, grads)


def nash_mtl_alpha(m: np.ndarray, *, niter: int = 20, init: np.ndarray | None = None,
                   tol: float = 1e-10) -> np.ndarray:
    """α > 0 with (Mα)ᵢ = 1/αᵢ: the minimiser of the convex ½αᵀMα − Σ log αᵢ, by damped Newton.

    Stops when maxᵢ |(Mα)ᵢ·αᵢ − 1| < ``tol`` or after ``niter`` Newton steps; returns the last
    iterate (no exact solution exists when a positive combination of the gradients vanishes, e.g.
    two opposite gradients: then α keeps growing along that combination).
    """
    diag = np.sqrt(np.clip(np.diag(m), 1e-300, None))
    alpha = 1.0 / diag if init is None or np.any(~(np.asarray(init) > 0)) else np.asarray(init, dtype=float)

    def objective(a: np.ndarray) -> float:
        return 0.5 * float(a @ m @ a) - float(np.log(a).sum())

    for _ in range(niter):
        residual = m @ alpha - 1.0 / alpha
        if np.max(np.abs(residual * alpha)) < tol:
            break
        hessian = m + np.diag(1.0 / alpha**2)
        try:
            step = np.linalg.solve(hessian, residual)
        except np.linalg.LinAlgError:
            break
        decrease, value, size = float(residual @ step), objective(alpha), 1.0
        while size > 1e-12:
            candidate = alpha - size * step
            if np.all(candidate > 0) and objective(candidate) <= value - 0.25 * size * decrease:
                break
            size *= 0.5
        else:
            break
        alpha = candidate
    return alpha


def nash_mtl_weights(grads: Tensor, *, max_norm: float = 0.0, optim_niter: int = 20,
                     init: Tensor | None = None) -> Tensor:
    """Nash-MTL (Navon et al., "Multi-Task Learning as a Bargaining Game", ICML 2022).

    The Nash bargaining solution d = Σ αᵢ·gᵢ with α > 0 solving G Gᵀ α = 1/α (element-wise),
    i.e. gᵢ·d = 1/αᵢ for every task. The paper approximates it by a sequence of convex problems
    (cvxpy); here the equivalent strictly convex problem min ½αᵀ(GGᵀ)α − Σ log αᵢ (its first-order
    condition is exactly GGᵀα = 1/α) is solved by damped Newton, at most ``optim_niter`` steps,
    from ``init`` (e.g. the previous α) or 1/|gᵢ|. The solution is scale-free (G → sG gives
    α → α/s, the same d); the authors' code divides GGᵀ by its Frobenius norm ν first, which
    multiplies their d by √ν. ``max_norm`` > 0 scales w down so |w @ G| ≤ ``max_norm`` (the authors
    clip the shared parameters' gradient norm to 1.0 instead); 0 disables.
    """
    check_range("max_norm", max_norm, ge=0)
    check_range("optim_niter", optim_niter, ge=1)
    m = gram_of(grads)
    start = None if init is None else init.detach().to("cpu", torch.float64).flatten().numpy()
    if start is not None and start.shape != (len(m),):
        start = None
    alpha = nash_mtl_alpha(m, niter=optim_niter, init=start)
    if max_norm > 0:
        norm = np.sqrt(max(float(alpha @ m @ alpha), 0.0))
        if norm > max_norm:
            alpha = alpha * (max_norm / norm)
    return out(alpha, grads)


ALIGNED_SCALES = ("min", "median", "rmse")


def aligned_mtl_weights(grads: Tensor, *, scale: str = "min") -> Tensor:
    """Aligned-MTL (Senushkin et al., "Independent Component Alignment for Multi-Task Learning",
    CVPR 2023), Algorithm 1 with equal task pre-weights.

    With M = G Gᵀ = V Λ Vᵀ (rank r, eigenvalues above the usual ``max λ · T · eps`` tolerance), the
    aligned gradient system Ĝ = B G with B = σ·V Λ^{-1/2} Vᵀ has Ĝ Ĝᵀ = σ² I on the span: the rows
    are orthogonal with equal norms σ (condition number 1). σ is the smallest singular value
    √λ_min (``scale="min"``, the paper), or their ``median`` / root-mean-square (``rmse``). The
    update is Σᵢ ĝᵢ = 1ᵀ B G, so w = B 1.
    """
    check_choice("scale", scale, ALIGNED_SCALES)
    m = gram_of(grads)
    t = len(m)
    lam, vec = np.linalg.eigh(m)
    tol = max(float(lam.max()), 0.0) * t * np.finfo(np.float64).eps
    keep = lam > tol
    if not np.any(keep):
        return out(np.zeros(t), grads)
    lam, vec = lam[keep], vec[:, keep]
    sigma = np.sqrt(lam)
    s = {"min": sigma.min(), "median": np.median(sigma), "rmse": np.sqrt(np.mean(lam))}[scale]
    b = s * (vec / sigma[None, :]) @ vec.T
    return out(b.sum(axis=1), grads)


def db_mtl_weights(grads: Tensor, losses: Losses, *, ema: Tensor | None = None, beta: float = 0.9,
                   beta_sigma: float = 0.5, step: int = 1, eps: float = 1e-8) -> tuple[Tensor, Tensor]:
    """DB-MTL (Lin et al., "Dual-Balancing for Multi-Task Learning", 2023): ``(w, new_ema)``.

    Loss-scale balancing: the gradient of log Lᵢ is hᵢ = gᵢ / (Lᵢ + eps). Gradient-magnitude
    balancing: the EMA mᵢ ← hᵢ + βₜ·(mᵢ − hᵢ), βₜ = ``beta`` / ``step``^``beta_sigma`` (the authors'
    code; ``ema=None`` starts at 0), and every task is scaled to the largest norm,
    αᵢ = maxⱼ|mⱼ| / (|mᵢ| + eps).

    The authors' update Σ αᵢ·mᵢ mixes past steps' gradients into the direction and is not a
    combination of the current gᵢ; the weights returned here, wᵢ = αᵢ / (Lᵢ + eps), give
    Σ αᵢ·hᵢ: the EMA sets the magnitudes, the current gradients the directions. With
    ``beta = 0`` (no EMA) this is exactly the authors' update.
    """
    check_range("beta", beta, ge=0, lt=1)
    check_range("beta_sigma", beta_sigma, ge=0)
    check_range("step", step, ge=1)
    check_range("eps", eps, gt=0)
    g = check_grads(grads)
    values = as_losses(losses, len(g), needed_by="DB-MTL")
    if np.any(values < 0):
        raise ValueError(f"DB-MTL takes log of the losses, which must be ≥ 0; got {values}")
    inv = 1.0 / (values + eps)
    h = g * torch.as_tensor(inv, dtype=g.dtype, device=g.device)[:, None]  # the one [T, D] temporary
    beta_t = beta / step**beta_sigma
    if ema is not None and tuple(ema.shape) == tuple(g.shape):
        h.lerp_(ema.detach().to(h), beta_t)  # m ← h + βₜ·(m − h), in place
    else:  # the EMA starts at 0
        h.mul_(1.0 - beta_t)
    norms = row_norms(h)
    alpha = norms.max() / (norms + eps)
    return out(alpha * inv, grads), h
