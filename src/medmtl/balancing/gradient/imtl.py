"""IMTL-G (Liu et al., "Towards Impartial Multi-task Learning", ICLR 2021), the gradient part."""

from __future__ import annotations

from torch import Tensor

from medmtl.balancing.base import GradientBalancer, GradientBalancerOptions
from medmtl.balancing.gradient.functional import imtl_g_weights


class IMTLGOptions(GradientBalancerOptions):
    """``imtl`` has no options besides ``level``."""


class IMTLG(GradientBalancer):
    """Σ α = 1 and equal projections of the update onto every unit task gradient (closed form);
    see :func:`~medmtl.balancing.gradient.functional.imtl_g_weights`."""

    Options = IMTLGOptions

    def task_weights(self, grads: Tensor, losses: list[Tensor]) -> Tensor:
        return imtl_g_weights(grads)
