"""The shard sample schema: one module owns what a WebDataset sample holds and how it is encoded.

A sample is the set of tar members sharing a key (WebDataset convention, ``<key>.<field>``):

- ``image.jpg`` or ``image.png``: RGB, 8-bit (always present).
- ``label.npy``: H x W float16 or float32 (labeled and pseudo-labeled samples), with
  ``meta.json["label_kind"]`` one of ``depth`` (metres or an unknown unit), ``disparity`` or
  ``relative_disparity`` (pseudo labels). Non-finite or non-positive values are invalid (for disparities with
  a ``mask.png``: non-finite or negative ones); a labeled sample needs at least one valid pixel.
- ``mask.png``: optional 8-bit valid-pixel mask (non-zero = valid); default ``label > 0 & finite``.
- ``sky.png``: optional 8-bit sky mask (non-zero = sky); sky disparity is set to 0 for training.
- ``seg.png``: optional H x W semantic class ids (segmentation sets, paper Sec. 4.4), 8-bit or 16-bit single-channel
  PNG (uint8 / uint16 arrays; 8-bit palette PNGs decode to their indices); the dataset's ignore value (255 for
  ADE20K and Cityscapes) marks unlabeled pixels. A sample may hold only a segmentation (``label_kind`` None).
- ``meta.json``: ``source``, ``label_kind`` (null for unlabeled), ``original_size`` ([H, W] before
  any build-time downscaling), ``scale`` (build-time resize factor), plus anything a reader needs.

``encode_sample`` turns a ``Sample`` into the ``{"__key__": ..., "image.jpg": bytes, ...}`` dict
that webdataset's ``TarWriter`` writes; ``decode_sample`` is its inverse and validates, raising
``SampleError`` naming the key, the shard and the field. A decoded sample keeps the raw record it came
from (``Sample.record``), so ``relabel_record`` can write a new label next to the original image bytes
(pseudo labels: no image re-encoding).
"""

from __future__ import annotations

import io
import json
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image

from anydepth.images import SizeNeeded, open_rgb

LABEL_KINDS: tuple[str, ...] = ("depth", "disparity", "relative_disparity")
IMAGE_FIELDS: tuple[str, ...] = ("image.jpg", "image.png")
LABEL_FIELD, MASK_FIELD, SKY_FIELD, META_FIELD = "label.npy", "mask.png", "sky.png", "meta.json"
SEG_FIELD = "seg.png"
SEG_DTYPES: tuple[np.dtype, ...] = (np.dtype(np.uint8), np.dtype(np.uint16))
JPEG_QUALITY = 95
_KEY = re.compile(r"^[A-Za-z0-9_\-/]+$")  # no dots: WebDataset splits key and field at the first dot


class SampleError(ValueError):
    """A malformed sample; the message names the key, the shard and the field."""


@dataclass
class Sample:
    """One decoded sample. ``image`` H x W x 3 uint8 RGB; ``label`` H x W float32 or None;
    ``mask``/``sky`` H x W bool or None; ``meta`` the JSON metadata (``label_kind`` lives there);
    ``record`` the raw webdataset record (field -> bytes, ``__key__``, ``__url__``) that ``decode_sample``
    decoded it from, None for samples made in memory; ``seg`` H x W uint8 or uint16 class ids or None;
    ``full_size`` the stored image's (H, W) when ``image`` was decoded at a reduced JPEG scale (``decode_sample`` with
    ``needed``), else None. Label, masks and seg are always at the stored size, :attr:`size`."""

    key: str
    image: np.ndarray
    label: np.ndarray | None = None
    mask: np.ndarray | None = None
    sky: np.ndarray | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    record: dict[str, Any] | None = field(default=None, repr=False, compare=False)
    seg: np.ndarray | None = None
    full_size: tuple[int, int] | None = None

    @property
    def size(self) -> tuple[int, int]:
        """The stored image's (H, W): ``full_size`` if the image was decoded at a reduced scale, else its own."""
        return self.full_size if self.full_size is not None else (self.image.shape[0], self.image.shape[1])

    @property
    def label_kind(self) -> str | None:
        return self.meta.get("label_kind")

    def valid_mask(self) -> np.ndarray:
        """The explicit ``mask`` if present, else ``label > 0 & finite`` (all pixels for unlabeled samples)."""
        if self.mask is not None:
            return self.mask
        if self.label is None:
            return np.ones(self.size, bool)
        return np.isfinite(self.label) & (self.label > 0)


