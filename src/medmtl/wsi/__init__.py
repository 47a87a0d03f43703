"""Whole-slide images (histopathology): reading, tissue detection, tiling and synthetic slides.

The first part of Neural Image Compression (Tellez et al. 2020) support: a slide is opened with
:func:`open_slide` (OpenSlide, or tifffile for plain TIFFs), its tissue found on a low-resolution
image (:func:`detect_tissue`) and cut into a grid of patches (:func:`tile_slide`) whose grid
positions let patch embeddings be put back into a compressed feature map; :func:`extract_patches`
samples tissue patches into PNG files and a manifest to train the patch encoder on.
"""

from medmtl.wsi.patches import extract_patches
from medmtl.wsi.slide import Slide, open_slide
from medmtl.wsi.synthetic import SyntheticSlideInfo, make_synthetic_dataset, make_synthetic_slide
from medmtl.wsi.tiling import TileGrid, make_tile_grid, read_tile, tile_slide
from medmtl.wsi.tissue import TissueConfig, TissueMask, detect_tissue, tissue_mask_from_rgb

__all__ = [
    "Slide",
    "SyntheticSlideInfo",
    "TileGrid",
    "TissueConfig",
    "TissueMask",
    "detect_tissue",
    "extract_patches",
    "make_synthetic_dataset",
    "make_synthetic_slide",
    "make_tile_grid",
    "open_slide",
    "read_tile",
    "tile_slide",
    "tissue_mask_from_rgb",
]
