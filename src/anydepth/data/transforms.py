"""Per-sample CPU transforms run in the DataLoader workers: resize, crop and label conversion only.

Paper (supplementary, implementation details): "We resize the shorter side of all images to 518 and keep the
original aspect ratio. All images are cropped to 518x518 during training. During inference, we do not crop images
and only ensure both sides are multipliers of 14 [...]. Evaluation is performed at the original resolution by
interpolating the prediction." Labels (Sec. 3.1): "the depth value is first transformed into the disparity space by
d = 1/t and then normalized to 0~1 on each depth map"; sky (Sec. 3.2): "set its disparity value as 0 (farthest)".

What is deliberately *not* here: ImageNet normalisation, the strong colour perturbation, CutMix and the horizontal
flip. They run batched on the accelerator in the LightningModule's ``on_after_batch_transfer``
(:mod:`anydepth.augment`, :func:`anydepth.models.preprocess.normalize`), so the workers only decode, resize and crop.
Training images leave the workers as uint8 (4x less inter-process and host-to-device traffic than float32) and
become float32 in ``[0, 1]`` on the device (:func:`image_to_unit_range`); evaluation images are resized in float
and stay float32.

Resampling: training images are resized with antialiased bicubic (PIL's filter, run by torch's uint8 kernel), which
low-pass filters when shrinking (its kernel support grows with the scale factor), so it is appropriate both for
upscaling and for area-style downscaling. The label,
the valid mask and the sky mask are resized with one shared nearest-neighbour index map
(:func:`nearest_indices`), so they stay aligned, an invalid pixel never blends into a valid one, and the resized
label only holds values of the original label.

Metric depth (Depth Anything Sec. 4.3, the official V2 ``metric_depth`` code): :class:`MetricTrainTransform` and
:class:`MetricEvalTransform` keep depth labels in metres as they are (no disparity, no normalisation; sky and invalid
pixels masked out) and take crops of any (h, w), e.g. the paper's 392 x 518 on NYUv2.

Reduced-scale decoding: every transform here shrinks the image to a size it knows from the stored (H, W) alone, and
says so in ``decode_size(H, W)`` (the resize target; no random scale augmentation runs here); the shard reader passes
it to ``decode_sample``, which decodes JPEGs at the smallest libjpeg DCT scale (1/8, 1/4, 1/2) still at least that
size (:func:`anydepth.images.open_rgb`). The image then arrives smaller than stored, with ``Sample.full_size`` = (H,
W); the transforms size everything from :attr:`Sample.size` (the stored size), resize the decoded image to the same
target and index the labels (never decoded at reduced scale) at their stored size, so outputs differ from full decode
+ resize only by resampling (well under one grey level on photos). ``reduced_decode=False`` turns it off.

Randomness: every random draw (the crop offset) comes from the ``numpy.random.Generator`` passed to ``__call__``.
The data pipeline (:mod:`anydepth.data.datamodules`) seeds one generator per (seed, epoch, rank, worker), so a run is
reproducible for a fixed seed, world size and number of workers, independent of torch's or numpy's global RNGs.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from anydepth.images import decoded_extent
from anydepth.models.encoder import PATCH_SIZE
from anydepth.models.preprocess import lower_bound_size
from anydepth.shards.schema import Sample, SampleError

__all__ = [
    "MIN_SIDE",
    "EvalTransform",
    "MetricEvalTransform",
    "MetricTrainTransform",
    "TrainTransform",
    "UnlabeledTransform",
    "check_crop",
    "cover_size",
    "image_to_unit_range",
    "label_to_disparity",
    "nearest_indices",
    "normalize_per_map",
    "resize_nearest",
    "short_side_size",
    "valid_pixels",
]

MIN_SIDE = 14
"""Smallest accepted image side in pixels (one ViT patch); smaller images raise ``SampleError`` (skipped)."""


def _check_size(sample: Sample) -> None:
    height, width = sample.size
    if min(height, width) < MIN_SIDE:
        raise SampleError(
            f"sample {sample.key!r}: image is {width}x{height} px, smaller than {MIN_SIDE} px (one patch) on a side"
        )


def short_side_size(height: int, width: int, size: int) -> tuple[int, int]:
    """(h, w) with the shorter side exactly ``size`` and the aspect ratio kept (longer side rounded)."""
    if height <= width:
        return size, max(size, int(round(width * size / height)))
    return max(size, int(round(height * size / width))), size


def cover_size(height: int, width: int, crop: tuple[int, int], multiple: int = PATCH_SIZE) -> tuple[int, int]:
    """(h, w) of the image scaled, aspect kept, by the smallest factor that covers ``crop`` = (h, w), each side then
    rounded to a multiple of ``multiple`` and never below the crop's: the official V2 ``metric_depth`` ``Resize(
    keep_aspect_ratio=True, ensure_multiple_of=14, resize_method="lower_bound")`` with the crop as its target."""
    scale = max(crop[0] / height, crop[1] / width)

    def rounded(side: int, minimum: int) -> int:
        size = round(scale * side / multiple) * multiple
        return size if size >= minimum else math.ceil(scale * side / multiple) * multiple

    return rounded(height, crop[0]), rounded(width, crop[1])


def nearest_indices(src: int, dst: int) -> np.ndarray:
    """Source index of each of ``dst`` output pixels for a nearest-neighbour resize of ``src`` pixels
    (pixel-centre aligned, like PIL ``NEAREST``): ``floor((i + 0.5) * src / dst)``."""
    return np.minimum(((np.arange(dst) + 0.5) * (src / dst)).astype(np.int64), src - 1)


def resize_nearest(array: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour resize of an H x W (x C) array to ``size`` = (h, w); output values are input values."""
    rows = nearest_indices(array.shape[0], size[0])
    cols = nearest_indices(array.shape[1], size[1])
    return array[rows[:, None], cols[None, :]]


