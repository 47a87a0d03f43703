"""Phantom CT-like volumes with one lesion each: medmtl's built-in 3D demo data.

Volumes are ``[D, H, W]`` = ``[z, y, x]``, float32 in [0, 1] (think of a soft-tissue window):

- **Background**: soft tissue whose density varies smoothly (a few low-frequency waves plus
  mid-scale mottling), two to four bright, gently curved vessel-like tubes, and correlated
  Gaussian noise (CT quantum noise, a little smoothed by the reconstruction kernel).
- **Benign lesion** (cyst/hamartoma-like): a smooth ellipsoid with mild, low-order lobulation,
  sharp margin, homogeneous density.
- **Malignant lesion** (carcinoma-like): irregular, lobulated surface (many higher-order
  undulations) with radial spicules, indistinct margin, heterogeneous density and often a darker
  (necrotic) core.

Malignant lesions are larger on average, but sizes overlap, and both classes are denser than the
tissue by overlapping amounts, so shape and texture, not size or brightness alone, tell them
apart; vessels are about as bright as lesions, so segmentation has to use shape too.

Targets of each record: ``label`` (0 benign, 1 malignant), ``mask`` (label map, 1 = lesion, one
26-connected component, never empty), ``value`` = equivalent-sphere diameter of the lesion divided
by the volume's mean side (``cbrt(6 * voxels / pi) / cbrt(D * H * W)``), and ``survival`` = (time in
months, event) drawn from an exponential model with hazard ``exp(-4.1 + 1.2 * malignant + 0.8 * z)``,
``z`` the standardised ``value``, censored at random (independent exponential censoring, about
30 %).

Volumes are fully determined by ``(seed, stream, index)``.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage

from medmtl.data.records import Record

BENIGN, MALIGNANT = 0, 1
CENSORED_FRACTION = 0.3
LOG_BASE_HAZARD = -4.1  # benign, average size: median survival about 42 months
BETA_MALIGNANT = 1.2
BETA_SIZE = 0.8
SIZE_MEAN, SIZE_STD = 0.32, 0.06  # of value, measured over both classes
TISSUE_LEVEL = 0.42
NOISE_STD = 0.035
MIN_SIDE = 16


def make_phantom3d_records(n: int, image_shape: tuple[int, int, int] = (32, 32, 32), seed: int = 0,
                           malignant_fraction: float = 0.5, stream: int = 0,
                           name_prefix: str = "phantom3d") -> list[Record]:
    """``n`` phantom volume records: ``image_array`` float32 ``[D, H, W]`` in [0, 1] and
    ``mask_array`` int64 ``[D, H, W]``, ``expects_lesion=True``.

    Class counts are exact (``round(n * malignant_fraction)`` malignant) in a random order.
    ``stream`` selects an independent set of volumes for the same seed (train/val/test: 0/1/2).
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    shape = tuple(int(s) for s in image_shape)
    if len(shape) != 3 or min(shape) < MIN_SIDE:
        raise ValueError(f"image_shape must be (D, H, W) with every side >= {MIN_SIDE}, got {image_shape}")
    if not 0 <= malignant_fraction <= 1:
        raise ValueError(f"malignant_fraction must lie in [0, 1], got {malignant_fraction}")
    n_malignant = round(n * malignant_fraction)
    kinds = np.array([MALIGNANT] * n_malignant + [BENIGN] * (n - n_malignant))
    kinds = np.random.default_rng([seed, stream, 2**31 + 3]).permutation(kinds)
    width = max(5, len(str(n)))
    records = []
    for index, kind in enumerate(kinds):
        rng = np.random.default_rng([seed, stream, index, 3])  # 3: not the 2D phantoms' streams
        image, mask, value = render_phantom3d(int(kind), shape, rng)
        targets = {"label": int(kind), "value": value, "survival": _survival(int(kind), value, rng)}
        records.append(Record(name=f"{name_prefix}_{index:0{width}d}", image_array=image, mask_array=mask,
                              targets=targets, expects_lesion=True))
    return records


# --------------------------------------------------------------------------------------- helpers
def _survival(kind: int, value: float, rng: np.random.Generator) -> tuple[float, int]:
    z = (value - SIZE_MEAN) / SIZE_STD
    hazard = math.exp(LOG_BASE_HAZARD + BETA_MALIGNANT * (kind == MALIGNANT) + BETA_SIZE * z)
    event_time = rng.exponential(1.0 / hazard)
    # P(C < T) = mu / (hazard + mu) = CENSORED_FRACTION
    censor_rate = hazard * CENSORED_FRACTION / (1 - CENSORED_FRACTION)
    censor_time = rng.exponential(1.0 / censor_rate)
    time = max(min(event_time, censor_time), 0.01)
    return round(float(time), 3), int(event_time <= censor_time)


