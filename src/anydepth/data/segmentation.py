"""Segmentation data (paper Sec. 4.4; supplementary Sec. 1: 896 x 896 crops, "other training configurations are the
same as the original codebase", i.e. the MMSegmentation pipeline of the official Depth-Anything ``semseg`` configs):

    RandomChoiceResize (shorter side 0.5 .. 2.0 x 896 in steps of 0.1, longer side <= 4 x 896)
    -> RandomCrop 896 x 896 (cat_max_ratio 0.75) -> RandomFlip 0.5 -> PhotoMetricDistortion

The geometric part runs in the DataLoader workers (:class:`SegTrainTransform`): one PIL resample of only the crop's
source box, so a worker produces 896 x 896 pixels whatever the scale, and batches have one size. The per-pixel
part runs batched on the device (:class:`SegmentationAugmentation`: the flip and Kornia's brightness, contrast,
saturation and hue), in the LightningModule's ``on_after_batch_transfer``. Evaluation (:class:`SegEvalTransform`)
resizes the image (shorter side 896, longer <= 3584) and keeps the labels at their original resolution, where the
metrics are computed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import kornia.augmentation as K
import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor, nn

from anydepth.data.datamodules import _ShardDataModule
from anydepth.data.transforms import nearest_indices
from anydepth.shards.reader import ShardLoader
from anydepth.shards.schema import Sample, SampleError

__all__ = [
    "DEFAULT_SCALES",
    "AugmentationConfig",
    "SegEvalTransform",
    "SegTrainTransform",
    "SegmentationAugmentation",
    "SegmentationDataModule",
    "eval_image",
    "rescaled_size",
]

DEFAULT_SCALES: tuple[float, ...] = tuple(x / 10 for x in range(5, 21))
"""Official ``RandomChoiceResize(scales=[int(x * 0.1 * 896) for x in range(5, 21)])``: shorter side 0.5 .. 2.0 x
the crop size."""


def _seg(sample: Sample) -> np.ndarray:
    if sample.seg is None:
        raise SampleError(f"sample {sample.key!r} has no seg.png: segmentation needs shards with class ids")
    return sample.seg


def rescaled_size(height: int, width: int, short: float, long: float) -> tuple[int, int]:
    """MMSegmentation's keep-ratio ``Resize(scale=(long, short))``: the largest size with the aspect ratio kept, the
    shorter side at most ``short`` and the longer at most ``long``."""
    factor = min(short / min(height, width), long / max(height, width))
    return max(1, int(height * factor + 0.5)), max(1, int(width * factor + 0.5))


def eval_image(rgb: np.ndarray, size: int, max_long_ratio: float) -> Tensor:
    """``H x W x 3`` uint8 RGB -> ``3 x h x w`` float32 in [0, 1] at :func:`rescaled_size` (shorter side ``size``),
    resized bilinearly as MMSegmentation's test ``Resize``."""
    height, width = rgb.shape[:2]
    image = torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1))).float().div_(255)[None]
    shape = rescaled_size(height, width, size, max_long_ratio * size)
    return F.interpolate(image, size=shape, mode="bilinear", align_corners=False)[0].clamp_(0, 1)


