"""Phantom breast-ultrasound images: medmtl's built-in demo data.

Each image is a B-mode-like picture of a probe looking down into tissue:

- **Background**: skin line, subcutaneous fat with dark lobules and bright Cooper's ligaments,
  textured fibroglandular tissue, and a striated pectoral muscle at depth; layer boundaries
  wave; echogenicity falls with depth (imperfect time-gain compensation).
- **Speckle**: fully developed speckle (the magnitude of smoothed complex Gaussian noise,
  Rayleigh-like, grains elongated laterally, lightly compounded) multiplies the echogenicity;
  the envelope is then compressed (power 0.6) to display grey levels.
- **Benign lesion** (fibroadenoma/cyst-like): oval, wider than tall, smooth or gently lobulated
  border, sharp margin, hypoechoic and homogeneous, sometimes a thin echogenic capsule,
  posterior acoustic enhancement.
- **Malignant lesion** (carcinoma-like): irregular, angular contour (many harmonics of radial
  noise) with thin spicules, indistinct margin with an echogenic halo, darker and heterogeneous,
  often taller than wide, posterior acoustic shadowing.
- Occasionally (about 1 in 8 lesion images) a second, smaller lesion of the same kind.

Targets of each record: ``label`` (0 benign, 1 malignant, 2 normal when normal images are asked
for), ``mask`` (label map, 1 = lesion; empty for normal images; ``boxes`` follow from it, one per
lesion), ``value`` = equivalent diameter of the lesion area divided by the image width
(``sqrt(4 * area / pi) / size``; 0 for normal images), and ``survival`` = (time in months,
event) drawn from an exponential model with hazard ``exp(-4.1 + 1.2 * malignant + 0.8 * z)``,
``z`` the standardised equivalent diameter, censored at random (independent exponential
censoring, about 30 %).

Images are fully determined by ``(seed, stream, index)``.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage

from medmtl.data.records import Record

BENIGN, MALIGNANT, NORMAL = 0, 1, 2
CENSORED_FRACTION = 0.3
COMPRESSION = 0.6
DISPLAY_SCALE = 0.6
SECOND_LESION_PROBABILITY = 0.125
LOG_BASE_HAZARD = -4.1  # benign, average size: median survival about 42 months
BETA_MALIGNANT = 1.2
BETA_SIZE = 0.8
SIZE_MEAN, SIZE_STD = 0.25, 0.08  # of the equivalent diameter / image width


def make_phantom_records(n: int, image_size: int = 64, seed: int = 0, malignant_fraction: float = 0.5,
                         normal_fraction: float = 0.0, stream: int = 0, name_prefix: str = "phantom") -> list[Record]:
    """``n`` phantom records with in-memory images (float32 ``[S, S]``) and label maps.

    Class counts are exact: ``round(n * normal_fraction)`` normal images, then
    ``round(rest * malignant_fraction)`` malignant ones, in a random order. ``stream``
    selects an independent set of images for the same seed (the train/val/test splits use 0/1/2).
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    if image_size < 16:
        raise ValueError(f"phantom images need image_size >= 16, got {image_size}")
    if not 0 <= malignant_fraction <= 1 or not 0 <= normal_fraction <= 1:
        raise ValueError("malignant_fraction and normal_fraction must lie in [0, 1]")
    n_normal = int(round(n * normal_fraction))
    n_malignant = int(round((n - n_normal) * malignant_fraction))
    kinds = np.array([NORMAL] * n_normal + [MALIGNANT] * n_malignant + [BENIGN] * (n - n_normal - n_malignant))
    kinds = np.random.default_rng([seed, stream, 2**31]).permutation(kinds)
    records = []
    width = max(5, len(str(n)))
    for index, kind in enumerate(kinds):
        rng = np.random.default_rng([seed, stream, index])
        image, mask, diameter = render_phantom(int(kind), image_size, rng)
        targets = {"value": diameter, "survival": _survival(int(kind), diameter, rng)}
        if kind != NORMAL or normal_fraction > 0:
            targets["label"] = int(kind)
        records.append(Record(name=f"{name_prefix}_{index:0{width}d}", image_array=image, mask_array=mask,
                              targets=targets))
    return records