def _valid(label: np.ndarray, mask: np.ndarray | None, kind: str | None) -> np.ndarray:
    valid = np.isfinite(label) & (label > 0 if mask is None else mask)  # mask default: the schema's
    return valid & (label > 0) if kind == "depth" else valid & (label >= 0)


def valid_pixels(sample: Sample) -> np.ndarray:
    """Valid label pixels: the sample's mask (explicit ``mask.png``, else the schema default ``label > 0 & finite``)
    and a finite label; additionally ``label > 0`` for depth (it is inverted) and ``label >= 0`` for disparities."""
    if sample.label is None:
        raise ValueError(f"sample {sample.key!r} has no label")
    return _valid(sample.label, sample.mask, sample.label_kind)


def label_to_disparity(label: np.ndarray, valid: np.ndarray, kind: str | None) -> np.ndarray:
    """Disparity on valid pixels (0 elsewhere): ``1 / depth`` for ``depth``, the label itself for ``disparity``
    and ``relative_disparity``."""
    label = label.astype(np.float32, copy=False)
    if kind == "depth":
        return np.where(valid, 1.0 / np.where(valid, label, 1.0), 0.0).astype(np.float32)
    if kind in ("disparity", "relative_disparity"):
        return np.where(valid, label, 0.0).astype(np.float32)
    raise ValueError(f"unknown label kind {kind!r}")


def normalize_per_map(disparity: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """``(x - min) / (max - min)`` over the valid pixels, so they span exactly ``[0, 1]``; invalid pixels are 0.
    A map whose valid pixels are all equal (or that has none) becomes all zeros: it carries no relative depth and
    the affine-invariant loss ignores a constant target's scale anyway."""
    out = np.zeros(disparity.shape, np.float32)
    if not valid.any():
        return out
    index = ... if valid.all() else valid  # all valid (a teacher's map): whole-array ops, no boolean gather/scatter
    values = disparity[index]
    low, high = float(values.min()), float(values.max())
    if high > low:
        out[index] = (values - low) / (high - low)
    return out


def image_to_unit_range(images: torch.Tensor) -> torch.Tensor:
    """``uint8`` images (the training transforms' output) -> float32 in [0, 1] on their device; float images are
    returned as they are. The LightningModules call it in ``on_after_batch_transfer``."""
    return images.float().div_(255.0) if images.dtype == torch.uint8 else images


def _resize_crop(
    sample: Sample, rng: np.random.Generator, size: tuple[int, int], crop: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The image resized to ``size`` (:func:`_resize_bicubic`) and cropped to ``crop`` at an offset drawn from
    ``rng``, and the crop's source row/column indices for the nearest-neighbour maps (label, masks)."""
    _check_size(sample)
    height, width = sample.size
    top = int(rng.integers(0, size[0] - crop[0] + 1))
    left = int(rng.integers(0, size[1] - crop[1] + 1))
    extent = decoded_extent((height, width), sample.image.shape)
    image = _resize_bicubic(sample.image, size, extent)[top : top + crop[0], left : left + crop[1]]
    rows = nearest_indices(height, size[0])[top : top + crop[0]]
    cols = nearest_indices(width, size[1])[left : left + crop[1]]
    return image, rows, cols


def _resize_bicubic(image: np.ndarray, size: tuple[int, int], extent: tuple[float, float]) -> np.ndarray:
    """H x W x 3 uint8 -> ``size`` (h, w) x 3 uint8: antialiased bicubic (PIL's filter: a = -0.5, support scaled with
    the shrink factor) over the ``extent`` (h, w) of the stored image in ``image``'s pixels (:func:`decoded_extent`).
    torch's uint8 channels-last kernel, about 4x PIL's speed, within 2 grey levels of PIL (mean difference 0.005)."""
    if not image.flags.writeable or min(image.strides) < 0:  # torch warns on read-only arrays, refuses flipped ones
        image = image.copy()
    chw = torch.from_numpy(image).permute(2, 0, 1)[None]  # channels-last strides: the fast uint8 path, no copy
    return _resize_extent(chw, size, extent, antialias=True)[0].permute(1, 2, 0).numpy()


def _resize_extent(
    image: torch.Tensor, size: tuple[int, int], extent: tuple[float, float], antialias: bool = False
) -> torch.Tensor:
    """N x C x h x w -> N x C x ``size``: bicubic mapping ``extent`` (h, w: the stored image in ``image``'s pixels,
    :func:`decoded_extent`) onto ``size``, at a hair over the exact scale so floor() never drops a row, the extra one
    then cut."""
    scale = [(1 + 1e-9) * out / side for out, side in zip(size, extent)]
    out = F.interpolate(image, scale_factor=scale, mode="bicubic", antialias=antialias, align_corners=False)
    return out[..., : size[0], : size[1]]


def _uint8_chw(image: np.ndarray) -> torch.Tensor:
    """H x W x 3 uint8 -> 3 x H x W uint8: what training transforms ship (a quarter of float32's bytes)."""
    return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))