class SegTrainTransform:
    """Random rescale + random crop of image and class ids, padded to ``size`` x ``size`` (MMSegmentation's
    ``RandomChoiceResize`` + ``RandomCrop`` + the data preprocessor's padding).

    The shorter side becomes ``int(scale * size)`` for a ``scale`` drawn from ``scales`` (the longer side capped at
    ``max_long_ratio * size``); a crop of at most ``size`` x ``size`` is drawn, redrawn up to ``crop_tries`` times
    while one class covers ``cat_max_ratio`` or more of its labeled pixels; image (PIL bilinear) and class ids
    (nearest) are resampled from that crop's source box only; the padding is 0 for the image and ``ignore_index``
    for the ids. Returns ``{"image": 3 x S x S uint8, "seg": S x S int32, "key"}``.
    """

    def __init__(
        self,
        size: int = 896,
        scales: Sequence[float] = DEFAULT_SCALES,
        max_long_ratio: float = 4.0,
        cat_max_ratio: float = 0.75,
        crop_tries: int = 10,
        ignore_index: int = 255,
    ) -> None:
        if size < 14 or not scales or min(scales) <= 0:
            raise ValueError(f"need size >= 14 and positive scales, got size {size}, scales {list(scales)}")
        self.size, self.scales, self.max_long_ratio = size, tuple(scales), max_long_ratio
        self.cat_max_ratio, self.crop_tries, self.ignore_index = cat_max_ratio, crop_tries, ignore_index

    def _balanced(self, ids: np.ndarray) -> bool:
        """MMSegmentation's ``cat_max_ratio`` test: several labeled classes, none covering the ratio or more."""
        counts = np.bincount(ids[ids != self.ignore_index].ravel())
        counts = counts[counts > 0]
        return len(counts) > 1 and counts.max() / counts.sum() < self.cat_max_ratio

    def __call__(self, sample: Sample, rng: np.random.Generator) -> dict[str, Any]:
        seg = _seg(sample)
        height, width = seg.shape
        short = int(self.scales[int(rng.integers(len(self.scales)))] * self.size)
        new_h, new_w = rescaled_size(height, width, short, self.max_long_ratio * self.size)
        crop_h, crop_w = min(self.size, new_h), min(self.size, new_w)
        rows, cols = nearest_indices(height, new_h), nearest_indices(width, new_w)
        for _ in range(max(1, self.crop_tries) if self.cat_max_ratio < 1 else 1):
            top, left = int(rng.integers(new_h - crop_h + 1)), int(rng.integers(new_w - crop_w + 1))
            ids = seg[rows[top : top + crop_h, None], cols[None, left : left + crop_w]]
            if self.cat_max_ratio >= 1 or self._balanced(ids):
                break
        sx, sy = width / new_w, height / new_h  # the crop's source box in original pixels
        box = (left * sx, top * sy, (left + crop_w) * sx, (top + crop_h) * sy)
        image = np.asarray(Image.fromarray(sample.image).resize((crop_w, crop_h), Image.Resampling.BILINEAR, box=box))
        canvas = np.zeros((3, self.size, self.size), np.uint8)
        canvas[:, :crop_h, :crop_w] = image.transpose(2, 0, 1)
        labels = np.full((self.size, self.size), self.ignore_index, np.int32)
        labels[:crop_h, :crop_w] = ids
        return {"image": torch.from_numpy(canvas), "seg": torch.from_numpy(labels), "key": sample.key}


class SegEvalTransform:
    """Evaluation: the image as :func:`eval_image` makes it (shorter side ``size``, longer at most
    ``max_long_ratio * size``), the class ids at the original resolution: ``{"image": 3 x h x w float32, "seg":
    H x W int32, "original_size": [H, W], "key"}``; images of different sizes need batch size 1."""

    def __init__(self, size: int = 896, max_long_ratio: float = 4.0) -> None:
        if size < 14:
            raise ValueError(f"size must be at least 14, got {size}")
        self.size, self.max_long_ratio = size, max_long_ratio

    def __call__(self, sample: Sample, rng: np.random.Generator | None = None) -> dict[str, Any]:
        seg = _seg(sample)
        return {
            "image": eval_image(sample.image, self.size, self.max_long_ratio),
            "seg": torch.from_numpy(seg.astype(np.int32)),
            "original_size": torch.tensor(seg.shape),
            "key": sample.key,
        }


@dataclass(frozen=True)
class AugmentationConfig:
    """The per-pixel training augmentations (official configs: MMSegmentation ``RandomFlip(prob=0.5)`` and
    ``PhotoMetricDistortion`` defaults): flip probability, brightness shift +-``brightness_delta`` / 255 (additive),
    contrast and saturation factor ranges, hue shift +-``hue_delta`` OpenCV hue units (of 180), each colour step
    applied with probability ``p`` per image."""

    flip_p: float = 0.5
    brightness_delta: float = 32.0
    contrast: tuple[float, float] = (0.5, 1.5)
    saturation: tuple[float, float] = (0.5, 1.5)
    hue_delta: float = 18.0
    p: float = 0.5


