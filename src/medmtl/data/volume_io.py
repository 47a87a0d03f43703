"""Reading and writing volumes (NIfTI ``.nii``/``.nii.gz``, NRRD ``.nrrd``/``.nhdr``, MetaImage
``.mha``/``.mhd``) with SimpleITK (the optional extra ``volumes``).

Arrays are NumPy ``[z, y, x]`` (SimpleITK's ``GetArrayFromImage`` order; ``[C, z, y, x]`` with
channels); sizes, spacings and origins in a :class:`VolumeGeometry` are ``(x, y, z)`` as in image
headers, in mm. Any problem with a file (missing, truncated, zero spacing, a 2D image or a 4D series
where a volume is expected, a mask on another grid than its image) is a
:class:`~medmtl.errors.DataError` naming the file and the problem.
"""

from __future__ import annotations

import gzip
import math
import os
import re
import shutil
import struct
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Literal

import numpy as np

from medmtl.errors import DataError
from medmtl.io_utils import current_umask

#: file name endings read as volumes (longest first, so that ``.nii.gz`` wins over ``.gz``)
VOLUME_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd")
FORMATS = "NIfTI, NRRD or MetaImage"
#: default tolerance of :func:`check_same_grid`, as a fraction of a voxel (origin, spacing) or of 1 (direction)
GRID_TOLERANCE = 1e-3


def sitk_module() -> ModuleType:
    """SimpleITK, or a :class:`~medmtl.errors.MissingExtraError` naming the extra ``volumes``."""
    from medmtl.extras import require

    return require("SimpleITK", extra="volumes", feature="reading and writing volumes (NIfTI, NRRD, MHA)")


def volume_suffix(path: str | Path) -> str | None:
    """The volume format ending of ``path`` (``".nii.gz"``, ``".nrrd"``, ...), or None."""
    name = Path(path).name.lower()
    return next((suffix for suffix in VOLUME_SUFFIXES if name.endswith(suffix)), None)


def is_volume_path(path: str | Path) -> bool:
    """Whether ``path`` names a volume file by its ending (reads nothing)."""
    return volume_suffix(path) is not None


def volume_stem(path: str | Path) -> str:
    """The file name without its volume ending (``ct.nii.gz`` -> ``ct``), else ``Path.stem``."""
    suffix = volume_suffix(path)
    name = Path(path).name
    return name[: len(name) - len(suffix)] if suffix else Path(path).stem


