"""Image files: the extensions anydepth reads and one PIL reader, shared by inference and the dataset readers."""

from __future__ import annotations

import os

import numpy as np
from PIL import Image, ImageOps

IMAGE_EXTENSIONS: tuple[str, ...] = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")


def read_rgb(path: str | os.PathLike, exif: bool = False) -> np.ndarray:
    """Read an image as H x W x 3 uint8 RGB; ``exif=True`` applies the EXIF orientation tag first.

    Readers of labeled data keep ``exif=False``: their labels are aligned with the stored pixel grid.
    Raises ``PIL.UnidentifiedImageError`` or ``OSError`` for files PIL cannot decode."""
    with Image.open(path) as img:
        if exif:
            img = ImageOps.exif_transpose(img)
        return np.array(img.convert("RGB"), dtype=np.uint8)
