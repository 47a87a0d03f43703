"""A visual check of a compressed slide: thumbnail, tissue mask and the embedding grid in colour; and
heat maps of a slide-level model's attributions over the thumbnail (:mod:`medmtl.wsi.explain`)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from medmtl.grid_store import GridStore

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.image import AxesImage

    from medmtl.wsi.explain import SlideExplanation


def pca_rgb(grid: np.ndarray, tissue: np.ndarray) -> np.ndarray:
    """``[H, W, 3]`` float in [0, 1]: the first three principal components of the embeddings
    ``grid [C, H, W]`` over the tissue cells, each scaled to its 1st–99th percentile; white
    where ``tissue [H, W]`` is False."""
    channels, height, width = grid.shape
    rgb = np.ones((height, width, 3), dtype=np.float64)
    vectors = grid[:, tissue].T.astype(np.float64)  # [N, C]
    if len(vectors) == 0:
        return rgb
    centred = vectors - vectors.mean(axis=0)
    components = min(3, channels, len(vectors))
    _, _, basis = np.linalg.svd(centred, full_matrices=False)
    projected = np.zeros((len(vectors), 3))
    projected[:, :components] = centred @ basis[:components].T
    low, high = np.percentile(projected, [1, 99], axis=0)
    scaled = np.clip((projected - low) / np.where(high > low, high - low, 1.0), 0, 1)
    rgb[tissue] = scaled
    return rgb


def render_grid(store: GridStore, out_png: Path, thumbnail: np.ndarray | None = None) -> Path:
    """Write a PNG: slide thumbnail (when given or readable), tissue mask, PCA colours of the grid."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tissue = store.tissue()
    panels: list[tuple[str, np.ndarray, dict]] = []
    if thumbnail is None:
        thumbnail = _thumbnail(store)
    if thumbnail is not None:
        panels.append(("slide", thumbnail, {}))
    panels.append((f"tissue ({int(tissue.sum())} patches)", tissue, {"cmap": "gray", "vmin": 0, "vmax": 1}))
    panels.append((f"embeddings, PCA → RGB ({store.shape[0]} channels)", pca_rgb(store.embeddings(), tissue), {}))
    fig, axes = plt.subplots(1, len(panels), figsize=(4.5 * len(panels), 4.5))
    for ax, (title, image, options) in zip(np.atleast_1d(axes), panels):
        ax.imshow(image, interpolation="nearest", **options)
        ax.set_title(title, fontsize=9)
        ax.axis("off")
    fig.suptitle(Path(str(store.attrs.get("slide", store.path))).name, fontsize=10)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(out_png, dpi=110)
    plt.close(fig)
    return out_png


def render_attributions(store: GridStore, explanation: SlideExplanation, out_png: Path) -> Path:
    """Write a PNG with one panel per explained head: its signed cell attributions ``[H, W]`` in a
    diverging colormap (0 = white, symmetric range, colorbar) over the slide thumbnail when the slide
    can be read (else over the tissue mask in grey); NaN cells (no tissue, outside the model's
    window) are transparent, and the window is outlined when it does not cover the grid."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    backdrop = _slide_backdrop(store)
    count = len(explanation.outputs)
    fig, axes = plt.subplots(1, count, figsize=(5.2 * count, 4.8), squeeze=False)
    for ax, output in zip(axes[0], explanation.outputs):
        over_slide = _draw_backdrop(ax, store, backdrop)
        values = explanation.maps[output.label]
        image = _draw_attribution(ax, values, alpha=0.55 if over_slide else 1.0)
        _outline_window(ax, explanation.window, values.shape)
        ax.set_title(f"{output.label}: {output.quantity} = {output.value:.3g}\n{explanation.method_title()}", fontsize=9)
        ax.axis("off")
        bar = fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
        bar.set_label(f"attribution to {output.quantity} (+ raises it)", fontsize=8)
    name = Path(str(store.attrs.get("slide", store.path))).name
    fig.suptitle(f"{name} — {explanation.run}" if explanation.run else name, fontsize=10)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(out_png, dpi=110)
    plt.close(fig)
    return out_png


def _draw_attribution(ax: Axes, values: np.ndarray, alpha: float) -> AxesImage:
    """``values [H, W]`` in cell units, 0 at the colormap's centre; NaN transparent."""
    import matplotlib.pyplot as plt

    finite = values[np.isfinite(values)]
    limit = float(np.abs(finite).max()) if finite.size else 0.0
    limit = limit if limit > 0 else 1.0
    cmap = plt.get_cmap("RdBu_r").with_extremes(bad=(0, 0, 0, 0))
    height, width = values.shape
    return ax.imshow(np.ma.masked_invalid(values), cmap=cmap, vmin=-limit, vmax=limit, alpha=alpha,
                     interpolation="nearest", extent=(0, width, height, 0), zorder=2)


def _draw_backdrop(ax: Axes, store: GridStore, backdrop: tuple[np.ndarray, tuple[int, int]] | None) -> bool:
    """The slide thumbnail scaled to grid cells (cell pitch from the store's ``stride`` and
    ``level_downsample``; True), or the tissue mask in light grey when the slide or the pitch is unknown."""
    pitch = _cell_pitch(store)
    if backdrop is not None and pitch is not None:
        thumbnail, (width0, height0) = backdrop
        ax.imshow(thumbnail, extent=(0, width0 / pitch, height0 / pitch, 0), zorder=1)
        return True
    tissue = store.tissue()
    height, width = tissue.shape
    ax.imshow(np.where(tissue, 0.85, 1.0), cmap="gray", vmin=0, vmax=1, interpolation="nearest",
              extent=(0, width, height, 0), zorder=1)
    return False


def _outline_window(ax: Axes, window: tuple[int, int, int], shape: tuple[int, int]) -> None:
    """A dashed frame around the cells the model sees, when that is not the whole grid."""
    from matplotlib.patches import Rectangle

    top, left, size = window
    if top <= 0 and left <= 0 and top + size >= shape[0] and left + size >= shape[1]:
        return
    ax.add_patch(Rectangle((max(left, 0), max(top, 0)), min(size, shape[1] - max(left, 0)),
                           min(size, shape[0] - max(top, 0)), fill=False, linestyle="--", linewidth=1,
                           edgecolor="black", zorder=3))


def _cell_pitch(store: GridStore) -> float | None:
    """Level-0 pixels per grid cell, None when the store does not say."""
    attrs = store.attrs
    stride, downsample = attrs.get("stride"), attrs.get("level_downsample")
    if not isinstance(stride, (int, float)) or not isinstance(downsample, (int, float)) or stride * downsample <= 0:
        return None
    return float(stride * downsample)


def _thumbnail(store: GridStore) -> np.ndarray | None:
    backdrop = _slide_backdrop(store)
    return None if backdrop is None else backdrop[0]


def _slide_backdrop(store: GridStore) -> tuple[np.ndarray, tuple[int, int]] | None:
    """The slide's thumbnail and its level-0 ``(width, height)``, None when the slide cannot be read."""
    slide_path = store.attrs.get("slide")
    if not slide_path or not Path(slide_path).exists():
        return None
    from medmtl.wsi.slide import open_slide

    try:
        with open_slide(slide_path) as slide:
            return slide.thumbnail(512), tuple(slide.dimensions)
    except Exception:  # the figure is still useful without the thumbnail
        return None
