"""The ``data`` section of a run configuration."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

DEFAULT_BUSI_ROOT = "${MEDMTL_DATA}/busi-256"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PhantomConfig(_Strict):
    """Built-in phantom ultrasound images (see :mod:`medmtl.data.phantom`)."""

    n_train: int = Field(320, ge=1)
    n_val: int = Field(120, ge=0)
    n_test: int = Field(0, ge=0)
    image_size: int | None = Field(None, ge=16, description="size the phantoms are drawn at; default data.image_size")
    malignant_fraction: float = Field(0.5, ge=0, le=1)
    normal_fraction: float = Field(0.0, ge=0, le=1, description="share of lesion-free images (label 2 when > 0)")
    seed: int = 0


class AugmentConfig(_Strict):
    """Training-time augmentation (applied to image, mask and boxes alike)."""

    hflip: bool = False
    vflip: bool = False
    rotate_degrees: float = Field(0.0, ge=0, le=180)
    intensity: float = Field(0.0, ge=0, le=1, description="brightness/contrast/gamma strength")
    hed: float = Field(0.0, ge=0, le=1, description="H&E stain jitter strength, RGB only (Tellez et al.: "
                                                    "0.05 light, 0.2 strong; see medmtl.data.stain)")
    elastic: bool = False
    elastic_magnitude: float = Field(0.03, ge=0, le=0.25, description="largest displacement, fraction of image size")


class DataConfig(_Strict):
    """Where samples come from, how they are split, resized, augmented and batched.

    Splits, by priority: split files (``split_train``/``split_val``/``split_test``; relative paths
    are resolved against ``root``; ``{fold}`` in them is replaced by ``fold``, the number of a
    published partition such as BUSI's 1-3), else fold ``fold`` (1..``folds``) of a stratified
    k-fold, else a stratified random hold-out of ``val_fraction``. ``fold`` thus always selects
    the numbered train/val partition; "split" means train, val or test. ``npz`` archives bring
    their own train/val/test splits; phantom data is drawn per split (another ``fold`` draws
    other phantoms).
    """

    kind: Literal["busi", "manifest", "npz", "phantom", "grid"]
    root: str | None = Field(None, description="data folder (busi: default ${MEDMTL_DATA}/busi-256)")
    manifest: str | None = Field(None, description="CSV manifest (kind=manifest; kind=grid: image column = "
                                                   "zarr grid stores)")
    npz: str | None = Field(None, description="MedMNIST-style .npz archive (kind=npz)")
    classes: list[str] = Field(default_factory=lambda: ["benign", "malignant"])
    include_normal: bool = Field(False, description="busi: read normal/ too; images no split file lists are "
                                                    "then split by val_fraction into train and val")
    image_size: int = Field(128, ge=8)
    channels: int = Field(1, ge=1, description="1 or 3 for images; the embedding size for grids")
    grid_size: int = Field(64, ge=1, description="kind=grid: grids are cropped/padded to this many cells")
    grid_augment: bool = Field(True, description="kind=grid: random crop and the 8 rotations/flips in training")
    split_train: str | None = None
    split_val: str | None = None
    split_test: str | None = None
    fold: int | None = Field(None, ge=1, description="which numbered train/val partition, counting from 1: "
                                                     "replaces {fold} in the split file paths, else the "
                                                     "k-fold fold that is validation")
    folds: int = Field(5, ge=2, description="k-fold: number of folds (unused with split files)")
    val_fraction: float = Field(0.2, gt=0, lt=1)
    phantom: PhantomConfig = Field(default_factory=PhantomConfig)
    image_col: str = "image"
    mask_col: str | None = "mask"
    label_col: str | None = None
    value_cols: list[str] = Field(default_factory=list)
    group_col: str | None = Field(None, description="manifest column whose rows stay in one split (slide, patient)")
    time_col: str | None = None
    event_col: str | None = None
    augment: AugmentConfig = Field(default_factory=AugmentConfig)
    batch_size: int = Field(16, ge=1)
    num_workers: int = Field(0, ge=0)
    cache_images: bool = True
    seed: int = 0

    @model_validator(mode="after")
    def _defaults_and_consistency(self) -> DataConfig:
        if self.kind == "busi" and self.root is None:
            self.root = DEFAULT_BUSI_ROOT
        if self.kind == "grid" and "image_col" not in self.model_fields_set:
            self.image_col = "grid"
        if self.fold is not None and self.fold > self.folds and not self.uses_split_files():
            raise ValueError(f"fold {self.fold} is outside 1..{self.folds} (data.folds, the number of k-fold folds)")
        if (self.time_col is None) != (self.event_col is None):
            raise ValueError("time_col and event_col go together (survival needs both)")
        if self.kind != "grid" and self.channels not in (1, 3):
            raise ValueError(f"channels must be 1 (grey) or 3 (RGB) for images, got {self.channels}")
        if self.kind != "grid" and self.augment.hed > 0 and self.channels != 3:
            raise ValueError(f"augment.hed (H&E colour augmentation) needs RGB images: set channels: 3, or "
                             f"augment.hed: 0 for grey images (channels is {self.channels})")
        if len(set(self.classes)) != len(self.classes):
            raise ValueError(f"classes repeat a name: {self.classes}")
        return self

    def uses_split_files(self) -> bool:
        """True when a train or val split file chooses the partition (then ``folds`` is unused)."""
        return self.split_train is not None or self.split_val is not None
