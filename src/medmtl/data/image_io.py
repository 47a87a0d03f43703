"""Reading 2D images and masks from files; pixels to model input.

Images become float32 arrays ``[C, H, W]`` in ``[0, 1]``; masks become bool arrays ``[H, W]``.
Any problem with a file is a :class:`~medmtl.errors.DataError` that names the file.

:func:`images_to_chw` is the one conversion of pixels to what an encoder sees (scaling to
[0, 1], grey ↔ RGB): the image readers of training use it for one image, and the whole-slide
patch encoder (:mod:`medmtl.wsi.patch_encoder`) for a batch of tiles, so the two cannot drift.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from medmtl.errors import DataError

# ITU-R BT.601 luma weights (what PIL's convert("L") uses), applied in float.
LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


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


def _fixed_divisor(dtype: np.dtype) -> float | None:
    """255 for uint8 and 65535 for uint16 (either byte order): the types whose range fixes the scale."""
    if dtype.kind == "u" and dtype.itemsize in (1, 2):
        return 255.0 if dtype.itemsize == 1 else 65535.0
    return None


def _scale_to_unit(pixels: np.ndarray, source: str | Path | None) -> np.ndarray:
    """Pixels ``[N, ...]`` of ``N`` images as float32 in [0, 1], according to their type.

    uint8 is divided by 255 and uint16 by 65535; bool becomes 0/1. Other types are scaled by each
    image's own values: integers within [0, 255] (else within [0, 65535]) are divided by 255
    (65535), floats within [0, 1] are kept, anything else is min-max scaled (a constant image
    becomes 0).
    """
    divisor = _fixed_divisor(pixels.dtype)
    if divisor is not None:
        scaled = pixels.astype(np.float32)
        scaled /= np.float32(divisor)
        return scaled
    if pixels.dtype == np.bool_:
        return pixels.astype(np.float32)
    values = pixels.astype(np.float64)
    if not np.isfinite(values).all():
        raise DataError(source, "image holds NaN or infinite values")
    axes = tuple(range(1, values.ndim))
    low = values.min(axis=axes, keepdims=True)
    high = values.max(axis=axes, keepdims=True)
    # each image becomes (values - offset) / scale; min-max unless its type and range say otherwise
    offset = low
    scale = np.where(high == low, 1.0, high - low)
    if np.issubdtype(pixels.dtype, np.integer):
        eight = (low >= 0) & (high <= 255)
        sixteen = (low >= 0) & (high <= 65535)
        offset = np.where(sixteen, 0.0, offset)
        scale = np.where(eight, 255.0, np.where(sixteen, 65535.0, scale))
    else:
        unit = (low >= 0) & (high <= 1)
        offset = np.where(unit, 0.0, offset)
        scale = np.where(unit, 1.0, scale)
    return ((values - offset) / scale).astype(np.float32)


def images_to_chw(pixels: np.ndarray, channels: int, source: str | Path | None = None) -> np.ndarray:
    """A batch of images as float32 ``[N, channels, H, W]`` in [0, 1]: what an encoder is fed.

    ``pixels``: ``[N, H, W]`` (grey) or ``[N, H, W, K]`` with ``K`` = 1 (grey), 2 (grey + alpha),
    3 (RGB) or 4 (RGBA); uint8 (divided by 255), uint16 (by 65535), bool, or other integers and
    floats, which are scaled each image by its own values (see :func:`_scale_to_unit`). An alpha
    channel is dropped; RGB becomes grey by BT.601 luminance (:data:`LUMA`) for ``channels=1``;
    grey is repeated for ``channels=3``. ``source`` names the images in errors.

    RGB kept as RGB is returned as a transposed view of ``[N, H, W, 3]`` memory (channels-last,
    what ``torch.channels_last`` is): no copy, and torch's CPU convolutions run faster on it than
    on ``[N, C, H, W]``-contiguous input. ``np.ascontiguousarray`` it where a layout matters.
    """
    if channels not in (1, 3):
        raise DataError(source, f"channels must be 1 or 3, not {channels}")
    pixels = np.asarray(pixels)
    if pixels.ndim == 3:
        pixels = pixels[..., None]
    elif pixels.ndim != 4:
        raise DataError(source, f"image batch has shape {tuple(pixels.shape)}; expected [N, H, W] or [N, H, W, C]")
    count = pixels.shape[-1]
    if count in (2, 4):  # grey+alpha or RGB+alpha: alpha is not intensity
        pixels = pixels[..., : count - 1]
        count -= 1
    if count not in (1, 3):
        raise DataError(source, f"image has {pixels.shape[-1]} channels; expected 1 (grey) or 3 (RGB)")
    unit = _scale_to_unit(pixels, source)  # [N, H, W, count], a new array
    if count == 3:
        if channels == 1:
            return np.clip(unit @ LUMA, 0.0, 1.0)[:, None]
        if _fixed_divisor(pixels.dtype) is None:  # uint8/uint16 divided by their maximum are in [0, 1]
            np.clip(unit, 0.0, 1.0, out=unit)
        return unit.transpose(0, 3, 1, 2)
    grey = np.clip(unit[..., 0], 0.0, 1.0)[:, None]  # [N, 1, H, W]
    return grey if channels == 1 else np.repeat(grey, 3, axis=1)


def array_to_chw(array: np.ndarray, channels: int, source: str | Path | None = None) -> np.ndarray:
    """One in-memory image (``[H, W]``/``[H, W, C]``, uint8, uint16 or float in [0, 1]) as ``[C, H, W]`` float32.

    The same conversion as :func:`images_to_chw`, for a batch of one (the result is contiguous).
    """
    array = np.asarray(array)
    if array.ndim not in (2, 3):
        raise DataError(source, f"image array has shape {tuple(array.shape)}; expected [H, W] or [H, W, C]")
    return np.ascontiguousarray(images_to_chw(array[None], channels, source)[0])


def read_image(path: str | Path, channels: int = 1) -> np.ndarray:
    """An image file as float32 ``[channels, H, W]`` in [0, 1].

    8-bit images are divided by 255 and 16-bit ones by 65535; RGB becomes grey by luminance
    when ``channels=1`` and grey is repeated when ``channels=3``.
    """
    path, pixels, _ = _open(path)
    return array_to_chw(pixels, channels, path)


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
