"""Safe image decoding: a cheap check of every file when a dataset is built, then plain loading.

A dataset checks its files once, at construction, so that a corrupt, truncated, empty or
non-image file is found before training starts instead of crashing an epoch halfway:

- ``check="fast"`` (the default) reads the header with ``PIL.Image.open(...).verify()``, rejects
  empty files and zero-size images, and for JPEG files looks for the end-of-image marker in the
  last bytes, which a truncated download lacks. PNG's ``verify`` already walks every chunk and its
  CRC. It costs a header read per file (files are checked on a few threads).
- ``check="full"`` decodes every pixel: slower, and also catches damage inside the compressed
  data of formats whose ``verify`` reads only the header.
- ``check="none"`` trusts the files.

Results are cached by ``(path, size, modification time)``, so building a second dataset over the
same files costs nothing. Bad files are skipped with a ``warnings.warn`` summary and listed in
``dataset.skipped``, or raise a ``ValueError`` naming them when ``strict=True``.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from typing import Literal

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch import Tensor

CheckMode = Literal["fast", "full", "none"]
ImageSize = int | tuple[int, int] | None

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm")
_JPEG_SUFFIXES = (".jpg", ".jpeg")
_JPEG_END = b"\xff\xd9"
_TAIL_BYTES = 1024  # some encoders pad after the end-of-image marker


def image_size_pair(image_size: ImageSize) -> tuple[int, int] | None:
    """``image_size`` as ``(height, width)``, or None; a bad value raises ValueError.

    Example:
        >>> image_size_pair(8), image_size_pair((4, 6)), image_size_pair(None)
        ((8, 8), (4, 6), None)
    """
    if image_size is None:
        return None
    pair = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
    if len(pair) != 2 or not all(isinstance(s, int) and not isinstance(s, bool) for s in pair):
        raise ValueError(f"image_size must be an int, (height, width) or None; got {image_size!r}")
    if min(pair) < 1:
        raise ValueError(f"image_size must be positive; got {image_size!r}")
    return (int(pair[0]), int(pair[1]))


def check_channels(channels: int) -> int:
    """``channels`` if it is 1 (greyscale, PIL mode "L") or 3 (RGB), else a ValueError."""
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 (greyscale) or 3 (RGB); got {channels!r}")
    return channels


def _jpeg_end_missing(path: str, size: int) -> bool:
    with open(path, "rb") as handle:
        handle.seek(max(0, size - _TAIL_BYTES))
        return _JPEG_END not in handle.read()


@lru_cache(maxsize=1 << 18)
def _problem(path: str, check: CheckMode, size: int, mtime_ns: int) -> str | None:
    """Why the file cannot be used as an image, or None; cached by size and modification time."""
    if size == 0:
        return "empty file (0 bytes)"
    try:
        with Image.open(path) as img:
            width, height = img.size
            img_format = img.format
            if check == "full":
                img.load()
            else:
                img.verify()
    except UnidentifiedImageError:
        return "not an image file PIL can read"
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
        return f"corrupt image ({err})"
    if width < 1 or height < 1:
        return f"image has zero size ({width}x{height})"
    if img_format == "JPEG" or path.lower().endswith(_JPEG_SUFFIXES):
        if _jpeg_end_missing(path, size):
            return "truncated JPEG (no end-of-image marker)"
    return None


def image_problem(path: str, check: CheckMode = "fast") -> str | None:
    """Why ``path`` cannot be decoded as an image (missing, empty, corrupt, truncated), or None.

    Example:
        >>> image_problem("/no/such/file.jpg")
        'missing file'
    """
    if check not in ("fast", "full", "none"):
        raise ValueError(f"check must be 'fast', 'full' or 'none'; got {check!r}")
    try:
        stat = os.stat(path)
    except OSError:
        return "missing file"
    if check == "none":
        return None
    return _problem(path, check, stat.st_size, stat.st_mtime_ns)


def check_images(
    paths: Sequence[str], *, check: CheckMode, strict: bool, owner: str
) -> tuple[np.ndarray, list[tuple[str, str]]]:
    """Check every file once: ``(keep, skipped)`` with ``keep: (n,)`` bool.

    ``skipped`` lists ``(path, reason)`` for each unusable file. With ``strict`` a ValueError
    names them; otherwise a warning summarises them (nothing is skipped silently). ``owner``
    names the dataset in the messages.
    """
    if check not in ("fast", "full", "none"):
        raise ValueError(f"check must be 'fast', 'full' or 'none'; got {check!r}")
    workers = min(8, os.cpu_count() or 1) if len(paths) > 64 else 1
    with ThreadPoolExecutor(max_workers=workers) as pool:
        problems = list(pool.map(lambda p: image_problem(p, check), paths, chunksize=64))
    keep = np.array([p is None for p in problems], dtype=bool).reshape(len(paths))
    skipped = [(path, why) for path, why in zip(paths, problems, strict=True) if why is not None]
    if skipped:
        listed = "; ".join(f"{path} ({why})" for path, why in skipped[:5])
        more = f"; and {len(skipped) - 5} more" if len(skipped) > 5 else ""
        if strict:
            raise ValueError(
                f"{owner}: {len(skipped)} of {len(paths)} image file(s) cannot be read: "
                f"{listed}{more}. Replace or delete them, or pass strict=False to skip them"
            )
        warnings.warn(
            f"{owner}: skipped {len(skipped)} of {len(paths)} image file(s) that cannot be "
            f"read: {listed}{more}. The full list is in dataset.skipped",
            stacklevel=4,  # check_images <- _set_files <- the dataset's __init__ <- the caller
        )
    return keep, skipped


def pil_to_tensor(image: Image.Image) -> Tensor:
    """A PIL image in mode "L" or "RGB" as a float32 ``(C, H, W)`` tensor in [0, 1].

    Example:
        >>> pil_to_tensor(Image.new("RGB", (3, 2), (255, 0, 51))).shape
        torch.Size([3, 2, 3])
    """
    array = np.asarray(image, dtype=np.uint8)
    tensor = torch.from_numpy(array.copy()).to(torch.float32).div_(255.0)
    return tensor.unsqueeze(0) if tensor.dim() == 2 else tensor.permute(2, 0, 1).contiguous()


def to_mode(image: Image.Image, channels: int) -> Image.Image:
    """``image`` as "L" (``channels=1``) or "RGB", its full range mapped onto 0-255.

    Pillow's own conversion clips 16-bit pixels at 255 (a 16-bit PNG turns almost white) and
    truncates floats in [0, 1] to 0 (a float TIFF turns black). Here 16-bit images ("I;16",
    and "I" within 0-65535) are divided by 257 and float images ("F") in [0, 1] multiplied
    by 255; anything outside those ranges is refused with a ValueError.
    """
    if image.mode.startswith("I;16") or image.mode in ("I", "F"):
        pixels = np.asarray(image, dtype=np.float64)
        top = 1.0 if image.mode == "F" else 65535.0
        if pixels.size and not (
            np.isfinite(pixels).all() and 0 <= pixels.min() <= pixels.max() <= top
        ):
            low, high = float(np.nanmin(pixels)), float(np.nanmax(pixels))
            raise ValueError(
                f"{image.mode} pixels range over [{low:g}, {high:g}]; deepmetric reads 16-bit "
                "images as 0-65535 and float images as 0-1: convert the image to 8-bit"
            )
        image = Image.fromarray(np.round(pixels * (255.0 / top)).astype(np.uint8), "L")
    return image.convert("L" if check_channels(channels) == 1 else "RGB")


def load_image(path: str, *, image_size: ImageSize = None, channels: int = 3) -> Tensor:
    """Decode ``path`` with pillow: RGB (or "L" when ``channels=1``), bilinear resize, CHW float.

    Returns a float32 ``(channels, height, width)`` tensor in [0, 1]; ``image_size`` is an int
    (square) or ``(height, width)``; None keeps the file's size. A file that fails to decode
    raises OSError naming it (datasets check their files when built, so this means the file
    changed since, or it has damage that only ``check="full"`` finds).
    """
    size = image_size_pair(image_size)
    try:
        with Image.open(path) as img:
            converted = to_mode(img, channels)
    except (OSError, SyntaxError, ValueError) as err:
        raise OSError(
            f"cannot decode image {path} ({err}); build the dataset with check='full' to find "
            "such files up front, then replace or delete them"
        ) from err
    if size is not None and converted.size != (size[1], size[0]):
        converted = converted.resize((size[1], size[0]), Image.Resampling.BILINEAR)
    return pil_to_tensor(converted)