def _unit_vectors(rng: np.random.Generator, count: int) -> np.ndarray:
    """``[count, 3]`` directions uniform on the sphere, (z, y, x)."""
    v = rng.standard_normal((count, 3))
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def _coordinates(shape: tuple[int, ...], offset: tuple[int, ...] = (0, 0, 0)) -> list[np.ndarray]:
    """Voxel-centre coordinates (z, y, x), broadcastable ``[D, 1, 1]``, ``[1, H, 1]``, ``[1, 1, W]``."""
    return [(np.arange(int(s), dtype=np.float32) + float(o + 0.5)).reshape([-1 if a == i else 1 for a in range(3)])
            for i, (s, o) in enumerate(zip(shape, offset))]


def _noise(rng: np.random.Generator, shape: tuple[int, ...], sigma: float) -> np.ndarray:
    field = ndimage.gaussian_filter(rng.standard_normal(shape, dtype=np.float32), sigma, mode="wrap", truncate=3.0)
    return field / (field.std() + 1e-8)


# ------------------------------------------------------------------------------------ the tissue
def _tissue(shape: tuple[int, int, int], rng: np.random.Generator) -> np.ndarray:
    """Density of lesion-free soft tissue with vessels, ``[D, H, W]`` (noise-free)."""
    z, y, x = _coordinates(shape)
    side = float(np.cbrt(np.prod(shape)))
    density = np.full(shape, TISSUE_LEVEL + rng.uniform(-0.04, 0.04), dtype=np.float32)
    # Smooth variation: separable products of slow waves (cheap: no full-volume filter).
    for _ in range(3):
        waves = [np.cos(c * (2 * np.pi * rng.uniform(0.3, 1.2) / s) + rng.uniform(0, 2 * np.pi))
                 for s, c in zip(shape, (z, y, x))]
        density += 0.04 * waves[0] * waves[1] * waves[2]
    density += 0.025 * _noise(rng, shape, max(1.0, side / 16))  # mottling
    # Vessels: tubes along a random direction u, bent sinusoidally along a perpendicular v.
    centre = np.array(shape) / 2
    for _ in range(int(rng.integers(2, 5))):
        u = _unit_vectors(rng, 1)[0]
        v = np.cross(u, _unit_vectors(rng, 1)[0])
        v /= np.linalg.norm(v) + 1e-8
        u, v = u.tolist(), v.tolist()  # Python floats keep the float32 arrays float32
        anchor = (centre + rng.uniform(-0.35, 0.35, 3) * np.array(shape)).tolist()
        dz, dy, dx = z - anchor[0], y - anchor[1], x - anchor[2]
        t = u[0] * dz + u[1] * dy + u[2] * dx
        amplitude = rng.uniform(0.0, 0.12) * side
        bend = amplitude * np.sin(t * (2 * np.pi / (side * rng.uniform(0.8, 1.6))) + rng.uniform(0, 2 * np.pi))
        distance = np.sqrt(sum((d - t * u[i] - bend * v[i]) ** 2 for i, d in enumerate((dz, dy, dx))))
        radius = rng.uniform(0.6, 1.6) * side / 32
        # Linear partial-volume edge one voxel wide.
        density += rng.uniform(0.2, 0.32) * np.clip(radius + 0.5 - distance, 0, 1)
    return density


# ----------------------------------------------------------------------------------- the lesion
def _lesion_shape(kind: int, side: float, rng: np.random.Generator) -> dict:
    """Parameters of the lesion's radial function (radius as a function of direction, voxels)."""
    if kind == BENIGN:
        radius = rng.uniform(0.1, 0.2) * side
        axes = rng.uniform(0.8, 1.25, 3)
        waves = [(rng.uniform(0.8, 1.6), rng.uniform(0.0, 0.08)) for _ in range(2)]
        spicules = []
    else:
        radius = rng.uniform(0.11, 0.21) * side  # larger on average, overlapping benign sizes
        axes = rng.uniform(0.75, 1.3, 3)
        waves = [(rng.uniform(2.5, 5.5), rng.uniform(0.06, 0.14)) for _ in range(5)]
        spicules = []
        for _ in range(int(rng.integers(6, 13))):
            length = rng.uniform(0.35, 0.9) * radius + 1.0
            spicules.append((length, 1.3 / (radius + length)))  # angular half-width: about 1.3 voxels thick
    return {"radius": radius, "axes": axes / np.cbrt(np.prod(axes)), "rotation": _random_rotation(rng),
            "waves": [(f, a, d, rng.uniform(0, 2 * np.pi)) for (f, a), d in zip(waves, _unit_vectors(rng, len(waves)))],
            "spicules": [(length, w, d) for (length, w), d in zip(spicules, _unit_vectors(rng, len(spicules)))]}


def _random_rotation(rng: np.random.Generator) -> np.ndarray:
    q, r = np.linalg.qr(rng.standard_normal((3, 3)))
    return q * np.sign(np.diag(r))