def _where(key: str, shard: str | None) -> str:
    return f"sample {key!r}" + (f" in shard {shard}" if shard else "")


def _has_valid_pixel(sample: Sample, label: np.ndarray) -> bool:
    """Whether ``label`` (the sample's) has one pixel that ``valid_mask`` keeps, finite and, for ``depth``, positive,
    for disparities non-negative: a pixel that training and evaluation can use."""
    usable = label > 0 if sample.label_kind == "depth" else label >= 0
    return bool(np.any(sample.valid_mask() & usable & np.isfinite(label)))


def validate_sample(sample: Sample, shard: str | None = None) -> None:
    """Raise ``SampleError`` unless ``sample`` follows the schema (types, shapes, label kind, key) and a labeled
    sample has at least one valid label pixel."""
    where = _where(sample.key, shard)
    if not _KEY.match(sample.key):
        raise SampleError(f"{where}: key must match {_KEY.pattern} (no dots)")
    image = sample.image
    if not (isinstance(image, np.ndarray) and image.ndim == 3 and image.shape[2] == 3 and image.dtype == np.uint8):
        raise SampleError(f"{where}: image must be an H x W x 3 uint8 RGB array")
    size = sample.size
    if image.shape[0] > size[0] or image.shape[1] > size[1]:
        raise SampleError(f"{where}: image is {image.shape[:2]}, larger than its full_size {size}")
    kind = sample.meta.get("label_kind")
    if sample.label is None:
        if kind is not None:
            raise SampleError(f"{where}: meta.json says label_kind={kind!r} but the sample has no label.npy")
    else:
        if kind not in LABEL_KINDS:
            raise SampleError(f"{where}: meta.json label_kind must be one of {LABEL_KINDS}, got {kind!r}")
        if sample.label.shape != size:
            raise SampleError(f"{where}: label.npy is {sample.label.shape}, the image {size}")
    for name in ("mask", "sky"):
        value = getattr(sample, name)
        if value is not None and (value.shape != size or value.dtype != bool):
            raise SampleError(f"{where}: {name}.png must be an H x W boolean mask of the image size {size}")
    seg = sample.seg
    if seg is not None and (seg.shape != size or seg.dtype not in SEG_DTYPES):
        raise SampleError(f"{where}: seg.png must be an H x W uint8 or uint16 class-id map of the image size {size}")
    if sample.label is not None and not _has_valid_pixel(sample, sample.label):
        raise SampleError(f"{where}: label has no valid pixel (all non-finite, out of range or masked out)")


def _png_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def _mask_bytes(mask: np.ndarray) -> bytes:
    return _png_bytes(mask.astype(np.uint8) * 255)


def _npy_bytes(label: np.ndarray, dtype: str) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, label.astype(dtype))
    return buffer.getvalue()


def _meta_bytes(meta: dict[str, Any]) -> bytes:
    return json.dumps(meta, sort_keys=True).encode()


def encode_sample(sample: Sample, image_format: str = "jpg", label_dtype: str = "float32") -> dict[str, Any]:
    """Validate and encode ``sample`` as a webdataset record (``TarWriter.write`` input)."""
    validate_sample(sample)
    buffer = io.BytesIO()
    if image_format == "jpg":
        Image.fromarray(sample.image).save(buffer, format="JPEG", quality=JPEG_QUALITY)
    elif image_format == "png":
        Image.fromarray(sample.image).save(buffer, format="PNG")
    else:
        raise ValueError(f"image_format must be 'jpg' or 'png', got {image_format!r}")
    record: dict[str, Any] = {"__key__": sample.key, f"image.{image_format}": buffer.getvalue()}
    if sample.label is not None:
        record[LABEL_FIELD] = _npy_bytes(sample.label, label_dtype)
    if sample.mask is not None:
        record[MASK_FIELD] = _mask_bytes(sample.mask)
    if sample.sky is not None:
        record[SKY_FIELD] = _mask_bytes(sample.sky)
    if sample.seg is not None:
        record[SEG_FIELD] = _png_bytes(sample.seg)
    record[META_FIELD] = _meta_bytes(sample.meta)
    return record


