"""A visual check of a compressed slide: thumbnail, tissue mask and the embedding grid in colour."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from medmtl.grid_store import GridStore


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


def _thumbnail(store: GridStore) -> np.ndarray | None:
    slide_path = store.attrs.get("slide")
    if not slide_path or not Path(slide_path).exists():
        return None
    from medmtl.wsi.slide import open_slide

    try:
        with open_slide(slide_path) as slide:
            return slide.thumbnail(512)
    except Exception:  # the figure is still useful without the thumbnail
        return None