# ------------------------------------------------------------------------------------------ geometry
@dataclass(frozen=True)
class VolumeGeometry:
    """Where a volume's voxels lie in physical space (LPS, mm), as in its header.

    ``size``: voxels along ``(x, y, z)`` (the array is ``[z, y, x]`` = :attr:`shape`);
    ``spacing``: voxel size ``(x, y, z)`` in mm; ``origin``: physical position of voxel
    ``(0, 0, 0)``'s centre; ``direction``: the 3x3 direction cosines, row-major (9 floats; column
    ``i`` is the physical direction of index axis ``i``).
    """

    size: tuple[int, int, int]
    spacing: tuple[float, float, float]
    origin: tuple[float, float, float]
    direction: tuple[float, ...] = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)

    def __post_init__(self) -> None:
        object.__setattr__(self, "size", tuple(int(v) for v in self.size))
        object.__setattr__(self, "spacing", tuple(float(v) for v in self.spacing))
        object.__setattr__(self, "origin", tuple(float(v) for v in self.origin))
        object.__setattr__(self, "direction", tuple(float(v) for v in self.direction))
        if len(self.size) != 3 or len(self.spacing) != 3 or len(self.origin) != 3 or len(self.direction) != 9:
            raise ValueError(f"a volume geometry has 3 sizes, spacings and origin values and 9 direction "
                             f"cosines, got {self}")

    @property
    def shape(self) -> tuple[int, int, int]:
        """The array shape ``(z, y, x)``."""
        return self.size[2], self.size[1], self.size[0]

    @property
    def matrix(self) -> np.ndarray:
        """The direction cosines as a 3x3 array (column ``i``: index axis ``i``)."""
        return np.asarray(self.direction, dtype=np.float64).reshape(3, 3)

    def index_to_physical(self, index_xyz: np.ndarray | tuple[float, ...]) -> np.ndarray:
        """Physical point (mm) of a continuous voxel index ``(x, y, z)``."""
        index = np.asarray(index_xyz, dtype=np.float64)
        return np.asarray(self.origin) + self.matrix @ (index * np.asarray(self.spacing))

    def center(self) -> np.ndarray:
        """Physical point (mm) of the centre of the voxel grid."""
        return self.index_to_physical((np.asarray(self.size, dtype=np.float64) - 1) / 2)

    @classmethod
    def from_shape(cls, shape_zyx: tuple[int, ...], spacing: tuple[float, float, float] = (1.0, 1.0, 1.0),
                   origin: tuple[float, float, float] = (0.0, 0.0, 0.0)) -> VolumeGeometry:
        """The grid of an array ``[z, y, x]`` without a header: unit spacing, origin 0, identity direction."""
        z, y, x = (int(v) for v in shape_zyx[-3:])
        return cls((x, y, z), spacing, origin)

    @classmethod
    def from_sitk(cls, image) -> VolumeGeometry:
        """The geometry of a 3D ``SimpleITK.Image`` (or the first three axes of a 4D one)."""
        return _geometry(image.GetSize(), image.GetSpacing(), image.GetOrigin(), image.GetDirection())

    def mismatch(self, other: VolumeGeometry, tolerance: float = GRID_TOLERANCE) -> str | None:
        """What differs between two grids (size, spacing, origin, direction), or None when they agree.

        Spacing and origin may differ by ``tolerance`` voxels, direction cosines by ``tolerance``.
        """
        if self.size != other.size:
            return f"size {_xyz(self.size)} differs from {_xyz(other.size)} (x, y, z voxels)"
        voxel = np.asarray(self.spacing)
        if np.any(np.abs(voxel - np.asarray(other.spacing)) > tolerance * voxel):
            return f"spacing {_mm(self.spacing)} differs from {_mm(other.spacing)} (x, y, z mm)"
        if np.any(np.abs(np.asarray(self.origin) - np.asarray(other.origin)) > tolerance * voxel.min()):
            return f"origin {_mm(self.origin)} differs from {_mm(other.origin)} (x, y, z mm)"
        if np.any(np.abs(self.matrix - other.matrix) > tolerance):
            return (f"direction {_rounded(self.direction)} differs from {_rounded(other.direction)} "
                    "(direction cosines, row-major)")
        return None


def _geometry(size, spacing, origin, direction) -> VolumeGeometry:
    dims = len(size)
    matrix = np.asarray(direction, dtype=np.float64).reshape(dims, dims)[:3, :3]
    return VolumeGeometry(tuple(size[:3]), tuple(spacing[:3]), tuple(origin[:3]), tuple(matrix.ravel()))


def _xyz(values: tuple[int, ...]) -> str:
    return "x".join(str(v) for v in values)


def _mm(values: tuple[float, ...]) -> str:
    return "(" + ", ".join(f"{v:.6g}" for v in values) + ")"


def _rounded(values: tuple[float, ...]) -> list[float]:
    return [round(v, 4) + 0.0 for v in values]


def check_same_grid(image: VolumeGeometry, mask: VolumeGeometry, image_source: str | Path,
                    mask_source: str | Path, tolerance: float = GRID_TOLERANCE) -> None:
    """A :class:`DataError` naming the mask and its image when ``mask`` lies on another voxel grid
    than ``image`` (size, spacing, origin or direction; see :meth:`VolumeGeometry.mismatch`)."""
    problem = mask.mismatch(image, tolerance)
    if problem is not None:
        raise DataError(mask_source, f"mask is not on the voxel grid of its image {image_source}: the mask's "
                                     f"{problem} of the image; resample the mask onto the image's grid")


