"""Procedural H&E-like slide content that can be rendered at any level, one region at a time.

A scene is a white background with a few pink (eosin) tissue blobs: ellipses whose borders are
bent by a sum of sinusoids, with a smoothly varying stroma shade. Nuclei are discs scattered
uniformly over the tissue: small mid-purple "normal" nuclei at a fixed density and large
dark-purple "tumour" nuclei at the slide's ``tumour_density`` (nuclei per 10,000 µm² of tissue,
that is per 100 x 100 µm), which the slide label sets: label 0 draws it from
:data:`TUMOUR_DENSITY_RANGES` ``[0]`` (few), label 1 from ``[1]`` (many).

Every pixel is a function of its absolute position (pixel noise is a hash of the coordinates and
nuclei come from per-cell random streams), so a region renders the same whatever window it is
rendered in, and no level ever needs the level-0 image in memory.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

TUMOUR_DENSITY_RANGES: dict[int, tuple[float, float]] = {0: (0.5, 3.0), 1: (8.0, 20.0)}
NORMAL_DENSITY = 5.0  # normal nuclei per 10,000 µm² of tissue
NORMAL_RADIUS_UM = (2.5, 3.5)
TUMOUR_RADIUS_UM = (4.0, 6.0)
BACKGROUND = np.array([244.0, 243.0, 246.0])
EOSIN_LIGHT = np.array([238.0, 180.0, 206.0])
EOSIN_DARK = np.array([216.0, 128.0, 174.0])
NORMAL_NUCLEUS = np.array([130.0, 80.0, 162.0])
TUMOUR_NUCLEUS = np.array([70.0, 28.0, 110.0])
CELL = 1024  # side in level-0 px of the cells that hold independent random streams of nuclei
_SMALL_RADIUS = 0.75  # nuclei smaller than this (level px) are blended into one pixel
_MAX_CACHED_CELLS = 4096
_UINT64 = 2**64


def _hash_noise(ix: np.ndarray, iy: np.ndarray, salt: int) -> np.ndarray:
    """float32 noise in [-1, 1), a fixed function of integer pixel coordinates and ``salt``."""
    h = (ix.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)) ^ (iy.astype(np.uint64) * np.uint64(0xC2B2AE3D27D4EB4F))
    h ^= np.uint64(salt % _UINT64)
    h ^= h >> np.uint64(33)
    h *= np.uint64(0xFF51AFD7ED558CCD)
    h ^= h >> np.uint64(33)
    h *= np.uint64(0xC4CEB9FE1A85EC53)
    h ^= h >> np.uint64(33)
    return (h >> np.uint64(40)).astype(np.float32) / np.float32(2**23) - np.float32(1.0)


def _waves(rng: np.random.Generator, count: int, scale: float, wavelengths: tuple[float, float],
           amplitude: float) -> np.ndarray:
    """float64 ``[count, 4]`` plane waves ``(kx, ky, phase, amplitude)``."""
    lengths = rng.uniform(*wavelengths, size=count) * scale
    angles = rng.uniform(0.0, math.pi, size=count)
    k = 2.0 * math.pi / lengths
    return np.stack([k * np.cos(angles), k * np.sin(angles), rng.uniform(0.0, 2.0 * math.pi, size=count),
                     np.full(count, amplitude)], axis=1)


def _wave_sum(waves: np.ndarray, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """Sum of ``amplitude * sin(kx * x + ky * y + phase)`` at ``xs``, ``ys`` (broadcast together)."""
    total = np.zeros(np.broadcast_shapes(np.shape(xs), np.shape(ys)))
    for kx, ky, phase, amplitude in waves:
        # sin(a + b) = sin a cos b + cos a sin b: for a row of xs and a column of ys only 1D
        # sines are taken, which makes rendering a tile several times faster
        a, b = kx * xs + phase, ky * ys
        total += amplitude * (np.sin(a) * np.cos(b) + np.cos(a) * np.sin(b))
    return total


@dataclass
class SlideScene:
    """The content of one synthetic slide (see the module docstring); build it with :func:`make_scene`.

    ``blobs``: float64 ``[K, 5]`` ellipses ``(cx, cy, a, b, angle)`` in level-0 px and radians;
    ``border_waves``, ``stroma_waves``: float64 ``[M, 4]`` plane waves ``(kx, ky, phase, amplitude)``.
    """

    width: int
    height: int
    mpp: float
    label: int
    tumour_density: float
    seed: int
    blobs: np.ndarray
    border_waves: np.ndarray
    stroma_waves: np.ndarray
    _cells: dict[tuple[int, int], np.ndarray] = field(default_factory=dict, repr=False, compare=False)

    def may_hold_tissue(self, x0: float, y0: float, x1: float, y1: float) -> bool:
        """False when the level-0 box ``[x0, x1) x [y0, y1)`` is surely background."""
        # the border waves add at most sum(|amplitude|) to 1 - r^2, so tissue lies within
        # sqrt(1 + that) of the longer semi-axis of some blob
        reach = math.sqrt(1.0 + float(np.abs(self.border_waves[:, 3]).sum()))
        for cx, cy, a, b, _ in self.blobs:
            dx = max(x0 - cx, 0.0, cx - x1)
            dy = max(y0 - cy, 0.0, cy - y1)
            if dx * dx + dy * dy <= (reach * max(a, b)) ** 2:
                return True
        return False

    def tissue_field(self, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
        """Positive inside tissue: float64 at level-0 positions ``xs``, ``ys`` (broadcast together)."""
        best = np.full(np.broadcast_shapes(np.shape(xs), np.shape(ys)), -np.inf)
        for cx, cy, a, b, angle in self.blobs:
            dx, dy = xs - cx, ys - cy
            u = (dx * math.cos(angle) + dy * math.sin(angle)) / a
            v = (dy * math.cos(angle) - dx * math.sin(angle)) / b
            np.maximum(best, 1.0 - u * u - v * v, out=best)
        return best + _wave_sum(self.border_waves, xs, ys)

    def tissue_fraction(self, samples: int = 256) -> float:
        """Fraction of the slide area that is tissue, estimated on a ``samples``-point-wide grid."""
        step = max(self.width, self.height) / samples
        xs = (np.arange(math.ceil(self.width / step)) + 0.5)[None, :] * step
        ys = (np.arange(math.ceil(self.height / step)) + 0.5)[:, None] * step
        return float((self.tissue_field(xs, ys) > 0).mean())

    def _cell_nuclei(self, row: int, col: int) -> np.ndarray:
        """float64 ``[N, 6]`` nuclei ``(x, y, radius, r, g, b)`` of one cell (level-0 px), normal first."""
        key = (row, col)
        if key in self._cells:
            return self._cells[key]
        if len(self._cells) >= _MAX_CACHED_CELLS:
            self._cells.clear()
        rng = np.random.default_rng([self.seed, 1, row, col])
        cell_um2 = (CELL * self.mpp) ** 2
        parts = []
        for density, radius_um, colour in ((NORMAL_DENSITY, NORMAL_RADIUS_UM, NORMAL_NUCLEUS),
                                           (self.tumour_density, TUMOUR_RADIUS_UM, TUMOUR_NUCLEUS)):
            count = int(rng.poisson(density * cell_um2 / 1e4))
            x = (col + rng.random(count)) * CELL
            y = (row + rng.random(count)) * CELL
            radius = rng.uniform(*radius_um, size=count) / self.mpp
            shade = colour[None, :] * rng.uniform(0.9, 1.1, size=(count, 1))
            parts.append(np.column_stack([x, y, radius, shade]))
        nuclei = np.concatenate(parts)
        inside = (nuclei[:, 0] < self.width) & (nuclei[:, 1] < self.height)
        nuclei = nuclei[inside]
        nuclei = nuclei[self.tissue_field(nuclei[:, 0], nuclei[:, 1]) > 0]
        self._cells[key] = nuclei
        return nuclei

    def _nuclei_in(self, x0: float, y0: float, x1: float, y1: float) -> np.ndarray:
        """Nuclei (as :meth:`_cell_nuclei`) whose discs touch the level-0 box ``[x0, x1) x [y0, y1)``."""
        margin = TUMOUR_RADIUS_UM[1] / self.mpp
        rows = range(max(0, int((y0 - margin) // CELL)), int((y1 + margin) // CELL) + 1)
        cols = range(max(0, int((x0 - margin) // CELL)), int((x1 + margin) // CELL) + 1)
        found = [self._cell_nuclei(r, c) for r in rows for c in cols]
        nuclei = np.concatenate(found) if found else np.zeros((0, 6))
        r = nuclei[:, 2]
        touch = ((nuclei[:, 0] + r > x0) & (nuclei[:, 0] - r < x1)
                 & (nuclei[:, 1] + r > y0) & (nuclei[:, 1] - r < y1))
        return nuclei[touch]

    def render(self, x: int, y: int, width: int, height: int, downsample: float = 1.0) -> np.ndarray:
        """``[height, width, 3]`` uint8 RGB of the level ``downsample`` times smaller than level 0,
        from that level's pixel ``(x, y)``."""
        ix = np.arange(x, x + width, dtype=np.int64)[None, :]
        iy = np.arange(y, y + height, dtype=np.int64)[:, None]
        xs, ys = (ix + 0.5) * downsample, (iy + 0.5) * downsample
        salt = self.seed * 0x100000001B3 + round(downsample * 1000)
        noise = _hash_noise(ix, iy, salt)[..., None]
        image = np.broadcast_to(BACKGROUND + 2.0 * noise, (height, width, 3)).astype(np.float32)
        margin = TUMOUR_RADIUS_UM[1] / self.mpp  # a nucleus disc may reach past the tissue border
        if not self.may_hold_tissue(x * downsample - margin, y * downsample - margin,
                                    (x + width) * downsample + margin, (y + height) * downsample + margin):
            return np.clip(np.rint(image), 0, 255).astype(np.uint8)
        tissue = self.tissue_field(xs, ys) > 0
        if tissue.any():
            shade = np.clip(0.5 + _wave_sum(self.stroma_waves, xs, ys), 0.0, 1.0)[..., None]
            colour = (EOSIN_LIGHT * (1.0 - shade) + EOSIN_DARK * shade) * (1.0 + 0.05 * noise)
            image[tissue] = colour[tissue]
        # also outside tissue: the disc of a nucleus near the border may reach into this region
        self._paint_nuclei(image, noise[..., 0], x, y, downsample)
        return np.clip(np.rint(image), 0, 255).astype(np.uint8)

    def _paint_nuclei(self, image: np.ndarray, noise: np.ndarray, x: int, y: int, downsample: float) -> None:
        height, width = image.shape[:2]
        nuclei = self._nuclei_in(x * downsample, y * downsample, (x + width) * downsample, (y + height) * downsample)
        if not len(nuclei):
            return
        # absolute level coordinates, so that a pixel's value never depends on the region's origin
        cx, cy, radius = nuclei[:, 0] / downsample, nuclei[:, 1] / downsample, nuclei[:, 2] / downsample
        small = radius < _SMALL_RADIUS
        if small.any():
            col = np.floor(cx[small]).astype(np.int64) - x
            row = np.floor(cy[small]).astype(np.int64) - y
            ok = (col >= 0) & (col < width) & (row >= 0) & (row < height)
            alpha = np.minimum(1.0, math.pi * radius[small][ok] ** 2)[:, None]
            row, col = row[ok], col[ok]
            image[row, col] = image[row, col] * (1.0 - alpha) + nuclei[small][ok, 3:] * alpha
        for index in np.flatnonzero(~small):
            r = radius[index]
            c0, c1 = max(int(math.floor(cx[index] - r)), x), min(int(math.ceil(cx[index] + r)), x + width)
            r0, r1 = max(int(math.floor(cy[index] - r)), y), min(int(math.ceil(cy[index] + r)), y + height)
            if c0 >= c1 or r0 >= r1:
                continue
            dx = np.arange(c0, c1) + 0.5 - cx[index]
            dy = np.arange(r0, r1)[:, None] + 0.5 - cy[index]
            inside = dx * dx + dy * dy <= r * r
            window = image[r0 - y:r1 - y, c0 - x:c1 - x]
            texture = 1.0 + 0.08 * noise[r0 - y:r1 - y, c0 - x:c1 - x, None]
            window[inside] = (nuclei[index, 3:] * texture)[inside]