# --------------------------------------------------------------------------------------- helpers
def _smooth_noise(rng: np.random.Generator, shape: tuple[int, ...], sigma) -> np.ndarray:
    field = ndimage.gaussian_filter(rng.standard_normal(shape), sigma, mode="wrap")
    return field / (field.std() + 1e-8)


def _survival(kind: int, diameter: float, rng: np.random.Generator) -> tuple[float, int]:
    malignant = 1.0 if kind == MALIGNANT else 0.0
    z = (diameter - SIZE_MEAN) / SIZE_STD if kind != NORMAL else -2.0
    hazard = math.exp(LOG_BASE_HAZARD + BETA_MALIGNANT * malignant + BETA_SIZE * z)
    event_time = rng.exponential(1.0 / hazard)
    # P(C < T) = mu / (hazard + mu) = CENSORED_FRACTION
    censor_rate = hazard * CENSORED_FRACTION / (1 - CENSORED_FRACTION)
    censor_time = rng.exponential(1.0 / censor_rate)
    time = max(min(event_time, censor_time), 0.01)
    return round(float(time), 3), int(event_time <= censor_time)


# ------------------------------------------------------------------------------------ the tissue
def _tissue(size: int, rng: np.random.Generator) -> np.ndarray:
    """Echogenicity (mean backscatter amplitude) of lesion-free breast tissue, ``[S, S]``."""
    s = size
    depth = (np.arange(s)[:, None] + 0.5) / s * np.ones((1, s))
    lateral = np.ones((s, 1)) * (np.arange(s)[None, :] + 0.5) / s

    def boundary(base: float, amplitude: float) -> np.ndarray:
        wave = ndimage.gaussian_filter1d(rng.standard_normal(s), s / 8, mode="wrap")
        wave = wave / (np.abs(wave).max() + 1e-8)
        return base + amplitude * wave[None, :]

    skin = boundary(rng.uniform(0.03, 0.05), 0.005)
    fat_end = boundary(rng.uniform(0.18, 0.3), 0.06)
    gland_end = boundary(rng.uniform(0.68, 0.82), 0.06)

    echo = np.empty((s, s))
    # Subcutaneous fat: fairly dark with darker lobules.
    lobules = _smooth_noise(rng, (s, s), s / 14)
    echo[:] = 0.32 + 0.08 * lobules
    # Fibroglandular tissue: brighter, mottled, with laterally elongated streaks.
    gland_texture = _smooth_noise(rng, (s, s), (s / 40, s / 20))
    streaks = _smooth_noise(rng, (s, s), (max(0.5, s / 128), s / 10))
    gland = 0.75 + 0.15 * gland_texture + 0.35 * np.clip(streaks, 0, None)
    echo = np.where(depth >= fat_end, gland, echo)
    # Pectoral muscle: striations roughly parallel to the skin.
    slope = rng.uniform(-0.15, 0.15)
    phase = rng.uniform(0, 2 * np.pi)
    stripes = np.sin(2 * np.pi * (depth + slope * lateral) * rng.uniform(9, 14) + phase)
    muscle = 0.45 + 0.2 * stripes + 0.05 * _smooth_noise(rng, (s, s), s / 20)
    echo = np.where(depth >= gland_end, muscle, echo)
    # Cooper's ligaments: thin bright curves (near-zero level set of a smooth field) in fat and gland.
    field = _smooth_noise(rng, (s, s), s / 9)
    ligaments = np.exp(-((field / 0.12) ** 2)) * (depth < gland_end)
    echo = echo + 0.5 * ligaments
    # Bright interfaces: skin line and the muscle fascia.
    for line, strength, width in ((skin, 1.6, 0.012), (gland_end, 0.5, 0.008)):
        echo = echo + strength * np.exp(-(((depth - line) / width) ** 2))
    echo = np.where(depth < skin, 0.25 + 0.05 * lobules, echo)
    return np.clip(echo, 0.05, None)


