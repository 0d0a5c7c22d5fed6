"""Large real photos for reduced-scale decoding tests: scikit-image's samples upscaled and stored as shard records."""

from __future__ import annotations

from typing import Any

import numpy as np
from PIL import Image
from skimage import data

from anydepth.shards.schema import Sample, encode_sample

PHOTOS = ("astronaut", "chelsea", "coffee")
LARGE = (1500, 2250)  # (H, W), an SA-1B-like photo


def large_photo(name: str, size: tuple[int, int] = LARGE) -> np.ndarray:
    """scikit-image's photo ``name`` upscaled (PIL bicubic) to ``size`` = (H, W), H x W x 3 uint8."""
    return np.asarray(Image.fromarray(getattr(data, name)()).resize(size[::-1], Image.Resampling.BICUBIC))


def photo_record(name: str, size: tuple[int, int] = LARGE, labeled: bool = True) -> dict[str, Any]:
    """A shard record (``encode_sample``: JPEG quality 95) of :func:`large_photo`, with a random depth label and a
    mask (a quarter of the pixels invalid) at the photo's size when ``labeled``."""
    image = large_photo(name, size)
    if not labeled:
        return encode_sample(Sample(key=name, image=image, meta={"label_kind": None}))
    rng = np.random.default_rng(0)
    label = rng.uniform(0.5, 10.0, size).astype(np.float32)
    mask = rng.uniform(size=size) > 0.25
    return encode_sample(Sample(key=name, image=image, label=label, mask=mask, meta={"label_kind": "depth"}))
