"""Losses that torch and MONAI do not provide."""

from medmtl.losses.cox import CoxLoss, cox_partial_likelihood_loss

__all__ = ["CoxLoss", "cox_partial_likelihood_loss"]
