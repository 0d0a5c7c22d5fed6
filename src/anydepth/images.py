"""Image files: the extensions anydepth reads and one PIL reader, shared by inference and the dataset readers.

Reduced-scale decoding (:func:`open_rgb` with ``needed``): a consumer that will shrink an image anyway (training at a
518 shorter side, evaluation at the network size, ``--max-side`` builds) says which (h, w) it needs from an image
stored at (H, W), and a JPEG is then decoded by libjpeg at the smallest DCT scale (1/4, 1/2 or 1, Pillow's
``Image.draft``) whose size is still at least that on both sides. The decoded image is never smaller than needed, so
after the consumer's resize (over :func:`decoded_extent`) it differs from full decode + the same resize only by
resampling (the DCT scaling is an area-like low-pass): under one grey level on average on photos, at a fraction of
the decoding time. libjpeg's 1/8 (DC coefficients only: a plain 8 x 8 block average) is not used, as it strays about a
grey level from a bicubic resize. Other formats, and JPEGs whose EXIF orientation is applied and not the identity
(their partial edge blocks would move to another side), always decode at full size.
"""

from __future__ import annotations

import io
import math
import os
from collections.abc import Callable

import numpy as np
from PIL import Image, ImageOps

IMAGE_EXTENSIONS: tuple[str, ...] = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")

SizeNeeded = Callable[[int, int], "tuple[int, int] | None"]
"""Maps an image's stored (height, width) to the smallest (height, width) its consumer needs decoded (None: all)."""

_TRANSPOSING = (5, 6, 7, 8)  # EXIF orientations that swap width and height
_LEAST_SCALE = 4  # libjpeg scale 1/4 at most (see the module docstring)
BUILD_DECODE_MARGIN = 1.25
"""``--max-side`` builds decode at least this times the stored size per side: Lanczos is sharp, and a DCT scale just
above the target strays up to 1.4 grey levels (measured on scikit-image's photos), with this margin 0.65 at most."""


def open_rgb(
    file: str | os.PathLike | bytes, needed: SizeNeeded | None = None, exif: bool = False
) -> tuple[np.ndarray, tuple[int, int]]:
    """Decode ``file`` (a path, or an image file's bytes) as H x W x 3 uint8 RGB; returns it with the stored size (H,
    W) (after the EXIF orientation when ``exif``). With ``needed``, a JPEG is decoded at the smallest libjpeg DCT
    scale (1/4 at most) whose (h, w) is at least ``needed(H, W)`` on both sides (see the module docstring); the
    returned image is then smaller than (H, W) when that scale is below 1. Raises ``PIL.UnidentifiedImageError`` or
    ``OSError`` for data PIL cannot decode."""
    with Image.open(io.BytesIO(file) if isinstance(file, bytes) else file) as img:
        orientation = img.getexif().get(0x0112, 1) if exif else 1
        width, height = img.size[::-1] if orientation in _TRANSPOSING else img.size
        target = needed(height, width) if needed is not None and img.format == "JPEG" and orientation == 1 else None
        if target is not None:  # PIL's draft takes (w, h); asking a quarter of a side (rounded down) caps it at 1/4
            img.draft("RGB", (max(target[1], width // _LEAST_SCALE, 1), max(target[0], height // _LEAST_SCALE, 1)))
        if exif:
            img = ImageOps.exif_transpose(img)
        return np.array(img.convert("RGB"), dtype=np.uint8), (height, width)


def decoded_extent(full_size: tuple[int, int], decoded: tuple[int, ...]) -> tuple[float, float]:
    """The stored image's (H, W) = ``full_size`` in pixels of its ``decoded`` shape: (H / s, W / s) for libjpeg's
    scale 1/s. libjpeg rounds scaled sides up, so when ``s`` does not divide a side the last decoded row or column
    covers only part of a block; a resize that maps this extent (not the whole decoded array) onto its target keeps
    the stored image's geometry exactly."""
    height, width = full_size
    scale = next((s for s in (1, 2, 4, 8) if (-(-height // s), -(-width // s)) == tuple(decoded[:2])), None)
    if scale is None:
        raise ValueError(f"a {decoded[:2]} image is no libjpeg scale (1, 1/2, 1/4, 1/8) of {full_size}")
    return height / scale, width / scale


def max_side_size(height: int, width: int, max_side: int | None) -> tuple[int, int] | None:
    """The (h, w) of a ``height x width`` image shrunk so its longer side is ``max_side`` (aspect kept, rounded);
    None when ``max_side`` is None or the image is not longer (``anydepth shards build --max-side``)."""
    if max_side is None or max(height, width) <= max_side:
        return None
    factor = max_side / max(height, width)
    return max(1, round(height * factor)), max(1, round(width * factor))


def read_rgb_within(
    path: str | os.PathLike, max_side: int | None, exif: bool = False
) -> tuple[np.ndarray, tuple[int, int]]:
    """``read_rgb`` shrunk (Lanczos) to :func:`max_side_size` when the image is longer than ``max_side``, a JPEG
    decoded at a reduced libjpeg scale (:func:`open_rgb`) that keeps at least :data:`BUILD_DECODE_MARGIN` times the
    target size per side (where the stored image has it); returns the image and the stored (H, W). Differs from a full
    decode + the same Lanczos resize only by resampling: at most 0.65 grey levels on average on real photos (1.4 with
    no margin, where a scale lands just above the target)."""

    def needed(height: int, width: int) -> tuple[int, int] | None:
        target = max_side_size(height, width, max_side)
        if target is None:
            return None
        return min(height, math.ceil(target[0] * BUILD_DECODE_MARGIN)), min(
            width, math.ceil(target[1] * BUILD_DECODE_MARGIN)
        )

    image, full = open_rgb(path, needed=needed, exif=exif)
    target = max_side_size(*full, max_side)
    if target is None:
        return image, full
    extent_h, extent_w = decoded_extent(full, image.shape)
    shrunk = Image.fromarray(image).resize(
        (target[1], target[0]), Image.Resampling.LANCZOS, box=(0.0, 0.0, extent_w, extent_h)
    )
    return np.asarray(shrunk), full


def read_rgb(path: str | os.PathLike, exif: bool = False) -> np.ndarray:
    """Read an image as H x W x 3 uint8 RGB; ``exif=True`` applies the EXIF orientation tag first.

    Readers of labeled data keep ``exif=False``: their labels are aligned with the stored pixel grid.
    Raises ``PIL.UnidentifiedImageError`` or ``OSError`` for files PIL cannot decode."""
    return open_rgb(path, exif=exif)[0]
