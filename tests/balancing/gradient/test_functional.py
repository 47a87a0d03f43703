"""The math of the gradient-level balancers (medmtl.balancing.gradient.functional)."""

import numpy as np
import pytest
import torch
from scipy.optimize import minimize

from medmtl.balancing.gradient import functional as F
from medmtl.errors import ConfigError


def t64(rows):
    return torch.tensor(rows, dtype=torch.float64)


def random_grads(t, d, seed):
    return torch.randn(t, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


# ------------------------------------------------------------------------------------------- MGDA-UB

@pytest.mark.parametrize("solver", ["exact", "frank_wolfe"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_mgda_two_gradients_closed_form(solver, seed):
    g = random_grads(2, 5, seed)
    g1, g2 = g
    gamma = float(torch.clamp((g2 - g1) @ g2 / (g1 - g2).norm() ** 2, 0, 1))
    w = F.mgda_weights(g, solver=solver)
    assert w.tolist() == pytest.approx([gamma, 1 - gamma], abs=1e-9)


def test_mgda_two_gradients_clipped_end_point():
    g = t64([[1.0, 0.0], [3.0, 1.0]])  # g1 is the min-norm point: γ clips to 1
    assert F.mgda_weights(g).tolist() == pytest.approx([1.0, 0.0])


@pytest.mark.parametrize("solver,abs_tol", [("exact", 1e-9), ("frank_wolfe", 1e-4)])
@pytest.mark.parametrize("seed", [3, 4, 5])
def test_mgda_three_gradients_against_simplex_grid(solver, abs_tol, seed):
    g = random_grads(3, 4, seed) + torch.tensor([0.5, 0, 0, 0], dtype=torch.float64)
    m = (g @ g.T).numpy()
    steps = np.linspace(0, 1, 201)
    grid = np.array([(a, b, 1 - a - b) for a in steps for b in steps if a + b <= 1 + 1e-12])
    grid = np.clip(grid, 0, None)
    best = np.min(np.einsum("ni,ij,nj->n", grid, m, grid))
    w = F.mgda_weights(g, solver=solver, max_iter=5000, tol=1e-12)
    assert float(w.sum()) == pytest.approx(1.0) and float(w.min()) >= 0
    value = float(w @ torch.tensor(m) @ w)
    assert value <= best + 1e-12  # never worse than the grid …
    assert value == pytest.approx(best, abs=max(1e-3 * best, abs_tol))  # … and the grid is close


def test_mgda_one_gradient_is_the_min_norm_point():
    g = t64([[1.0, 0.0], [2.0, 1.0], [2.0, -1.0]])  # g1·gj ≥ |g1|² for all j
    for solver in ("exact", "frank_wolfe"):
        assert F.mgda_weights(g, solver=solver).tolist() == pytest.approx([1.0, 0.0, 0.0], abs=1e-9)


def test_mgda_frank_wolfe_matches_exact_on_many_tasks():
    g = random_grads(6, 10, 7)
    m = g @ g.T
    exact = F.mgda_weights(g, solver="exact")
    fw = F.mgda_weights(g, solver="frank_wolfe", max_iter=20000, tol=1e-14)
    assert float(fw @ m @ fw) == pytest.approx(float(exact @ m @ exact), rel=1e-4, abs=1e-10)


def test_mgda_normalizations():
    g = t64([[3.0, 0.0], [0.0, 1.0]])
    losses = [torch.tensor(2.0), torch.tensor(0.5)]
    # l2: normalised gradients are unit and orthogonal → α = (½, ½) applied to the raw losses
    assert F.mgda_weights(g, normalization="l2").tolist() == pytest.approx([0.5, 0.5])
    # none: min-norm of (3,0),(0,1): γ = 1/10
    assert F.mgda_weights(g).tolist() == pytest.approx([0.1, 0.9])
    # loss: ĝ = (1.5, 0), (0, 2) → γ = 4 / 6.25
    assert F.mgda_weights(g, losses, normalization="loss").tolist() == pytest.approx([0.64, 0.36])
    # loss+: ĝ = (0.5, 0), (0, 2) → γ = 4 / 4.25
    assert F.mgda_weights(g, losses, normalization="loss+").tolist() == pytest.approx([4 / 4.25, 0.25 / 4.25])
    with pytest.raises(ValueError, match="needs the task losses"):
        F.mgda_weights(g, normalization="loss")
    with pytest.raises(ConfigError, match="loss.options.normalization"):
        F.mgda_weights(g, normalization="l1")
    with pytest.raises(ConfigError, match="loss.options.max_iter"):
        F.mgda_weights(g, max_iter=0)


def test_mgda_returns_input_dtype():
    g = random_grads(3, 4, 0).float()
    assert F.mgda_weights(g).dtype == torch.float32


# -------------------------------------------------------------------------------------------- PCGrad

def test_pcgrad_conflicting_gradients_project_as_in_the_paper():
    g1, g2 = t64([1.0, 0.0]), t64([-1.0, 2.0])
    assert float(g1 @ g2) < 0
    p1 = g1 - (g1 @ g2) / (g2 @ g2) * g2
    p2 = g2 - (g2 @ g1) / (g1 @ g1) * g1
    g = torch.stack([g1, g2])
    w = F.pcgrad_weights(g, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(w @ g, p1 + p2)
    assert float(p1 @ g2) == pytest.approx(0.0) and float(p2 @ g1) == pytest.approx(0.0)
    assert torch.allclose(F.pcgrad_weights(g, reduction="mean") @ g, (p1 + p2) / 2)


def test_pcgrad_non_conflicting_unchanged():
    g = t64([[1.0, 0.5], [0.2, 1.0]])
    assert F.pcgrad_weights(g).tolist() == pytest.approx([1.0, 1.0])


def test_pcgrad_three_tasks_matches_direct_projection():
    g = t64([[1.0, 0.0, 0.0], [-0.8, 1.0, 0.0], [-0.3, -0.9, 1.0]])
    gen_a, gen_b = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    w = F.pcgrad_weights(g, generator=gen_a)
    total = torch.zeros(3, dtype=torch.float64)
    for i in range(3):  # the paper's loop, on vectors, with the same random orders
        gi = g[i].clone()
        for j in torch.randperm(3, generator=gen_b).tolist():
            if j != i and gi @ g[j] < 0:
                gi = gi - (gi @ g[j]) / (g[j] @ g[j]) * g[j]
        total += gi
    assert torch.allclose(w @ g, total)
    with pytest.raises(ConfigError, match="loss.options.reduction"):
        F.pcgrad_weights(g, reduction="max")


# -------------------------------------------------------------------------------------------- CAGrad

def test_cagrad_c_zero_is_the_mean_gradient():
    g = random_grads(3, 5, 1)
    for rescale in (0, 1, 2):
        assert F.cagrad_weights(g, c=0.0, rescale=rescale).tolist() == pytest.approx([1 / 3] * 3)


@pytest.mark.parametrize("c", [0.3, 0.8])
def test_cagrad_direction_solves_the_primal_problem(c):
    g = t64([[1.0, 0.2, 0.0], [-0.6, 1.0, 0.3], [0.1, -0.5, 1.0]])
    g0 = g.mean(0)
    d = F.cagrad_weights(g, c=c, rescale=0) @ g
    radius = c * float(g0.norm())
    assert float((d - g0).norm()) == pytest.approx(radius, rel=1e-4)  # on the ball's boundary

    # primal: max_{d, s} s subject to gᵢ·d ≥ s and |d − g₀|² ≤ r², solved independently by SLSQP
    gn, g0n = g.numpy(), g0.numpy()
    res = minimize(lambda z: -z[-1], np.concatenate([g0n, [0.0]]), method="SLSQP",
                   constraints=[{"type": "ineq", "fun": lambda z: gn @ z[:-1] - z[-1]},
                                {"type": "ineq", "fun": lambda z: radius**2 - np.sum((z[:-1] - g0n) ** 2)}],
                   options={"ftol": 1e-12, "maxiter": 500})
    assert res.success
    assert float((g @ d).min()) == pytest.approx(-res.fun, rel=1e-4)
    # rescale 1 (the authors' default) and 2 divide by 1 + c² and 1 + c
    assert torch.allclose(F.cagrad_weights(g, c=c) @ g, d / (1 + c**2), rtol=1e-4)
    assert torch.allclose(F.cagrad_weights(g, c=c, rescale=2) @ g, d / (1 + c), rtol=1e-4)


def test_cagrad_options():
    g = random_grads(2, 3, 0)
    with pytest.raises(ConfigError, match="loss.options.c"):
        F.cagrad_weights(g, c=-0.1)
    with pytest.raises(ConfigError, match="loss.options.rescale"):
        F.cagrad_weights(g, rescale=3)


# -------------------------------------------------------------------------------------------- IMTL-G

@pytest.mark.parametrize("t,seed", [(2, 0), (3, 1), (5, 2)])
def test_imtl_equal_projections_on_unit_gradients(t, seed):
    g = random_grads(t, 8, seed) * torch.tensor([1.0, 10.0, 0.1, 3.0, 0.5][:t], dtype=torch.float64)[:, None]
    w = F.imtl_g_weights(g)
    assert float(w.sum()) == pytest.approx(1.0)
    projections = (w @ g) @ (g / g.norm(dim=1, keepdim=True)).T
    assert torch.allclose(projections, projections[0].expand(t), rtol=1e-8, atol=1e-10)


def test_imtl_orthogonal_gradients():
    g = t64([[2.0, 0.0], [0.0, 0.5]])
    w = F.imtl_g_weights(g)  # equal projections: 2·w1 = 0.5·w2, Σ = 1
    assert w.tolist() == pytest.approx([0.2, 0.8])
    assert F.imtl_g_weights(t64([[2.0, 0.0], [0.0, 0.0]])).tolist() == [1.0, 0.0]


# ------------------------------------------------------------------------------------------ Nash-MTL

@pytest.mark.parametrize("t,seed", [(2, 0), (3, 1), (4, 2)])
def test_nash_first_order_condition(t, seed):
    g = random_grads(t, 20, seed) * 3.0  # random 20-D: well conditioned
    alpha = F.nash_mtl_weights(g)
    assert float(alpha.min()) > 0
    condition = (g @ g.T @ alpha) * alpha
    assert condition.tolist() == pytest.approx([1.0] * t, abs=1e-5)


def test_nash_orthogonal_gradients():
    g = t64([[2.0, 0.0, 0.0], [0.0, 0.5, 0.0], [0.0, 0.0, 4.0]])
    assert F.nash_mtl_weights(g).tolist() == pytest.approx([0.5, 2.0, 0.25])


def test_nash_max_norm_and_options():
    g = t64([[2.0, 0.0], [0.0, 0.5]])
    w = F.nash_mtl_weights(g, max_norm=1.0)  # unclipped |d| = √2
    assert float((w @ g).norm()) == pytest.approx(1.0)
    assert F.nash_mtl_weights(g, init=torch.tensor([1.0, 1.0])).tolist() == pytest.approx([0.5, 2.0])
    with pytest.raises(ConfigError, match="loss.options.max_norm"):
        F.nash_mtl_weights(g, max_norm=-1)
    with pytest.raises(ConfigError, match="loss.options.optim_niter"):
        F.nash_mtl_weights(g, optim_niter=0)


# --------------------------------------------------------------------------------------- Aligned-MTL

def test_aligned_orthogonal_gradients_get_equal_norms():
    g = t64([[3.0, 0.0, 0.0], [0.0, 0.5, 0.0], [0.0, 0.0, 2.0]])
    w = F.aligned_mtl_weights(g)
    aligned = w[:, None] * g  # orthogonal: B = σ_min·diag(1/|gᵢ|)
    assert aligned.norm(dim=1).tolist() == pytest.approx([0.5] * 3)
    assert torch.allclose(w @ g, aligned.sum(0))


@pytest.mark.parametrize("seed", [0, 1])
def test_aligned_system_is_orthogonal_with_condition_one(seed):
    g = random_grads(3, 6, seed)
    m = (g @ g.T).numpy()
    lam, v = np.linalg.eigh(m)
    b = np.sqrt(lam.min()) * v @ np.diag(lam**-0.5) @ v.T
    aligned = torch.tensor(b) @ g
    assert np.allclose((aligned @ aligned.T).numpy(), lam.min() * np.eye(3))
    assert torch.allclose(F.aligned_mtl_weights(g) @ g, aligned.sum(0))
    median = F.aligned_mtl_weights(g, scale="median")
    assert torch.allclose(median, F.aligned_mtl_weights(g) * np.median(np.sqrt(lam)) / np.sqrt(lam.min()))


def test_aligned_rank_deficient_and_options():
    g = t64([[1.0, 0.0], [2.0, 0.0]])  # rank 1: the aligned system spans one direction
    w = F.aligned_mtl_weights(g)
    assert torch.isfinite(w).all()
    with pytest.raises(ConfigError, match="loss.options.scale"):
        F.aligned_mtl_weights(g, scale="max")


# -------------------------------------------------------------------------------------------- DB-MTL

def test_db_mtl_normalises_log_loss_gradients_to_the_max_norm():
    g = t64([[2.0, 0.0], [0.0, 3.0]])
    losses = [torch.tensor(2.0), torch.tensor(0.5)]
    w, ema = F.db_mtl_weights(g, losses, beta=0.0, eps=1e-12)
    # ∇log L: (1, 0) and (0, 6); scaled to norm 6 → (6, 0), (0, 6)
    assert torch.allclose(ema, t64([[1.0, 0.0], [0.0, 6.0]]))
    assert torch.allclose(w @ g, t64([6.0, 6.0]))
    assert w.tolist() == pytest.approx([3.0, 2.0])


def test_db_mtl_ema_of_the_gradients():
    g = t64([[2.0, 0.0], [0.0, 3.0]])
    losses = torch.tensor([2.0, 0.5], dtype=torch.float64)
    previous = t64([[0.0, 0.0], [0.0, 2.0]])
    w, ema = F.db_mtl_weights(g, losses, ema=previous, beta=0.8, beta_sigma=0.5, step=4, eps=1e-12)
    beta_t = 0.8 / 4**0.5  # 0.4
    h = t64([[1.0, 0.0], [0.0, 6.0]])
    assert torch.allclose(ema, h + beta_t * (previous - h))  # [[0.6, 0], [0, 4.4]]
    alpha = torch.tensor([4.4 / 0.6, 1.0], dtype=torch.float64)
    assert torch.allclose(w, alpha / losses)
    with pytest.raises(ConfigError, match="loss.options.beta"):
        F.db_mtl_weights(g, losses, beta=1.0)
    with pytest.raises(ValueError, match="losses"):
        F.db_mtl_weights(g, None)


# ------------------------------------------------------------------------------------------- generic

@pytest.mark.parametrize("fn", [F.mgda_weights, F.pcgrad_weights, F.cagrad_weights, F.imtl_g_weights,
                                F.nash_mtl_weights, F.aligned_mtl_weights])
def test_shape_dtype_and_bad_input(fn):
    g = random_grads(3, 7, 11).float()
    w = fn(g)
    assert w.shape == (3,) and w.dtype == torch.float32 and torch.isfinite(w).all()
    with pytest.raises(ValueError, match=r"\[T, D\]"):
        fn(torch.zeros(3))
    with pytest.raises(ValueError, match="NaN"):
        fn(torch.tensor([[float("nan"), 1.0], [0.0, 1.0]]))

