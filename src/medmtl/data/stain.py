"""H&E colour augmentation: random scaling and shifting of the stains (HED jitter).

Tellez et al. (2018, mitosis detection with PHH3 as reference; 2019, "Quantifying the effects of
data augmentation and stain color normalization…"; used again for Neural Image Compression)
separate an RGB image into Haematoxylin, Eosin and DAB channels by colour deconvolution (Ruifrok &
Johnston's matrix, scikit-image's ``hed_from_rgb``), change each channel as
``s' = s * alpha + beta`` with ``alpha ~ U(1 - sigma, 1 + sigma)`` and ``beta ~ U(-sigma, sigma)``,
and convert back; this mimics slides stained and scanned differently.

Stain space: the one of the papers' code (DIAG's pathology augmentation, built on scikit-image
before 0.19): ``stains = -ln(rgb + 2) @ hed_from_rgb``, inverted exactly by
``rgb = exp(-stains @ rgb_from_hed) - 2``. Today's ``skimage.color.rgb2hed`` uses the optical
density ``-ln(rgb) / ln(1e6)`` instead, where tissue holds stain amounts of only 0.02 to 0.13:
there a bias of 0.05 (the papers' "light" setting) is a layer of stain over the whole patch that
turns glass cyan, orange or yellow and can wipe out pale eosin, so the papers' ranges do not
carry over; ``rgb2hed`` also clips negative amounts, so that ``hed2rgb(rgb2hed(x))`` changes pale
eosin by about 3/255 and saturated colours by up to 1. Here ``strength`` is the papers' sigma:
0.05 is their HED-light, 0.2 their HED-strong (Tellez et al. 2019); 0.1 is a heavy jitter that
still looks like H&E.
"""

from __future__ import annotations

import torch
from skimage.color import hed_from_rgb, rgb_from_hed

from medmtl.data.sample import Sample, Transform
from medmtl.errors import ConfigError

HED_FROM_RGB = torch.as_tensor(hed_from_rgb, dtype=torch.float32)  # [3 rgb, 3 stains]
RGB_FROM_HED = torch.as_tensor(rgb_from_hed, dtype=torch.float32)  # [3 stains, 3 rgb]
_OFFSET = 2.0  # rgb + 2 in the logarithm: the papers' stain space (see the module docstring)


def _mix(image: torch.Tensor, matrix: torch.Tensor) -> torch.Tensor:
    """``out[..., j, h, w] = sum_i image[..., i, h, w] * matrix[i, j]``."""
    return torch.einsum("...ihw,ij->...jhw", image, matrix.to(image.device, image.dtype))


def rgb_to_hed(image: torch.Tensor) -> torch.Tensor:
    """Stain channels ``[..., 3 (H, E, DAB), H, W]`` of RGB ``[..., 3, H, W]`` in [0, 1] (float,
    the papers' space ``-ln(rgb + 2) @ hed_from_rgb``)."""
    return _mix(-torch.log(image.clamp(0, 1) + _OFFSET), HED_FROM_RGB)


def hed_to_rgb(stains: torch.Tensor) -> torch.Tensor:
    """RGB ``[..., 3, H, W]`` clipped to [0, 1] of stain channels ``[..., 3, H, W]`` (the inverse
    of :func:`rgb_to_hed`)."""
    return (torch.exp(-_mix(stains, RGB_FROM_HED)) - _OFFSET).clamp(0, 1)


def hed_jitter(image: torch.Tensor, alpha: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
    """RGB ``[3, H, W]`` in [0, 1] with each stain ``k`` changed to ``s_k * alpha[k] + beta[k]``.

    ``alpha``, ``beta``: float ``[3]`` (H, E, DAB). Returns a new float tensor of the image's
    dtype, clipped to [0, 1]; ``alpha = 1, beta = 0`` gives the image back (to float precision).
    """
    stains = rgb_to_hed(image.float())
    stains = stains * alpha.float().view(3, 1, 1) + beta.float().view(3, 1, 1)
    return hed_to_rgb(stains).to(image.dtype)


def check_rgb(image: torch.Tensor) -> None:
    """:class:`ConfigError` unless ``image`` is ``[3, H, W]`` (H&E augmentation needs colour)."""
    if image.ndim != 3 or image.shape[0] != 3:
        channels = image.shape[0] if image.ndim == 3 else f"shape {tuple(image.shape)}"
        raise ConfigError("data.augment.hed", f"H&E colour augmentation needs RGB images [3, H, W], got "
                                              f"{channels} channel(s); set data.channels: 3 for colour "
                                              "slides or data.augment.hed: 0")


class RandomHEDJitter(Transform):
    """Per-stain ``alpha ~ U(1 - s, 1 + s)`` and ``beta ~ U(-s, s)`` (``s = strength``: 0.05 light,
    0.2 strong), with probability ``p``; the image only (mask and boxes are untouched)."""

    random = True

    def __init__(self, strength: float = 0.05, p: float = 1.0, generator: torch.Generator | None = None) -> None:
        super().__init__(generator)
        if not 0.0 <= strength <= 1.0:
            raise ConfigError("data.augment.hed", f"must be in [0, 1], not {strength!r}")
        self.strength = float(strength)
        self.p = p

    def apply(self, sample: Sample, generator: torch.Generator | None) -> Sample:
        check_rgb(sample["image"])
        # drawn whether applied or not, so that later transforms see the same random stream
        draws = torch.rand(7, generator=generator, dtype=torch.float64)
        if not (float(draws[6]) < self.p and self.strength > 0):
            return sample
        alpha = 1.0 + self.strength * (2.0 * draws[0:3] - 1.0)
        beta = self.strength * (2.0 * draws[3:6] - 1.0)
        out = dict(sample)
        out["image"] = hed_jitter(sample["image"], alpha, beta)
        return out


__all__ = ["HED_FROM_RGB", "RGB_FROM_HED", "RandomHEDJitter", "check_rgb", "hed_jitter", "hed_to_rgb", "rgb_to_hed"]