def array_to_sitk(array: np.ndarray, geometry: VolumeGeometry):
    """A ``SimpleITK.Image`` of ``array`` ``[z, y, x]`` on ``geometry`` (bool becomes uint8)."""
    sitk = sitk_module()
    array = np.asarray(array)
    if array.shape != geometry.shape:
        raise ValueError(f"array of shape {array.shape} (z, y, x) does not fit the grid of size {geometry.size} "
                         "(x, y, z)")
    if array.dtype == np.bool_:
        array = array.astype(np.uint8)
    image = sitk.GetImageFromArray(np.ascontiguousarray(array))
    image.SetSpacing(geometry.spacing)
    image.SetOrigin(geometry.origin)
    image.SetDirection(geometry.direction)
    return image


# ------------------------------------------------------------------------------------------- reading
def _itk_reason(exc: Exception) -> str:
    """The useful lines of a SimpleITK/ITK exception message."""
    lines = []
    for line in str(exc).splitlines()[1:] or str(exc).splitlines():
        line = re.sub(r"^(ITK ERROR: \w+\(0x[0-9a-fA-F]+\): |sitk::ERROR: )", "", line.strip())
        if line and "trouble" not in line:
            lines.append(line)
    return "; ".join(lines) or str(exc)


def _check_file(path: Path) -> None:
    if not path.exists():
        raise DataError(path, "file does not exist")
    if path.is_dir():
        raise DataError(path, "is a folder, not a volume file")


def _reader(path: Path):
    """A SimpleITK reader of ``path`` whose header has been read and checked."""
    sitk = sitk_module()
    _check_file(path)
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    try:
        reader.ReadImageInformation()
    except RuntimeError as exc:
        raise DataError(path, f"cannot be read as a volume ({FORMATS}): {_itk_reason(exc)}") from None
    dims, size, spacing = reader.GetDimension(), reader.GetSize(), reader.GetSpacing()
    if dims == 2:
        raise DataError(path, f"is a 2D image (size {_xyz(size[:2])}, width x height), but a 3D model "
                              "(model.spatial_dims: 3) needs volumes; set model.spatial_dims: 2 for 2D images")
    if dims not in (3, 4):
        raise DataError(path, f"has {dims} dimensions (size {_xyz(size)}); expected a 3D volume")
    bad = [f"{axis}={value:g}" for axis, value in zip("xyz", spacing) if not (value > 0 and math.isfinite(value))]
    nifti = _nifti_start(path)
    if not bad and nifti is not None:  # ITK silently reads a zero NIfTI pixdim as 1 mm
        bad = [f"pixdim {axis}={value:g}" for axis, value in zip("xyz", nifti[1])
               if value == 0 or not math.isfinite(value)]
    if bad:
        raise DataError(path, f"header gives a zero, negative or non-finite voxel spacing ({', '.join(bad)} mm); "
                              "spacings must be positive")
    return reader


def read_volume_info(path: str | Path) -> VolumeGeometry:
    """The :class:`VolumeGeometry` of a volume file, from its header only (checked as :func:`read_volume` does)."""
    path = Path(path)
    reader = _reader(path)
    return _geometry(reader.GetSize(), reader.GetSpacing(), reader.GetOrigin(), reader.GetDirection())


