"""Losses that torch and MONAI do not provide."""

from medmtl.losses.cox import CoxLoss, cox_partial_likelihood_loss
from medmtl.losses.cox_distributed import distributed_cox_loss, gather_survival

__all__ = ["CoxLoss", "cox_partial_likelihood_loss", "distributed_cox_loss", "gather_survival"]
