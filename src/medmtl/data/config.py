"""The ``data`` section of a run configuration."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, model_validator

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


class VolumeConfig(_Strict):
    """Preprocessing of volumes (``model.spatial_dims: 3``), applied jointly to image and mask.

    Order: orientation, resampling to ``spacing`` (image linear, mask nearest), crop/pad to
    ``data.image_size`` around the mask's or the volume's centre, intensity. Tensors are
    ``[C, D, H, W]`` = ``[C, z, y, x]``; spacings are written ``[x, y, z]`` in mm as in image
    headers. A crop larger than the volume is padded with ``pad_value``. Orientation, resampling
    and cropping are one resampling onto the target grid (see :mod:`medmtl.data.volume_preprocess`);
    intensity statistics (minmax percentiles, zscore) come from the whole volume. In-memory arrays
    (MedMNIST-3D, phantoms) have no header: they are scaled to [0, 1] and only cropped/padded (see
    :mod:`medmtl.data.volume_dataset`).
    """

    spacing: list[Annotated[float, Field(gt=0)]] | None = Field(
        None, min_length=3, max_length=3, description="target voxel spacing [x, y, z] in mm; null keeps the file's")
    orientation: str | None = Field("LPS", description="canonical orientation (3-letter code in the DICOM/ITK "
                                                       "convention, e.g. LPS, RAS); null keeps the file's")
    intensity: Literal["window", "zscore", "minmax", "none"] = Field(
        "minmax", description="window: clip to `window` and scale to [0, 1] (CT in HU); zscore: zero mean, unit "
                              "variance over the volume; minmax: the volume's 0.5-99.5 percentiles to [0, 1]; "
                              "none: values as stored")
    window: list[float] = Field([-1000.0, 400.0], min_length=2, max_length=2,
                                description="intensity window [low, high] (e.g. HU for CT lung)")
    crop: Literal["mask", "center", "none"] = Field(
        "center", description="centre of the crop to data.image_size: the mask's foreground centre (when the sample "
                              "has a mask; else the volume centre), the volume centre, or none (keep the whole "
                              "resampled volume; batches need equal sizes, prediction uses a sliding window)")
    crop_jitter: int = Field(0, ge=0, description="training only: the crop centre moves by up to this many voxels "
                                                  "per axis at random (random crops)")
    pad_value: float | None = Field(None, description="value of voxels outside the volume (in the file's units); "
                                                      "default: window low for 'window', else the volume minimum")

    @model_validator(mode="after")
    def _window_order(self) -> VolumeConfig:
        if self.window[0] >= self.window[1]:
            raise ValueError(f"window must be [low, high] with low < high, got {self.window}")
        if self.orientation is not None:
            code = self.orientation.upper()
            axes = sorted("RLAPSI".index(letter) // 2 for letter in code if letter in "RLAPSI")
            if len(code) != 3 or axes != [0, 1, 2]:
                raise ValueError(f"orientation must be 3 letters, one of R/L, one of A/P and one of S/I (e.g. LPS, "
                                 f"RAS), got '{self.orientation}'")
            self.orientation = code
        return self


class AugmentConfig(_Strict):
    """Training-time augmentation (applied to image, mask and boxes alike).

    In 3D, ``hflip``/``vflip``/``zflip`` flip the x/y/z axes, ``rot90`` turns by a random multiple
    of 90° in-plane, ``rotate_degrees`` and ``scale`` draw a small affine; ``hed`` and ``elastic``
    are 2D only.
    """

    hflip: bool = False
    vflip: bool = False
    zflip: bool = Field(False, description="3D only: flip along z (slices)")
    rot90: bool = Field(False, description="random multiple of 90° in the (y, x) plane")
    rotate_degrees: float = Field(0.0, ge=0, le=180)
    scale: float = Field(0.0, ge=0, lt=1, description="3D: random zoom by a factor in [1 - scale, 1 + scale]")
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
    their own train/val/test splits (with ``fold``: fold ``fold`` of a k-fold over their train and
    val images together, the test split untouched); phantom data is drawn per split (another
    ``fold`` draws other phantoms).
    """

    kind: Literal["busi", "manifest", "npz", "phantom", "grid"]
    root: str | None = Field(None, description="data folder (busi: default ${MEDMTL_DATA}/busi-256)")
    manifest: str | None = Field(None, description="CSV manifest (kind=manifest; kind=grid: image column = "
                                                   "zarr grid stores)")
    npz: str | None = Field(None, description="MedMNIST-style .npz archive (kind=npz)")
    classes: list[str] | None = Field(None, description="class names in label order; default: the data's own "
                                      "(busi: benign, malignant; manifest: integer labels as they are, or its "
                                      "label names in sorted order; npz, phantom: class indices)")
    include_normal: bool = Field(False, description="busi: read normal/ too; images no split file lists are "
                                                    "then split by val_fraction into train and val")
    image_size: int | list[Annotated[int, Field(ge=1)]] = Field(
        128, description="size the images are resized (2D) or cropped/padded (3D) to: an int (square, cube) or "
                         "[H, W] / [D, H, W]")
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
    volume: VolumeConfig | None = Field(None, description="volume preprocessing; its presence means 3D data")
    image_col: str = "image"
    mask_col: str | None = "mask"
    label_col: str | None = None
    value_cols: list[str] = Field(default_factory=list)
    label_cols: dict[str, str] = Field(default_factory=dict, description="manifest: more class-label columns as "
                                       "{target key: column} (e.g. {grade: grade}); a classification task reads "
                                       "one with target: <key>; labels are integer indices or names in sorted order")
    group_col: str | None = Field(None, description="manifest column whose rows stay in one split (slide, patient)")
    time_col: str | None = None
    event_col: str | None = None
    augment: AugmentConfig = Field(default_factory=AugmentConfig)
    batch_size: int = Field(16, ge=1)
    num_workers: int = Field(0, ge=0)
    cache_images: bool = True
    seed: int = 0
    #: the run's ``model.spatial_dims`` (set by :class:`medmtl.config.RunConfig`); see :attr:`spatial_dims`
    _spatial_dims: int | None = PrivateAttr(None)

    @model_validator(mode="after")
    def _defaults_and_consistency(self) -> DataConfig:
        if isinstance(self.image_size, int) and self.image_size < 8:
            raise ValueError(f"image_size must be at least 8, got {self.image_size}")
        if isinstance(self.image_size, list) and len(self.image_size) not in (2, 3):
            raise ValueError(f"image_size is an int or [H, W] / [D, H, W], got {self.image_size}")
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
        reserved = sorted(set(self.label_cols) & {"label", "value", "survival", "mask", "image", "boxes", "box_labels"})
        if reserved:
            raise ValueError(f"label_cols keys name targets of their own; {reserved} is taken (label_col gives "
                             "'label', value_cols 'value', time_col/event_col 'survival')")
        if self.classes is not None and len(set(self.classes)) != len(self.classes):
            raise ValueError(f"classes repeat a name: {self.classes}")
        return self

    def implied_spatial_dims(self) -> int | None:
        """3 when this section alone says the data are volumes (a ``[D, H, W]`` image_size or a
        ``volume`` section), 2 for a ``[H, W]`` image_size or slide grids, else None (undecided)."""
        if isinstance(self.image_size, list):
            return len(self.image_size)
        if self.volume is not None:
            return 3
        return 2 if self.kind == "grid" else None

    @property
    def spatial_dims(self) -> int:
        """2 (images ``[C, H, W]``) or 3 (volumes ``[C, D, H, W]``): the run's ``model.spatial_dims``,
        else what this section implies, else 2."""
        return self._spatial_dims or self.implied_spatial_dims() or 2

    @property
    def image_shape(self) -> tuple[int, ...]:
        """``image_size`` as one size per spatial axis (``(H, W)`` or ``(D, H, W)``)."""
        if isinstance(self.image_size, list):
            return tuple(self.image_size)
        return (self.image_size,) * self.spatial_dims

    def uses_split_files(self) -> bool:
        """True when a train or val split file chooses the partition (then ``folds`` is unused)."""
        return self.split_train is not None or self.split_val is not None