# ----------------------------------------------------------------------------------- the lesions
def _lesion_shape(kind: int, size: int, rng: np.random.Generator) -> dict:
    s = size
    if kind == BENIGN:
        radius = rng.uniform(0.07, 0.15) * s
        aspect = rng.uniform(1.2, 1.8)  # wider than tall ("parallel" orientation)
        orientation = rng.normal(0, 0.15)
        harmonics = [(k, rng.uniform(0, 0.03 if k > 3 else 0.06), rng.uniform(0, 2 * np.pi)) for k in (2, 3, 4)]
        if rng.random() < 0.3:  # gently lobulated
            harmonics.append((int(rng.integers(3, 5)), rng.uniform(0.06, 0.1), rng.uniform(0, 2 * np.pi)))
        spicules = []
    else:
        radius = rng.uniform(0.08, 0.16) * s
        aspect = rng.uniform(0.75, 1.25)  # often taller than wide
        orientation = rng.uniform(0, np.pi)
        harmonics = [(k, rng.uniform(0.4, 1.0) * 0.2 / k**0.55, rng.uniform(0, 2 * np.pi)) for k in range(3, 17)]
        spicules = []
        for _ in range(int(rng.integers(6, 13))):
            length = rng.uniform(0.3, 0.8) * radius + 1.0
            spicules.append((rng.uniform(0, 2 * np.pi), length, max(0.05, 1.1 / (radius + length))))
    return {"radius": radius, "aspect": aspect, "orientation": orientation, "harmonics": harmonics,
            "spicules": spicules}


def _signed_distance(shape: dict, centre: tuple[float, float], size: int) -> np.ndarray:
    """Approximate signed distance in pixels to the lesion contour (positive inside)."""
    ys, xs = np.mgrid[0:size, 0:size] + 0.5
    dy, dx = ys - centre[0], xs - centre[1]
    distance = np.hypot(dx, dy)
    theta = np.arctan2(dy, dx)
    rel = theta - shape["orientation"]
    rx = shape["radius"] * math.sqrt(shape["aspect"])
    ry = shape["radius"] / math.sqrt(shape["aspect"])
    contour = rx * ry / np.sqrt((ry * np.cos(rel)) ** 2 + (rx * np.sin(rel)) ** 2)
    perturbation = np.zeros_like(theta)
    for k, amplitude, phase in shape["harmonics"]:
        perturbation += amplitude * np.cos(k * theta + phase)
    contour = contour * (1 + perturbation)
    for angle, length, half_width in shape["spicules"]:
        gap = np.abs(np.angle(np.exp(1j * (theta - angle))))
        contour = contour + length * np.clip(1 - gap / half_width, 0, None)
    return contour - distance


def _largest_component(mask: np.ndarray) -> np.ndarray:
    labels, count = ndimage.label(mask, structure=np.ones((3, 3), bool))
    if count <= 1:
        return mask
    sizes = np.bincount(labels.ravel())[1:]
    return labels == (1 + int(np.argmax(sizes)))


def _place_lesions(kind: int, size: int, rng: np.random.Generator) -> list[tuple[dict, np.ndarray, np.ndarray]]:
    """(shape, signed distance, mask) of one or two non-touching lesions."""
    lesions = []
    count = 2 if rng.random() < SECOND_LESION_PROBABILITY else 1
    for number in range(count):
        shape = _lesion_shape(kind, size, rng)
        if number == 1:
            shape["radius"] *= rng.uniform(0.5, 0.75)
        for _ in range(12):
            centre = (rng.uniform(0.3, 0.62) * size, rng.uniform(0.22, 0.78) * size)
            sdf = _signed_distance(shape, centre, size)
            mask = _largest_component(sdf > 0)
            if mask.sum() < 4:
                continue
            if any((ndimage.binary_dilation(mask, iterations=2) & other).any() for _, _, other in lesions):
                continue
            lesions.append((shape, sdf, mask))
            break
        if not lesions:  # cannot happen for sane sizes; fall back to a plain disc
            shape = {**shape, "harmonics": [], "spicules": []}
            sdf = _signed_distance(shape, (size / 2, size / 2), size)
            lesions.append((shape, sdf, sdf > 0))
    return lesions


