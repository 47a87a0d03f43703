"""MGDA-UB (Sener & Koltun, "Multi-Task Learning as Multi-Objective Optimization", NeurIPS 2018)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field
from torch import Tensor

from medmtl.balancing.base import GradientBalancer, GradientBalancerOptions
from medmtl.balancing.gradient.functional import mgda_weights


class MGDAOptions(GradientBalancerOptions):
    """Options of ``mgda``."""

    normalization: Literal["none", "l2", "loss", "loss+"] = Field(
        "none", description="gradient normalisation before the min-norm problem (the paper's code)")
    solver: Literal["auto", "exact", "frank_wolfe"] = Field(
        "auto", description="exact KKT enumeration (T ≤ 8 with auto) or the paper's Frank–Wolfe")
    max_iter: int = Field(250, ge=1, description="Frank–Wolfe iterations at most")
    tol: float = Field(1e-5, gt=0, description="Frank–Wolfe stops when α moves by less (L1)")


class MGDA(GradientBalancer):
    """Weights α ≥ 0, Σ α = 1 of the min-norm point of the (normalised) task gradients' convex hull;
    see :func:`~medmtl.balancing.gradient.functional.mgda_weights`."""

    Options = MGDAOptions

    def task_weights(self, grads: Tensor, losses: list[Tensor]) -> Tensor:
        o = self.options
        return mgda_weights(grads, losses, normalization=o.normalization, solver=o.solver,
                            max_iter=o.max_iter, tol=o.tol)