def _signed_distance(shape: dict, centre: np.ndarray, box_shape: tuple[int, ...],
                     offset: tuple[int, ...]) -> np.ndarray:
    """Approximate signed distance (voxels, positive inside) to the lesion surface, over a box."""
    # Python-float coefficients keep every array float32 (numpy scalars would promote to float64).
    d = [c - float(m) for c, m in zip(_coordinates(box_shape, offset), centre)]
    distance = np.sqrt(d[0] ** 2 + d[1] ** 2 + d[2] ** 2) + 1e-6
    n = [component / distance for component in d]  # unit direction from the centre, (z, y, x)

    def dot(v: np.ndarray) -> np.ndarray:
        v = v.tolist()
        return v[0] * n[0] + v[1] * n[1] + v[2] * n[2]

    # Ellipsoid radius along n in the lesion's own frame: 1 / sqrt(sum_i (n . e_i)^2 / a_i^2).
    inverse_square = sum((dot(axis) / float(a)) ** 2 for axis, a in zip(shape["rotation"].T, shape["axes"]))
    surface = float(shape["radius"]) / np.sqrt(inverse_square)
    # Lobulation: cosines of n . d_k, smooth functions on the sphere.
    perturbation = sum(float(a) * np.cos(dot(direction) * float(f * np.pi) + float(phase))
                       for f, a, direction, phase in shape["waves"])
    surface = surface * (1 + perturbation)
    # Radial spikes: length L on the spike's axis, tapering to 0 at angle w from it; with
    # 1 - cos = angle^2 / 2 the profile is L * (1 - angle^2 / w^2), a rounded cone.
    for length, half_width, direction in shape["spicules"]:
        slope = float(2 * length / half_width**2)
        surface = surface + np.maximum(dot(direction) * slope + float(length - slope), 0)
    return surface - distance


def _largest_component(mask: np.ndarray) -> np.ndarray:
    labels, count = ndimage.label(mask, structure=np.ones((3, 3, 3), bool))
    if count <= 1:
        return mask
    return labels == 1 + int(np.argmax(np.bincount(labels.ravel())[1:]))


def _add_lesion(density: np.ndarray, kind: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """The density with one lesion drawn in, and the lesion's mask (bool ``[D, H, W]``)."""
    dims = np.array(density.shape)
    side = float(np.cbrt(np.prod(dims)))
    shape = _lesion_shape(kind, side, rng)
    # Radius bound without spicules (undulations add at most the sum of their amplitudes).
    reach = shape["radius"] * max(shape["axes"]) * (1 + sum(w[1] for w in shape["waves"]))
    centre = rng.uniform(np.minimum(reach + 1, dims / 2), np.maximum(dims - reach - 1, dims / 2))
    # Work in a box around the lesion: the longest spicule plus five margin widths (where the
    # margin's sigmoid is under 1 %). Overlapping spicules may reach further and be cut.
    extent = reach + max((s[0] for s in shape["spicules"]), default=0.0) + 3.6
    low = np.clip(np.floor(centre - extent), 0, dims).astype(int)
    high = np.clip(np.ceil(centre + extent), 0, dims).astype(int)
    box = tuple(slice(a, b) for a, b in zip(low, high))
    sdf = _signed_distance(shape, centre, tuple(high - low), tuple(low))
    inside_box = _largest_component(sdf > 0)
    if not inside_box.any():  # cannot happen for sane sizes; fall back to a small ball
        ball = {"radius": 2.0, "axes": np.ones(3), "rotation": np.eye(3), "waves": [], "spicules": []}
        sdf = _signed_distance(ball, centre, tuple(high - low), tuple(low))
        inside_box = sdf > 0
    sdf = np.where(inside_box | (sdf <= 0), sdf, -1.0)  # detached spicule fragments are not lesion
    region = density[box]
    contrast = rng.uniform(0.14, 0.3)
    if kind == BENIGN:
        weight = 1 / (1 + np.exp(-sdf / 0.35))  # sharp margin
        level = TISSUE_LEVEL + contrast
    else:
        weight = 1 / (1 + np.exp(-sdf / 0.7))  # indistinct margin
        level = TISSUE_LEVEL + contrast + 0.07 * _noise(rng, region.shape, 1.0)
        if rng.random() < 0.6:  # necrotic core: darker where deep inside
            depth = np.clip(sdf / (0.6 * shape["radius"]), 0, 1)
            level = level - rng.uniform(0.1, 0.2) * depth**2
    out = density.copy()
    out[box] = region * (1 - weight) + level * weight
    mask = np.zeros(density.shape, dtype=bool)
    mask[box] = inside_box
    return out, mask


# ------------------------------------------------------------------------------------ the volume
def render_phantom3d(kind: int, image_shape: tuple[int, int, int],
                     rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, float]:
    """One phantom: (image float32 ``[D, H, W]`` in [0, 1], mask int64 ``[D, H, W]``, ``value``)."""
    shape = tuple(int(s) for s in image_shape)
    density, mask = _add_lesion(_tissue(shape, rng), kind, rng)
    noise = ndimage.gaussian_filter(rng.standard_normal(shape, dtype=np.float32), 0.6, truncate=2.5)
    density += NOISE_STD * noise / (noise.std() + 1e-8)
    image = np.clip(density, 0, 1).astype(np.float32)
    value = float(np.cbrt(6 * mask.sum() / np.pi) / np.cbrt(np.prod(shape)))
    return image, mask.astype(np.int64), value


__all__ = ["BENIGN", "MALIGNANT", "make_phantom3d_records", "render_phantom3d"]