def _add_lesions(echo: np.ndarray, kind: int, lesions: list, rng: np.random.Generator) -> np.ndarray:
    size = echo.shape[0]
    posterior = np.ones_like(echo)
    for shape, sdf, mask in lesions:
        sdf = np.where(mask | (sdf <= 0), sdf, -1.0)  # detached spicule fragments are not lesion
        if kind == BENIGN:
            inside = 1 / (1 + np.exp(-sdf / 0.35))  # sharp margin
            level = np.clip(rng.uniform(0.08, 0.2) + 0.03 * _smooth_noise(rng, echo.shape, size / 16), 0.03, None)
            echo = echo * (1 - inside) + level * inside
            if rng.random() < 0.5:  # thin echogenic capsule
                echo = echo + rng.uniform(0.2, 0.45) * np.exp(-((sdf + 0.4) / 0.6) ** 2)
            path = np.cumsum(inside, axis=0)
            strength = rng.uniform(0.35, 0.8)
            posterior *= 1 + strength * (1 - np.exp(-path / (0.6 * shape["radius"]))) * (path > 0)
        else:
            inside = 1 / (1 + np.exp(-sdf / 0.9))  # indistinct margin
            level = np.clip(rng.uniform(0.03, 0.1) + 0.04 * _smooth_noise(rng, echo.shape, size / 30), 0.02, None)
            echo = echo * (1 - inside) + level * inside
            halo = rng.uniform(0.25, 0.6) * (1 + 0.5 * _smooth_noise(rng, echo.shape, size / 20)).clip(0, None)
            echo = echo + halo * np.exp(-((sdf + 1.6) / 1.2) ** 2) * (sdf < 0)
            path = np.cumsum(inside, axis=0)
            strength = rng.uniform(0.45, 0.8)
            posterior *= 1 - strength * (1 - np.exp(-path / (0.5 * shape["radius"])))
    posterior = ndimage.gaussian_filter1d(posterior, max(0.6, size / 96), axis=1)
    return echo * posterior


# ------------------------------------------------------------------------------------- the image
def _speckle(size: int, rng: np.random.Generator) -> np.ndarray:
    """Fully developed speckle amplitude (mean square 1), grains elongated laterally."""
    scale = max(1.0, size / 96)
    sigma = (0.45 * scale, 1.4 * scale)
    noise = ndimage.gaussian_filter(rng.standard_normal((4, size, size)), (0, *sigma), mode="wrap")
    # Two looks (spatial compounding) soften the speckle a little, as modern scanners do.
    intensity = noise[0] ** 2 + noise[1] ** 2 + 0.5 * (noise[2] ** 2 + noise[3] ** 2)
    return np.sqrt(intensity / intensity.mean())


def display(envelope: np.ndarray, gain: float = 1.0) -> np.ndarray:
    """Compress an envelope to display grey levels in [0, 1]."""
    return np.clip(gain * DISPLAY_SCALE * np.clip(envelope, 0, None) ** COMPRESSION, 0, 1).astype(np.float32)


def render_phantom(kind: int, size: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, float]:
    """One phantom: (image float32 ``[S, S]`` in [0, 1], label map uint8 ``[S, S]``, equivalent diameter / S)."""
    echo = _tissue(size, rng)
    mask = np.zeros((size, size), dtype=np.uint8)
    if kind != NORMAL:
        lesions = _place_lesions(kind, size, rng)
        echo = _add_lesions(echo, kind, lesions, rng)
        for _, _, lesion_mask in lesions:
            mask[lesion_mask] = 1
    depth = (np.arange(size)[:, None] + 0.5) / size
    attenuation = np.exp(-rng.uniform(0.8, 1.6) * depth) * (1 + 0.25 * np.exp(-depth / 0.08))
    lateral = np.linspace(-1, 1, size)[None, :]
    vignette = 1 - rng.uniform(0.0, 0.25) * lateral**4
    envelope = echo * attenuation * vignette * _speckle(size, rng)
    envelope = envelope + 0.01 * rng.rayleigh(1.0, size=envelope.shape)  # electronic noise floor
    image = display(envelope, rng.uniform(0.85, 1.15))
    diameter = float(math.sqrt(4 * mask.sum() / math.pi) / size)
    return image, mask, diameter