def _read(path: Path, channels: int | None) -> tuple[np.ndarray, VolumeGeometry]:
    """Stored values ``[z, y, x]`` (``[C, z, y, x]`` when ``channels`` is given) in the file's dtype."""
    reader = _reader(path)
    _check_complete(path)
    try:
        image = reader.Execute()
    except RuntimeError as exc:
        raise DataError(path, f"cannot be read as a volume ({FORMATS}); truncated or corrupt file? "
                              f"{_itk_reason(exc)}") from None
    sitk = sitk_module()
    geometry = VolumeGeometry.from_sitk(image)
    array = sitk.GetArrayFromImage(image)  # [z, y, x], [t, z, y, x] (4D) or [z, y, x, K] (K components)
    if image.GetNumberOfComponentsPerPixel() > 1:
        array = np.moveaxis(array, -1, 0)
    elif image.GetDimension() == 3:
        array = array[None]
    found = array.shape[0]  # [K, z, y, x] now
    if channels is None:
        if found != 1:
            raise DataError(path, f"holds {found} volumes or channels (array shape {tuple(array.shape)}, "
                                  f"size {_xyz(image.GetSize())} with {image.GetNumberOfComponentsPerPixel()} "
                                  "component(s) per voxel); expected one 3D volume (a 4th axis of size 1 is "
                                  f"fine; set data.channels: {found} if these are the image's channels)")
        return array[0], geometry
    if found == channels:
        return array, geometry
    if found == 1:
        return np.repeat(array, channels, axis=0), geometry  # grey repeated, as for 2D images
    raise DataError(path, f"has {found} channels (array shape {tuple(array.shape)}, channels first), but "
                          f"data.channels is {channels}")


def read_volume(path: str | Path, channels: int | None = None) -> tuple[np.ndarray, VolumeGeometry]:
    """A volume file as float32 ``[z, y, x]`` (values as stored, e.g. HU) and its :class:`VolumeGeometry`.

    With ``channels`` the array is ``[channels, z, y, x]``: a 4D file (``[t, z, y, x]``) or a
    file of vector voxels must have that many channels; a single volume is repeated. Without it, a
    4th axis must have size 1. NaN or infinite values are a :class:`DataError`.
    """
    path = Path(path)
    array, geometry = _read(path, channels)
    array = array.astype(np.float32, copy=False)
    if not np.isfinite(array).all():
        raise DataError(path, "volume holds NaN or infinite values")
    return array, geometry


def read_label_volume(path: str | Path) -> tuple[np.ndarray, VolumeGeometry]:
    """A label-map file (mask) as int64 ``[z, y, x]`` (0 = background, 1..K = class) and its geometry.

    Values must be non-negative integers (stored as any integer or float type).
    """
    path = Path(path)
    array, geometry = _read(path, None)
    if array.dtype.kind == "f":
        if not np.isfinite(array).all() or not np.array_equal(array, np.round(array)):
            raise DataError(path, "mask holds non-integer values; expected class indices (0 = background)")
    elif array.dtype.kind not in "iub":
        raise DataError(path, f"mask has voxel type {array.dtype}; expected integer class indices")
    labels = array.astype(np.int64)
    if labels.size and labels.min() < 0:
        raise DataError(path, "mask holds negative class indices")
    return labels, geometry


def _nifti_header(header: bytes) -> tuple[int, tuple[float, ...]] | None:
    """``(header plus data bytes, spatial pixdims)`` of a single-file NIfTI-1/-2 header; None if unknown.

    The byte count is 0 when the header does not say (``vox_offset`` 0: a separate ``.img`` file).
    """
    for endian in "<>":
        if len(header) >= 348 and struct.unpack(f"{endian}i", header[:4])[0] == 348:
            dims = struct.unpack(f"{endian}8h", header[40:56])
            bitpix = struct.unpack(f"{endian}h", header[72:74])[0]
            pixdim = struct.unpack(f"{endian}8f", header[76:108])
            offset = int(struct.unpack(f"{endian}f", header[108:112])[0])
            break
        if len(header) >= 540 and struct.unpack(f"{endian}i", header[:4])[0] == 540:
            bitpix = struct.unpack(f"{endian}h", header[14:16])[0]
            dims = struct.unpack(f"{endian}8q", header[16:80])
            pixdim = struct.unpack(f"{endian}8d", header[104:168])
            offset = int(struct.unpack(f"{endian}q", header[168:176])[0])
            break
    else:
        return None
    ndim = dims[0]
    if not 1 <= ndim <= 7 or bitpix <= 0:
        return None
    spatial = tuple(float(v) for v in pixdim[1:min(ndim, 3) + 1])
    if offset <= 0:
        return 0, spatial
    return offset + math.prod(max(int(d), 1) for d in dims[1:ndim + 1]) * bitpix // 8, spatial


