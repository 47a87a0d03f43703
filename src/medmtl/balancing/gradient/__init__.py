"""Gradient-level multi-task balancers (against negative transfer): one module per method, each
citing its paper; the math is in :mod:`medmtl.balancing.gradient.functional` as pure functions
``<method>_weights(grads [T, D]) -> w [T]`` whose update is exactly ``w @ grads``."""

from __future__ import annotations

from medmtl.balancing.gradient.aligned_mtl import AlignedMTL, AlignedMTLOptions
from medmtl.balancing.gradient.cagrad import CAGrad, CAGradOptions
from medmtl.balancing.gradient.db_mtl import DBMTL, DBMTLOptions
from medmtl.balancing.gradient.gradnorm import GradNorm, GradNormOptions
from medmtl.balancing.gradient.imtl import IMTLG, IMTLGOptions
from medmtl.balancing.gradient.mgda import MGDA, MGDAOptions
from medmtl.balancing.gradient.nash_mtl import NashMTL, NashMTLOptions
from medmtl.balancing.gradient.pcgrad import PCGrad, PCGradOptions

GRADIENT_BALANCERS = {"mgda": MGDA, "pcgrad": PCGrad, "cagrad": CAGrad, "imtl": IMTLG, "nash_mtl": NashMTL,
                      "aligned_mtl": AlignedMTL, "db_mtl": DBMTL, "gradnorm": GradNorm}

__all__ = ["DBMTL", "GRADIENT_BALANCERS", "IMTLG", "MGDA", "AlignedMTL", "AlignedMTLOptions", "CAGrad",
           "CAGradOptions", "DBMTLOptions", "GradNorm", "GradNormOptions", "IMTLGOptions", "MGDAOptions",
           "NashMTL", "NashMTLOptions", "PCGrad", "PCGradOptions"]