def _image_tensor(rgb: np.ndarray) -> torch.Tensor:
    """H x W x 3 uint8 -> 3 x H x W float32 in [0, 1]. Converted in numpy: single-threaded and fast, where torch's
    small-op intra-op threading is several times slower in the main process (``num_workers=0``)."""
    chw = np.ascontiguousarray(rgb.transpose(2, 0, 1), dtype=np.float32)
    return torch.from_numpy(np.divide(chw, 255.0, out=chw))


class TrainTransform:
    """Training: shorter side -> ``size``, random ``size`` x ``size`` crop, labels -> per-map normalised disparity.

    Steps: resize the image (antialiased bicubic) so its shorter side is ``size``; draw the crop offset from ``rng``;
    take the same crop of the label, the valid mask and the sky mask through one nearest-neighbour index map;
    convert the label to disparity (``1/d`` for depth; disparities as they are) on valid pixels; set sky pixels to
    disparity 0 and count them as valid (Sec. 3.2: "set its disparity value as 0 (farthest)"), before normalising,
    so sky stays the farthest value of the map; normalise the crop to ``[0, 1]`` over its valid pixels
    (:func:`normalize_per_map`). The normalisation is over the crop, i.e. the map the network is trained on.

    Returns ``{"image": 3 x S x S uint8 RGB (the workers ship bytes, a quarter of float32; the LightningModule
    turns them into [0, 1] floats on the device with :func:`image_to_unit_range`), "label": S x S float32 in [0, 1],
    "mask": S x S bool, "key": str, "label_kind": str}``; ``label``/``mask`` only for labeled samples.
    Raises ``SampleError`` for images under 14 px per side (the pipeline skips and logs such samples). With
    ``reduced_decode`` (default), :meth:`decode_size` lets the reader decode JPEGs at reduced scale (module docstring).
    """

    def __init__(self, size: int = 518, reduced_decode: bool = True) -> None:
        if size < MIN_SIDE:
            raise ValueError(f"size must be at least {MIN_SIDE}, got {size}")
        self.size, self.reduced_decode = size, reduced_decode

    def decode_size(self, height: int, width: int) -> tuple[int, int] | None:
        """The (h, w) the image of a stored ``height`` x ``width`` sample is resized to, before the crop: the least a
        reduced-scale JPEG decode must keep (None when ``reduced_decode`` is off)."""
        return short_side_size(height, width, self.size) if self.reduced_decode else None

    def __call__(self, sample: Sample, rng: np.random.Generator) -> dict[str, Any]:
        size = short_side_size(*sample.size, self.size)
        image, rows, cols = _resize_crop(sample, rng, size, (self.size, self.size))
        out: dict[str, Any] = {"image": _uint8_chw(image), "key": sample.key, "label_kind": sample.label_kind}
        if sample.label is None:
            return out
        index = (rows[:, None], cols[None, :])  # crop first, then work on S x S pixels only
        label = sample.label[index]
        valid = _valid(label, None if sample.mask is None else sample.mask[index], sample.label_kind)
        disparity = label_to_disparity(label, valid, sample.label_kind)
        if sample.sky is not None:
            sky = sample.sky[index]
            disparity[sky] = 0.0
            valid = valid | sky
        out["label"] = torch.from_numpy(normalize_per_map(disparity, valid))
        out["mask"] = torch.from_numpy(np.ascontiguousarray(valid))
        return out