class SegmentationAugmentation(nn.Module):
    """The per-pixel training augmentations of :class:`AugmentationConfig`, batched on the device: a joint
    horizontal flip of images and class ids, then MMSegmentation's ``PhotoMetricDistortion`` with Kornia's
    brightness, contrast, saturation and hue (MMSegmentation draws contrast before or after saturation and hue at
    random; here always before).

    Input: images ``B x 3 x H x W`` float in [0, 1] (not normalised) and ids ``B x H x W``; output: the same.
    Randomness: torch's global RNG (the flip on the device, Kornia's factors on the host)."""

    def __init__(self, config: AugmentationConfig | None = None) -> None:
        super().__init__()
        self.config = config = config or AugmentationConfig()
        delta, hue = config.brightness_delta / 255, config.hue_delta / 180
        self.photometric = nn.Sequential(
            K.RandomBrightness((1 - delta, 1 + delta), p=config.p),
            K.RandomContrast(tuple(config.contrast), p=config.p),
            K.RandomSaturation(tuple(config.saturation), p=config.p),
            K.RandomHue((-hue, hue), p=config.p),
        )

    def forward(self, images: Tensor, seg: Tensor) -> tuple[Tensor, Tensor]:
        flipped = torch.rand(images.shape[0], device=images.device) < self.config.flip_p
        images = torch.where(flipped[:, None, None, None], images.flip(-1), images)
        seg = torch.where(flipped[:, None, None], seg.flip(-1), seg)
        return self.photometric(images).clamp(0, 1), seg


class SegmentationDataModule(_ShardDataModule):
    """Shards with ``seg.png``: ``train_shards`` through :class:`SegTrainTransform`, ``val_shards`` (optional; also
    the test and predict loader, for ``anydepth eval --task seg``) through :class:`SegEvalTransform`.

    Train batches: ``{"image": B x 3 x S x S uint8, "seg": B x S x S int32, "key"}`` (``S = size``). Validation
    batches (``val_batch_size``, default 1): ``image`` float at :func:`rescaled_size`, ``seg`` at the original size,
    ``original_size``, ``key``.

    Args: ``size`` the crop and the evaluation shorter side (896 in the paper); ``scales``, ``max_long_ratio``,
    ``cat_max_ratio``, ``ignore_index`` as :class:`SegTrainTransform`; the rest as
    :class:`~anydepth.data.datamodules.LabeledDataModule` (``batch_size`` per rank, exact epochs by default).
    """

    def __init__(
        self,
        train_shards: list[str] | None = None,
        val_shards: list[str] | None = None,
        batch_size: int = 2,
        num_workers: int = 4,
        size: int = 896,
        scales: list[float] | None = None,
        max_long_ratio: float = 4.0,
        cat_max_ratio: float = 0.75,
        ignore_index: int = 255,
        seed: int = 0,
        shuffle_buffer: int = 1000,
        resampled: bool = False,
        samples_per_epoch: int | None = None,
        val_batch_size: int = 1,
        pin_memory: bool | None = None,
        rank: int | None = None,
        world_size: int | None = None,
    ) -> None:
        super().__init__(num_workers, seed, pin_memory, rank, world_size)
        self.save_hyperparameters()
        self._set_streams(
            resampled, samples_per_epoch, shuffle_buffer, val_shards, val_batch_size, train_shards=train_shards or None
        )
        self.train_shards, self.batch_size, self.size = train_shards, batch_size, size
        self._train = SegTrainTransform(  # built here, so bad settings fail when the DataModule is
            size, DEFAULT_SCALES if scales is None else scales, max_long_ratio, cat_max_ratio, ignore_index=ignore_index
        )
        self._eval = SegEvalTransform(size, max_long_ratio)

    def train_transform(self) -> SegTrainTransform:
        """:class:`SegTrainTransform` with this module's size, scales, crop ratio and ignore index."""
        return self._train

    def eval_transform(self) -> SegEvalTransform:
        """:class:`SegEvalTransform` with this module's size and longer-side cap."""
        return self._eval

    def train_dataloader(self) -> ShardLoader:
        if not self.train_shards:
            raise ValueError("data.init_args.train_shards: no training shards given")
        return self._loader(self._train_dataset(self.train_shards, self.train_transform(), self.batch_size, "seg"))

    def test_dataloader(self) -> ShardLoader | list[Any]:
        return self.val_dataloader()

    def predict_dataloader(self) -> ShardLoader | list[Any]:
        return self.val_dataloader()
