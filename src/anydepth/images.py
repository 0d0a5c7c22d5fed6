"""Media files: the extensions anydepth reads (images, videos) and one image reader for inference and the datasets.

Reduced-scale decoding (:func:`open_rgb` with ``needed``): a consumer that will shrink an image anyway (training at a
518 shorter side, evaluation at the network size, ``--max-side`` builds) says which (h, w) it needs from an image
stored at (H, W), and a JPEG is then decoded by libjpeg at the smallest DCT scale (1/4, 1/2 or 1, Pillow's
``Image.draft``) whose size is still at least that on both sides. The decoded image is never smaller than needed, so
after the consumer's resize (over :func:`decoded_extent`) it differs from full decode + the same resize only by
resampling (the DCT scaling is an area-like low-pass): under one grey level on average on photos, at a fraction of
the decoding time. libjpeg's 1/8 (DC coefficients only: a plain 8 x 8 block average) is not used, as it strays about a
grey level from a bicubic resize. Other formats, and JPEGs whose EXIF orientation is applied and not the identity
(their partial edge blocks would move to another side), always decode at full size.

JPEGs are decoded by simplejpeg (libjpeg-turbo's TurboJPEG API, no PIL buffering in between): the same pixels as
Pillow's decoder at every scale (both are libjpeg-turbo with the same IDCT and upsampling; tested bit for bit),
about 1.2x (1/2 scale) to 1.5x (full size) faster on large photos (``benchmarks/loader_speed.py``). JPEGs simplejpeg
cannot decode as Pillow does (CMYK, 12-bit, damaged) go through Pillow, which decodes them or raises its usual error.
"""

from __future__ import annotations

import io
import math
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import simplejpeg
from PIL import Image, ImageOps

IMAGE_EXTENSIONS: tuple[str, ...] = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
VIDEO_EXTENSIONS: tuple[str, ...] = (".mp4", ".avi", ".mov", ".mkv", ".webm")
"""Video files ``anydepth infer --input`` takes (:mod:`anydepth.video`): one clip per run, never inside a list."""


def is_video(path: str | os.PathLike) -> bool:
    """Whether ``path`` names a video by its extension (:data:`VIDEO_EXTENSIONS`, case-insensitive)."""
    return Path(path).suffix.lower() in VIDEO_EXTENSIONS


SizeNeeded = Callable[[int, int], "tuple[int, int] | None"]
"""Maps an image's stored (height, width) to the smallest (height, width) its consumer needs decoded (None: all)."""

_TRANSPOSING = (5, 6, 7, 8)  # EXIF orientations that swap width and height
_SAME_AS_PILLOW = ("YCbCr", "Gray")  # JPEG colour spaces both decoders convert to the same RGB
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
        if img.format == "JPEG" and orientation == 1:
            target = needed(height, width) if needed is not None else None
            scale = 1 if target is None else _dct_scale(height, width, target)
            decoded = _decode_jpeg(file if isinstance(file, bytes) else _file_bytes(img), height, width, scale)
            if decoded is not None:
                return decoded, (height, width)
            if scale > 1:
                img.draft("RGB", (width // scale, height // scale))  # Pillow: floor(side / request) >= scale
        if exif:
            img = ImageOps.exif_transpose(img)
        return np.array(img.convert("RGB"), dtype=np.uint8), (height, width)


def _dct_scale(height: int, width: int, needed: tuple[int, int]) -> int:
    """The largest libjpeg downscale ``s`` in (4, 2, 1) with ``height // s`` and ``width // s`` both at least
    ``needed`` (h, w): Pillow's ``draft`` rule, capped at 1/4 (module docstring)."""
    return next(s for s in (_LEAST_SCALE, 2, 1) if s == 1 or (height // s >= needed[0] and width // s >= needed[1]))


def _file_bytes(img: Image.Image) -> bytes:
    """The whole file behind an opened (not yet loaded) PIL image; its read position is restored."""
    position = img.fp.tell()
    img.fp.seek(0)
    data = img.fp.read()
    img.fp.seek(position)
    return data


def _decode_jpeg(data: bytes, height: int, width: int, scale: int) -> np.ndarray | None:
    """``data`` decoded by simplejpeg at libjpeg scale 1/``scale`` (H x W x 3 uint8 RGB), or None where simplejpeg
    cannot, or converts to RGB otherwise than Pillow (CMYK): Pillow then decodes it, or raises its error."""
    size = (-(-height // scale), -(-width // scale))
    try:
        if simplejpeg.decode_jpeg_header(data)[2] not in _SAME_AS_PILLOW:
            return None
        image = simplejpeg.decode_jpeg(data, colorspace="RGB", min_height=size[0], min_width=size[1])
    except (ValueError, RuntimeError):
        return None
    return image if image.shape[:2] == size else None


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
