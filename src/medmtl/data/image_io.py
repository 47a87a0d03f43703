"""Reading 2D images and masks from files, and boxes from masks.

Images become float32 arrays ``[C, H, W]`` in ``[0, 1]``; masks become bool arrays ``[H, W]``.
Any problem with a file is a :class:`~medmtl.errors.DataError` that names the file.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage

from medmtl.errors import DataError

# ITU-R BT.601 luma weights (what PIL's convert("L") uses), applied in float.
LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)
_EIGHT_CONNECTED = np.ones((3, 3), dtype=bool)


def _check_file(path: Path) -> None:
    if not path.exists():
        raise DataError(path, "file does not exist")
    if path.is_dir():
        raise DataError(path, "is a folder, not an image file")


def _open(path: str | Path) -> tuple[Path, np.ndarray, str]:
    """The decoded pixels (first frame) and PIL mode of an image file."""
    path = Path(path)
    _check_file(path)
    try:
        with Image.open(path) as image:
            image.load()
            mode = image.mode
            if mode in ("P", "PA"):
                image = image.convert("RGBA" if "transparency" in image.info or mode == "PA" else "RGB")
                mode = image.mode
            elif mode in ("CMYK", "YCbCr", "LAB", "HSV"):
                image = image.convert("RGB")
                mode = "RGB"
            elif mode == "1":
                image = image.convert("L")
                mode = "L"
            pixels = np.array(image)
    except DataError:
        raise
    except Exception as exc:  # PIL raises many types (OSError, SyntaxError, ValueError, struct.error, ...)
        raise DataError(path, f"cannot be read as an image: {exc}") from None
    return path, pixels, mode


def _scale_to_unit(pixels: np.ndarray, path: Path) -> np.ndarray:
    """Integer or float pixels to float32 in [0, 1] according to their type."""
    if pixels.dtype == np.uint8:
        return pixels.astype(np.float32) / 255.0
    if pixels.dtype == np.uint16 or pixels.dtype == np.dtype(">u2"):
        return pixels.astype(np.float32) / 65535.0
    if pixels.dtype == np.bool_:
        return pixels.astype(np.float32)
    values = pixels.astype(np.float64)
    if not np.isfinite(values).all():
        raise DataError(path, "image holds NaN or infinite values")
    low, high = float(values.min()), float(values.max())
    if np.issubdtype(pixels.dtype, np.integer):
        if low >= 0 and high <= 255:
            return (values / 255.0).astype(np.float32)
        if low >= 0 and high <= 65535:  # 16-bit data held in a 32-bit integer image
            return (values / 65535.0).astype(np.float32)
    elif low >= 0 and high <= 1:
        return values.astype(np.float32)
    if high == low:  # constant image outside the expected range
        return np.zeros_like(values, dtype=np.float32)
    return ((values - low) / (high - low)).astype(np.float32)


def to_channels(array: np.ndarray, channels: int, source: str | Path | None = None) -> np.ndarray:
    """``[H, W]`` or ``[H, W, K]`` pixels in [0, 1] as float32 ``[channels, H, W]``.

    RGB becomes grey by luminance for ``channels=1``; grey is repeated for ``channels=3``;
    an alpha channel is dropped.
    """
    if channels not in (1, 3):
        raise DataError(source, f"channels must be 1 or 3, not {channels}")
    array = np.asarray(array, dtype=np.float32)
    if array.ndim == 2:
        grey = array
        rgb = None
    elif array.ndim == 3:
        count = array.shape[-1]
        if count in (2, 4):  # grey+alpha or RGB+alpha
            array = array[..., : count - 1]
            count -= 1
        if count == 1:
            grey, rgb = array[..., 0], None
        elif count == 3:
            grey, rgb = None, array
        else:
            raise DataError(source, f"image has {array.shape[-1]} channels; expected 1 (grey) or 3 (RGB)")
    else:
        raise DataError(source, f"image array has shape {tuple(array.shape)}; expected [H, W] or [H, W, C]")
    if channels == 1:
        if grey is None:
            grey = rgb @ LUMA
        return np.clip(grey, 0.0, 1.0)[None].astype(np.float32, copy=False)
    if rgb is None:
        rgb = np.repeat(grey[..., None], 3, axis=-1)
    return np.clip(np.ascontiguousarray(rgb.transpose(2, 0, 1)), 0.0, 1.0).astype(np.float32, copy=False)


def array_to_chw(array: np.ndarray, channels: int, source: str | Path | None = None) -> np.ndarray:
    """An in-memory image (``[H, W]``/``[H, W, C]``, uint8, uint16 or float in [0, 1]) as ``[C, H, W]`` float32."""
    array = np.asarray(array)
    return to_channels(_scale_to_unit(array, Path(str(source or "<array>"))), channels, source)


def read_image(path: str | Path, channels: int = 1) -> np.ndarray:
    """An image file as float32 ``[channels, H, W]`` in [0, 1].

    8-bit images are divided by 255 and 16-bit ones by 65535; RGB becomes grey by luminance
    when ``channels=1`` and grey is repeated when ``channels=3``.
    """
    path, pixels, _ = _open(path)
    return to_channels(_scale_to_unit(pixels, path), channels, path)


def image_size(path: str | Path) -> tuple[int, int]:
    """``(height, width)`` of an image file, read from its header only."""
    path = Path(path)
    _check_file(path)
    try:
        with Image.open(path) as image:
            width, height = image.size
    except Exception as exc:
        raise DataError(path, f"cannot be read as an image: {exc}") from None
    return height, width


def read_mask(path: str | Path) -> np.ndarray:
    """A mask file as bool ``[H, W]``: any nonzero pixel (in any colour channel) is foreground."""
    path, pixels, mode = _open(path)
    if pixels.ndim == 3:
        if mode in ("RGBA", "LA") or pixels.shape[-1] in (2, 4):
            pixels = pixels[..., : pixels.shape[-1] - 1]  # alpha is not a label
        return (pixels != 0).any(axis=-1)
    if pixels.ndim != 2:
        raise DataError(path, f"mask has shape {pixels.shape}; expected a 2D image")
    return pixels != 0


def boxes_from_mask(mask: np.ndarray, min_area: int = 1) -> np.ndarray:
    """One ``(x1, y1, x2, y2)`` box per 8-connected component of ``mask`` (float32 ``[N, 4]``).

    ``x2``/``y2`` are exclusive (last pixel + 1), so a one-pixel component at (x, y) gives
    ``(x, y, x + 1, y + 1)``. Components smaller than ``min_area`` pixels are left out. Boxes come
    in the raster order of their components' first pixels.
    """
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"boxes_from_mask expects a 2D mask, got shape {mask.shape}")
    labels, count = ndimage.label(mask.astype(bool), structure=_EIGHT_CONNECTED)
    if count == 0:
        return np.zeros((0, 4), dtype=np.float32)
    areas = np.bincount(labels.ravel(), minlength=count + 1)[1:]
    boxes = []
    for index, found in enumerate(ndimage.find_objects(labels)):
        if found is None or areas[index] < min_area:
            continue
        rows, cols = found
        boxes.append((cols.start, rows.start, cols.stop, rows.stop))
    return np.asarray(boxes, dtype=np.float32).reshape(-1, 4)


def boxes_and_labels_from_label_map(label_map: np.ndarray, min_area: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Boxes of every class of a label map (0 = background): ``(boxes [N, 4], labels [N])``.

    Each connected component of class ``k`` gives one box with label ``k``.
    """
    label_map = np.asarray(label_map)
    boxes, labels = [], []
    for value in np.unique(label_map):
        if value == 0:
            continue
        found = boxes_from_mask(label_map == value, min_area)
        boxes.append(found)
        labels.append(np.full(len(found), int(value), dtype=np.int64))
    if not boxes:
        return np.zeros((0, 4), dtype=np.float32), np.zeros((0,), dtype=np.int64)
    return np.concatenate(boxes), np.concatenate(labels)