def make_scene(width: int, height: int, label: int, seed: int, mpp: float = 0.5, n_blobs: int | None = None,
               tumour_density: float | None = None) -> SlideScene:
    """A random scene of ``width x height`` level-0 pixels for slide ``label`` (0 or 1).

    ``n_blobs`` (default 2 to 4) tissue pieces; 0 gives an all-background slide. Blobs stay in
    the middle of the slide, so its corners are background. ``tumour_density`` defaults to a
    draw from ``TUMOUR_DENSITY_RANGES[label]``.
    """
    if label not in TUMOUR_DENSITY_RANGES:
        raise ValueError(f"label must be one of {sorted(TUMOUR_DENSITY_RANGES)}, not {label!r}")
    rng = np.random.default_rng([seed, 0])
    scale = float(min(width, height))
    count = int(rng.integers(2, 5)) if n_blobs is None else int(n_blobs)
    blobs = np.column_stack([
        rng.uniform(0.3, 0.7, count) * width, rng.uniform(0.3, 0.7, count) * height,
        rng.uniform(0.1, 0.2, count) * scale, rng.uniform(0.1, 0.2, count) * scale,
        rng.uniform(0.0, math.pi, count)]).reshape(count, 5)
    # border waves add at most 0.3 to the field: blobs reach 1.14 semi-axes, < 0.23 * scale
    border_waves = _waves(rng, 6, scale, (0.08, 0.25), 0.05)
    stroma_waves = _waves(rng, 3, scale, (0.05, 0.2), 0.15)
    if tumour_density is None:
        tumour_density = float(rng.uniform(*TUMOUR_DENSITY_RANGES[label]))
    return SlideScene(width=int(width), height=int(height), mpp=float(mpp), label=int(label),
                      tumour_density=float(tumour_density), seed=int(seed), blobs=blobs,
                      border_waves=border_waves, stroma_waves=stroma_waves)