def relabel_record(
    record: dict[str, Any],
    label: np.ndarray,
    label_kind: str,
    mask: np.ndarray | None = None,
    label_dtype: str = "float32",
) -> dict[str, Any]:
    """A webdataset record (``TarWriter.write`` input) made from the raw ``record`` of a sample (``Sample.record``)
    with ``label.npy`` set to ``label`` (cast to ``label_dtype``), ``mask.png`` to ``mask`` (dropped when None: an
    old mask does not describe a new label) and ``meta.json``'s ``label_kind`` to ``label_kind``; the image,
    ``sky.png``, the rest of ``meta.json`` and any other field keep their original bytes (no re-encoding).
    Raises ``SampleError`` for an unknown label kind or a label or mask not of the image's size (from its header)."""
    key = str(record.get("__key__", "?"))
    where = _where(key, record.get("__url__"))
    image_field = _image_field(record, where)
    if label_kind not in LABEL_KINDS:
        raise SampleError(f"{where}: label_kind must be one of {LABEL_KINDS}, got {label_kind!r}")
    width, height = _decode_field(record, image_field, where, lambda b: Image.open(io.BytesIO(b)).size)
    for name, value in ((LABEL_FIELD, label), (MASK_FIELD, mask)):
        if value is not None and value.shape != (height, width):
            raise SampleError(f"{where}: new {name} is {value.shape}, the image {(height, width)}")
    meta = _decode_field(record, META_FIELD, where, json.loads) if META_FIELD in record else {}
    out = {name: value for name, value in record.items() if not name.startswith("_") and name != MASK_FIELD}
    out["__key__"] = key
    out[LABEL_FIELD] = _npy_bytes(label, label_dtype)
    if mask is not None:
        out[MASK_FIELD] = _mask_bytes(mask)
    out[META_FIELD] = _meta_bytes({**meta, "label_kind": label_kind})
    return out


def _decode_field(record: dict[str, Any], name: str, where: str, decode: Any) -> Any:
    try:
        return decode(record[name])
    except Exception as err:  # PIL, numpy and json raise many types on corrupt bytes
        raise SampleError(f"{where}: cannot decode {name} ({type(err).__name__}: {err})") from err


def _mask(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("L")) > 0


def decode_seg(data: bytes) -> np.ndarray:
    """Class ids of an 8-bit (grey or palette: the indices) or 16-bit PNG as uint8 / uint16."""
    with Image.open(io.BytesIO(data)) as image:
        if image.mode not in ("L", "P", "I;16", "I"):
            raise ValueError(f"expected a single-channel 8- or 16-bit PNG, got mode {image.mode}")
        ids = np.asarray(image)
    return ids.astype(np.uint8 if image.mode in ("L", "P") else np.uint16)


def _image_field(record: dict[str, Any], where: str) -> str:
    image_field = next((f for f in IMAGE_FIELDS if f in record), None)
    if image_field is None:
        raise SampleError(f"{where}: no image.jpg or image.png (fields: {sorted(k for k in record if k[0] != '_')})")
    return image_field


def decode_sample(record: dict[str, Any], shard: str | None = None, needed: SizeNeeded | None = None) -> Sample:
    """Decode a raw webdataset record (bytes per field) into a validated ``Sample`` that keeps ``record``.

    With ``needed`` (a transform's ``decode_size``), a JPEG image is decoded at the smallest libjpeg scale still at
    least ``needed(H, W)`` (:func:`anydepth.images.open_rgb`), and ``Sample.full_size`` records (H, W) when that is
    below full size; labels, masks and seg always decode at full size."""
    key = str(record.get("__key__", "?"))
    shard = shard or record.get("__url__")
    where = _where(key, shard)
    image_field = _image_field(record, where)
    if META_FIELD not in record:
        raise SampleError(f"{where}: no meta.json")
    image, size = _decode_field(record, image_field, where, lambda b: open_rgb(b, needed))
    meta = _decode_field(record, META_FIELD, where, json.loads)
    label = None
    if LABEL_FIELD in record:
        label = _decode_field(record, LABEL_FIELD, where, lambda b: np.load(io.BytesIO(b), allow_pickle=False))
        if label.ndim != 2 or not np.issubdtype(label.dtype, np.floating):
            raise SampleError(f"{where}: label.npy must be a 2-D float array, got {label.dtype} {label.shape}")
        label = label.astype(np.float32)
    mask = _decode_field(record, MASK_FIELD, where, _mask) if MASK_FIELD in record else None
    sky = _decode_field(record, SKY_FIELD, where, _mask) if SKY_FIELD in record else None
    seg = _decode_field(record, SEG_FIELD, where, decode_seg) if SEG_FIELD in record else None
    sample = Sample(key=key, image=image, label=label, mask=mask, sky=sky, meta=meta, record=record, seg=seg)
    sample.full_size = None if image.shape[:2] == size else size
    validate_sample(sample, shard)
    return sample