class UnlabeledTransform(TrainTransform):
    """Unlabeled and pseudo-labeled training samples: exactly the :class:`TrainTransform` resize and crop.

    A sample without a label yields ``{"image", "key", "label_kind": None}``; a pseudo-labeled sample
    (``label_kind == "relative_disparity"``) keeps its label, cropped with the image and normalised per map like any
    label, plus its ``mask``. One batch must not mix both (the collate refuses it with a clear error).
    """


class EvalTransform:
    """Evaluation / inference: no crop; the image is resized to :func:`lower_bound_size` (aspect ratio kept, shorter
    side >= ``size``, both sides multiples of 14) with the official preprocessing's resize (torch bicubic,
    ``align_corners=False``, no antialias, as :func:`anydepth.models.preprocess.prepare_images`; values may overshoot
    ``[0, 1]`` slightly, as there). The label stays at its ORIGINAL resolution and in its stored kind and unit (e.g.
    depth in metres: the metrics align the prediction to ``1 / depth`` themselves): the prediction is upsampled to the
    label, as the paper evaluates "at the original resolution by interpolating the prediction".

    Returns ``{"image": 3 x h x w float32, "original_size": int64 tensor [H, W], "key", "label_kind"}`` plus
    ``"label"`` (H x W float32, raw) and ``"mask"`` (H x W bool, :func:`valid_pixels`) for labeled samples.
    Samples of different sizes cannot be stacked: evaluate with batch size 1 (the default of the eval loaders), or
    only batch shards whose images share one size; the collate raises a clear error otherwise. With ``reduced_decode``
    (default) the reader may decode JPEGs at a reduced scale, never below the network size (:meth:`decode_size`);
    ``original_size``, label and mask stay those of the stored image. As the official resize does not antialias, a
    full decode aliases when shrinking more than about 3x, and a reduced-scale decode (pre-filtered by the DCT scaling)
    then differs by more than resampling noise (1500 x 2250 photos: 0.4-0.7 grey levels on average at 518, 0.8-2 at
    252); ``reduced_decode=False`` keeps the official pixels exactly.
    """

    def __init__(self, size: int = 518, reduced_decode: bool = True) -> None:
        if size < MIN_SIDE:
            raise ValueError(f"size must be at least {MIN_SIDE}, got {size}")
        self.size, self.reduced_decode = size, reduced_decode

    def network_size(self, height: int, width: int) -> tuple[int, int]:
        """The network input size of an ``height`` x ``width`` image: :func:`lower_bound_size`."""
        return lower_bound_size(height, width, self.size)

    def decode_size(self, height: int, width: int) -> tuple[int, int] | None:
        """:meth:`network_size`, the least a reduced-scale JPEG decode must keep (None: ``reduced_decode`` off)."""
        return self.network_size(height, width) if self.reduced_decode else None

    def __call__(self, sample: Sample, rng: np.random.Generator | None = None) -> dict[str, Any]:
        _check_size(sample)
        height, width = sample.size
        image, size = _image_tensor(sample.image)[None], self.network_size(height, width)
        if sample.full_size is None:
            image = F.interpolate(image, size=size, mode="bicubic", align_corners=False)
        else:  # reduced-scale decode: the stored image's extent, not the decoded array, maps onto ``size``
            image = _resize_extent(image, size, decoded_extent(sample.full_size, sample.image.shape))
        out: dict[str, Any] = {
            "image": image[0],
            "original_size": torch.tensor([height, width]),
            "key": sample.key,
            "label_kind": sample.label_kind,
        }
        if sample.label is not None:
            valid = valid_pixels(sample)
            out["label"] = torch.from_numpy(np.where(valid, sample.label, 0.0).astype(np.float32))
            out["mask"] = torch.from_numpy(valid)
        return out