def _nifti_start(path: Path) -> tuple[int, tuple[float, ...]] | None:
    """:func:`_nifti_header` of a ``.nii``/``.nii.gz`` file (None for other formats or unreadable headers)."""
    suffix = volume_suffix(path)
    if suffix not in (".nii", ".nii.gz"):
        return None
    try:
        with (gzip.open(path, "rb") if suffix == ".nii.gz" else open(path, "rb")) as handle:
            return _nifti_header(handle.read(540))
    except (OSError, EOFError, zlib.error):
        return None  # reported by _check_complete


def _check_complete(path: Path) -> None:
    """A :class:`DataError` for a truncated NIfTI file (ITK reads those without complaint, with zeros)."""
    suffix = volume_suffix(path)
    if suffix not in (".nii", ".nii.gz"):
        return  # the NRRD and MetaImage readers notice missing data themselves
    header = _nifti_start(path)
    expected = header[0] if header is not None else 0
    try:
        if suffix == ".nii":
            found = path.stat().st_size
        else:
            found = 0
            with gzip.open(path, "rb") as handle:
                while chunk := handle.read(1 << 22):
                    found += len(chunk)
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(path, f"is truncated or corrupt (cannot be decompressed: {exc})") from None
    if expected and found < expected:
        raise DataError(path, f"is truncated: the header announces {expected} bytes of header and voxels, the "
                              f"file holds {found}{' (decompressed)' if suffix == '.nii.gz' else ''}")


# ------------------------------------------------------------------------------------------- writing
def write_volume(array: np.ndarray, geometry: VolumeGeometry, path: str | Path, compress: bool = True) -> None:
    """Write ``array`` ``[z, y, x]`` (its dtype kept; bool as uint8) on ``geometry`` to ``path``.

    The format follows the ending (:data:`VOLUME_SUFFIXES`). Atomic: written into a temporary
    folder beside ``path`` and renamed into place (a ``.mhd`` header's data file first), so a
    killed run never leaves a half-written volume.
    """
    sitk = sitk_module()
    path = Path(path)
    if volume_suffix(path) is None:
        raise DataError(path, f"unknown volume format; name the file with one of {list(VOLUME_SUFFIXES)}")
    image = array_to_sitk(array, geometry)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"))
    try:
        try:
            sitk.WriteImage(image, str(tmp / path.name), compress)
        except RuntimeError as exc:
            raise DataError(path, f"cannot be written: {_itk_reason(exc)}") from None
        mode = 0o666 & ~current_umask()
        written = sorted(tmp.iterdir(), key=lambda p: p.name == path.name)  # the header (named file) last
        for part in written:
            os.chmod(part, mode)
            os.replace(part, path.parent / part.name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# ----------------------------------------------------------------------------------------- resampling
def resample_to_reference(array: np.ndarray, from_geometry: VolumeGeometry, to_geometry: VolumeGeometry,
                          interpolation: Literal["nearest", "linear"] = "nearest",
                          default_value: float = 0) -> np.ndarray:
    """``array`` ``[z, y, x]`` on ``from_geometry`` resampled onto ``to_geometry`` (``[z', y', x']``).

    Nearest neighbour (label maps: a prediction on the preprocessed grid mapped back onto the
    input's grid) keeps the dtype; ``"linear"`` (probabilities) returns float32. Points outside
    ``array``'s grid get ``default_value``.
    """
    sitk = sitk_module()
    array = np.asarray(array)
    dtype = array.dtype
    image = array_to_sitk(array, from_geometry)
    linear = interpolation == "linear"
    if linear:
        image = sitk.Cast(image, sitk.sitkFloat32)
    out = sitk.Resample(image, to_geometry.size, sitk.Transform(), sitk.sitkLinear if linear else
                        sitk.sitkNearestNeighbor, to_geometry.origin, to_geometry.spacing, to_geometry.direction,
                        float(default_value), image.GetPixelID())
    result = sitk.GetArrayFromImage(out)
    return result.astype(np.float32 if linear else dtype, copy=False)