def check_crop(crop: tuple[int, int] | list[int]) -> tuple[int, int]:
    """``crop`` as an (h, w) tuple; ``ValueError`` unless both sides are positive multiples of 14 (ViT patches)."""
    if len(crop) != 2 or min(crop) < PATCH_SIZE or any(side % PATCH_SIZE for side in crop):
        raise ValueError(
            f"crop must be (height, width), both multiples of {PATCH_SIZE} (the ViT patch), got {list(crop)}; "
            "e.g. [392, 518] (the paper's NYUv2 crop), [378, 770] (its KITTI 384 x 768 at multiples of 14)"
        )
    return int(crop[0]), int(crop[1])


def _metric_depth(sample: Sample) -> tuple[np.ndarray, np.ndarray] | None:
    """Depth in metres (0 where invalid) and the valid pixels of a labeled sample: :func:`valid_pixels` without the
    sky (it has no metric depth); None for an unlabeled sample. ``SampleError`` unless the label is ``depth``."""
    if sample.label is None:
        return None
    if sample.label_kind != "depth":
        raise SampleError(
            f"sample {sample.key!r}: metric depth needs depth labels in metres (label_kind 'depth'), got "
            f"{sample.label_kind!r}; disparities have no metric scale"
        )
    valid = valid_pixels(sample)
    if sample.sky is not None:
        valid &= ~sample.sky
    return np.where(valid, sample.label, 0.0).astype(np.float32), valid


class MetricTrainTransform:
    """Metric training: scale to cover ``crop`` = (h, w) (:func:`cover_size`: aspect kept, sides multiples of 14),
    random (h, w) crop; depth labels stay in metres.

    As the official V2 ``metric_depth`` datasets (``Resize(lower_bound, ensure_multiple_of=14)`` then ``Crop``), with
    the crop (h, w) free: 518 x 518 for Hypersim / Virtual KITTI 2 (V2), 392 x 518 for NYUv2 (paper, supplementary
    Sec. 1). Label, valid mask and sky are cropped through one nearest-neighbour index map, so the label only holds
    stored depths; sky pixels are invalid (no metric depth). The horizontal flip runs on the device
    (:meth:`~anydepth.training.DepthTrainingModule.flip_labeled`), the depth-range filter in the loss.

    Returns ``{"image": 3 x h x w uint8 RGB, "label": h x w float32 depth in metres (0 where invalid), "mask": h x w
    bool, "key", "label_kind"}``. ``SampleError`` (the pipeline skips and logs the sample) for labels other than
    ``depth`` and images under 14 px per side.
    """

    def __init__(self, crop: tuple[int, int] = (518, 518), reduced_decode: bool = True) -> None:
        self.crop, self.reduced_decode = check_crop(crop), reduced_decode

    def decode_size(self, height: int, width: int) -> tuple[int, int] | None:
        """:func:`cover_size`, the least a reduced-scale JPEG decode must keep (None when ``reduced_decode`` is off)."""
        return cover_size(height, width, self.crop) if self.reduced_decode else None

    def __call__(self, sample: Sample, rng: np.random.Generator) -> dict[str, Any]:
        depth = _metric_depth(sample)
        size = cover_size(*sample.size, self.crop)
        image, rows, cols = _resize_crop(sample, rng, size, self.crop)
        out: dict[str, Any] = {"image": _uint8_chw(image), "key": sample.key, "label_kind": sample.label_kind}
        if depth is not None:
            index = (rows[:, None], cols[None, :])
            out["label"], out["mask"] = torch.from_numpy(depth[0][index]), torch.from_numpy(depth[1][index])
        return out


class MetricEvalTransform(EvalTransform):
    """Metric evaluation: :class:`EvalTransform` with the image scaled as :class:`MetricTrainTransform` scales it
    for the same ``crop`` (:func:`cover_size`), uncropped, so the network sees objects at their training size (the
    official V2 validation resizes with the training ``Resize``); depth labels in metres at the original
    resolution, sky invalid. ``SampleError`` for labels other than ``depth``."""

    def __init__(self, crop: tuple[int, int] = (518, 518), reduced_decode: bool = True) -> None:
        self.crop = check_crop(crop)
        super().__init__(
            min(self.crop), reduced_decode
        )  # its size: the shorter crop side, the scale of the images it covers

    def network_size(self, height: int, width: int) -> tuple[int, int]:
        return cover_size(height, width, self.crop)

    def __call__(self, sample: Sample, rng: np.random.Generator | None = None) -> dict[str, Any]:
        depth = _metric_depth(sample)
        out = super().__call__(sample, rng)
        if depth is not None:
            out["label"], out["mask"] = torch.from_numpy(depth[0]), torch.from_numpy(depth[1])
        return out
