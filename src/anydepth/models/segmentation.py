"""Semantic segmentation on a Depth Anything (or DINOv2) encoder: paper Sec. 4.4, Tables 7-8, supplementary Sec. 1.

- :class:`Feature2Pyramid`: the official neck (Depth-Anything ``semseg`` configs, MMSegmentation's ``Feature2Pyramid``
  with ``rescales=[4, 2, 1, 0.5]``): the four selected ViT blocks become maps at 4x, 2x, 1x and 0.5x the patch grid.
- Heads: :class:`~anydepth.models.mask2former.Mask2FormerHead` (the paper's, transformers' Mask2Former) or
  :class:`LightHead`, a small FPN-style fusion with cross-entropy for small budgets and tests.
- :class:`SegmentationModel`: encoder + neck + head, with its :class:`SegmentationConfig`, and ``from_checkpoint``
  for the checkpoints :class:`~anydepth.training.segmentation.SegmentationModule` writes.
- Inference (MMSegmentation's test modes): :func:`padded_scores` (whole image, padded to patch multiples),
  :func:`sliding_scores` (``mode='slide'``) and :func:`predict_scores` (single- or multi-scale, optional flip);
  :func:`segment` predicts class ids with the :class:`InferenceSettings` of a run.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from anydepth.models.depth_anything import DepthAnything, DepthAnythingConfig
from anydepth.models.encoder import PATCH_SIZE, DINOv2Encoder
from anydepth.models.mask2former import Mask2FormerHead, mask2former_config
from anydepth.models.preprocess import normalize

__all__ = [
    "SEGMENTATION_KEY",
    "Feature2Pyramid",
    "InferenceSettings",
    "LightHead",
    "SegmentationConfig",
    "SegmentationModel",
    "padded_scores",
    "predict_scores",
    "segment",
    "sliding_scores",
]

HEADS: tuple[str, ...] = ("mask2former", "light")
SEGMENTATION_KEY = "anydepth_segmentation"
"""The checkpoint entry ``{"format_version", "model": SegmentationConfig dict, "prefix"}`` of segmentation runs."""
SEGMENTATION_FORMAT_VERSION = 1
ScoreFn = Callable[[Tensor], Tensor]
"""Normalised images ``B x 3 x h x w`` (sides multiples of 14) -> class scores ``B x K x h x w``."""


class Feature2Pyramid(nn.Module):
    """ViT maps -> a pyramid, one rescale per map (MMSegmentation ``Feature2Pyramid``, as the official configs use):
    4: two stride-2 transposed convolutions with BatchNorm + GELU between; 2: one; 1: identity; 0.5: 2 x 2 max
    pooling. Widths are kept."""

    def __init__(self, embed_dim: int, rescales: Sequence[float] = (4, 2, 1, 0.5)) -> None:
        super().__init__()
        self.rescales = tuple(float(r) for r in rescales)
        self.ops = nn.ModuleList(self._op(embed_dim, r) for r in self.rescales)

    @staticmethod
    def _op(dim: int, rescale: float) -> nn.Module:
        def up() -> nn.ConvTranspose2d:
            return nn.ConvTranspose2d(dim, dim, kernel_size=2, stride=2)

        if rescale == 4:
            return nn.Sequential(up(), nn.BatchNorm2d(dim), nn.GELU(), up())
        if rescale == 2:
            return up()
        if rescale == 1:
            return nn.Identity()
        if rescale == 0.5:
            return nn.MaxPool2d(kernel_size=2, stride=2)
        raise ValueError(f"Feature2Pyramid rescales must be 4, 2, 1 or 0.5, got {rescale}")

    def forward(self, maps: Sequence[Tensor]) -> list[Tensor]:
        if len(maps) != len(self.ops):
            raise ValueError(f"Feature2Pyramid has {len(self.ops)} rescales but got {len(maps)} maps")
        return [op(x) for op, x in zip(self.ops, maps)]


def _conv_bn_relu(in_channels: int, out_channels: int, kernel_size: int) -> nn.Sequential:
    conv = nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=False)
    return nn.Sequential(conv, nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True))


class LightHead(nn.Module):
    """A light head for small budgets: each pyramid level 1 x 1 conv -> ``channels``, all upsampled to the finest
    level, concatenated, fused by a 3 x 3 conv (UPerNet's FPN fusion without its top-down path and pooling module),
    dropout 0.1 and a 1 x 1 classifier; pixel-wise cross-entropy (ignored pixels left out)."""

    def __init__(self, in_channels: int, num_classes: int, channels: int = 256, levels: int = 4) -> None:
        super().__init__()
        self.laterals = nn.ModuleList(_conv_bn_relu(in_channels, channels, 1) for _ in range(levels))
        self.fuse = _conv_bn_relu(levels * channels, channels, 3)
        self.classifier = nn.Sequential(nn.Dropout2d(0.1), nn.Conv2d(channels, num_classes, kernel_size=1))

    def forward(self, features: Sequence[Tensor]) -> Tensor:
        size = features[0].shape[-2:]
        maps = [lateral(x) for lateral, x in zip(self.laterals, features)]
        maps = [F.interpolate(m, size, mode="bilinear", align_corners=False) for m in maps]
        return self.classifier(self.fuse(torch.cat(maps, dim=1)))

    @staticmethod
    def scores(logits: Tensor, size: tuple[int, int]) -> Tensor:
        return F.interpolate(logits, size=size, mode="bilinear", align_corners=False)

    def loss(self, logits: Tensor, seg: Tensor, ignore_index: int) -> dict[str, Tensor]:
        logits = self.scores(logits, tuple(seg.shape[-2:]))
        if not (seg != ignore_index).any():  # nothing labeled: no signal (cross-entropy's mean would be NaN)
            return {"loss": logits.sum() * 0, "cross_entropy": logits.sum() * 0}
        loss = F.cross_entropy(logits, seg.long(), ignore_index=ignore_index)
        return {"loss": loss, "cross_entropy": loss}


@dataclass(frozen=True)
class SegmentationConfig:
    """Everything that rebuilds a :class:`SegmentationModel`: ``SegmentationModel.from_config(config)``."""

    backbone: DepthAnythingConfig
    classes: tuple[str, ...]
    head: str = "mask2former"
    rescales: tuple[float, ...] = (4, 2, 1, 0.5)
    light_channels: int = 256
    mask2former: dict[str, Any] = field(default_factory=dict)
    ignore_index: int = 255

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.update(backbone=self.backbone.to_dict(), classes=list(self.classes), rescales=list(self.rescales))
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SegmentationConfig:
        data = dict(data)
        data.update(
            backbone=DepthAnythingConfig.from_dict(data["backbone"]),
            classes=tuple(data["classes"]),
            rescales=tuple(data["rescales"]),
        )
        return cls(**data)


class SegmentationModel(nn.Module):
    """DINOv2 encoder (named ``pretrained`` as in :class:`DepthAnything`, so its weights load from any depth model)
    + :class:`Feature2Pyramid` over ``backbone.layer_indices`` + a head: ImageNet-normalised ``B x 3 x H x W``
    (sides multiples of 14) -> the head's outputs; :meth:`scores` gives ``B x K x H x W`` class scores.

    Args:
        backbone: the encoder's architecture (a :class:`DepthAnythingConfig`: widths, blocks, ``layer_indices``);
            its DPT sizes are unused.
        classes: class names, one per id.
        head: ``mask2former`` (paper) or ``light``.
        rescales: the neck's per-block rescales (official: 4, 2, 1, 0.5).
        light_channels: :class:`LightHead` width.
        mask2former: :func:`~anydepth.models.mask2former.mask2former_config` overrides.
        ignore_index: the label value the losses leave out.
        encoder: an existing encoder module to use (its weights kept) instead of a new one.
    """

    def __init__(
        self,
        backbone: DepthAnythingConfig,
        classes: Sequence[str],
        head: Literal["mask2former", "light"] = "mask2former",
        rescales: Sequence[float] = (4, 2, 1, 0.5),
        light_channels: int = 256,
        mask2former: dict[str, Any] | None = None,
        ignore_index: int = 255,
        encoder: DINOv2Encoder | None = None,
    ) -> None:
        super().__init__()
        if head not in HEADS:
            raise ValueError(f"head must be one of {HEADS}, got {head!r}")
        if len(classes) < 1 or len(rescales) != len(backbone.layer_indices):
            raise ValueError(
                f"need at least one class and one rescale per encoder block {list(backbone.layer_indices)}, "
                f"got {len(classes)} classes and rescales {list(rescales)}"
            )
        self.config = SegmentationConfig(
            backbone, tuple(classes), head, tuple(float(r) for r in rescales), light_channels, dict(mask2former or {}),
            ignore_index,
        )  # fmt: skip
        b = backbone
        self.pretrained = encoder or DINOv2Encoder(
            b.embed_dim, b.depth, b.num_heads, b.swiglu, b.pos_embed_interpolation
        )
        self.neck = Feature2Pyramid(b.embed_dim, rescales)
        if head == "light":
            self.head: nn.Module = LightHead(b.embed_dim, len(classes), light_channels, len(rescales))
        else:
            config = mask2former_config(b.embed_dim, len(classes), **self.config.mask2former)
            self.head = Mask2FormerHead(config, b.embed_dim)
        self.pretrained.mask_token.requires_grad_(False)  # DINOv2's masked-modelling token: no forward uses it

    @classmethod
    def from_config(cls, config: SegmentationConfig) -> SegmentationModel:
        kwargs = asdict(config) | {"backbone": config.backbone}
        return cls(**kwargs)

    @classmethod
    def from_depth_model(cls, model: DepthAnything, classes: Sequence[str], **kwargs: Any) -> SegmentationModel:
        """The segmentation network on ``model``'s encoder (the module itself, weights kept; its DPT head unused)."""
        return cls(model.config, classes, encoder=model.pretrained, **kwargs)

    def forward(self, images: Tensor) -> Any:
        """Normalised ``B x 3 x H x W`` (sides multiples of 14) -> the head's outputs (see :meth:`scores`)."""
        grid = (images.shape[-2] // PATCH_SIZE, images.shape[-1] // PATCH_SIZE)
        blocks = self.pretrained.forward_features(images, self.config.backbone.layer_indices)
        maps = [tokens.transpose(1, 2).unflatten(2, grid) for tokens, _ in blocks]
        return self.head(self.neck(maps))

    def loss(self, images: Tensor, seg: Tensor) -> dict[str, Tensor]:
        """The head's losses (``"loss"``: the total) on normalised images and their ``B x H x W`` class ids."""
        return self.head.loss(self(images), seg, self.config.ignore_index)

    def scores(self, images: Tensor) -> Tensor:
        """Class scores ``B x K x H x W`` at the input size (Mask2Former: query-weighted mask probabilities; light
        head: logits); the argmax over K is the segmentation."""
        return self.head.scores(self(images), tuple(images.shape[-2:]))

    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike) -> SegmentationModel:
        """The network of a segmentation run's checkpoint (``checkpoint[SEGMENTATION_KEY]``), strictly loaded."""
        from anydepth.checkpoints.formats import CheckpointError, load_strict, read_torch_file

        checkpoint = read_torch_file(path)
        meta = checkpoint.get(SEGMENTATION_KEY) if isinstance(checkpoint, dict) else None
        if not isinstance(meta, dict) or meta.get("format_version") != SEGMENTATION_FORMAT_VERSION:
            raise CheckpointError(
                f"{path} is not a segmentation checkpoint of this anydepth (no {SEGMENTATION_KEY!r} entry of format "
                f"{SEGMENTATION_FORMAT_VERSION}); write one with `anydepth fit` and a configs/recipes/seg/ recipe "
                "(a depth model's checkpoint: anydepth eval / infer --task depth)"
            )
        model = cls.from_config(SegmentationConfig.from_dict(meta["model"]))
        prefix = meta["prefix"]
        state = {k[len(prefix) :]: v for k, v in checkpoint["state_dict"].items() if k.startswith(prefix)}
        load_strict(model, state, path)
        return model

    def checkpoint_metadata(self, prefix: str = "model.") -> dict[str, Any]:
        """The ``checkpoint[SEGMENTATION_KEY]`` entry of this network stored under ``prefix``."""
        return {"format_version": SEGMENTATION_FORMAT_VERSION, "model": self.config.to_dict(), "prefix": prefix}


# ---------------------------------------------------------------------------------------------------- inference


def padded_scores(score_fn: ScoreFn, images: Tensor, multiple: int = PATCH_SIZE) -> Tensor:
    """``score_fn`` on ``images`` zero-padded (bottom, right; in normalised space, as MMSegmentation pads after
    normalising) to multiples of ``multiple``, cropped back to the input size."""
    height, width = images.shape[-2:]
    pad = (0, -width % multiple, 0, -height % multiple)
    scores = score_fn(F.pad(images, pad) if any(pad) else images)
    return scores[..., :height, :width]


def sliding_scores(score_fn: ScoreFn, images: Tensor, crop: int, stride: int) -> Tensor:
    """MMSegmentation's ``slide_inference``: ``crop`` x ``crop`` windows every ``stride`` pixels (the last one flush
    with the border; smaller images: one padded window), scores averaged where windows overlap. A window covering
    the whole image gives exactly :func:`padded_scores`."""
    if not 0 < stride <= crop:
        raise ValueError(f"sliding window needs 0 < stride <= crop, got stride {stride}, crop {crop}")
    height, width = images.shape[-2:]
    rows = max(height - crop + stride - 1, 0) // stride + 1
    cols = max(width - crop + stride - 1, 0) // stride + 1
    total: Tensor | None = None
    count = images.new_zeros(1, 1, height, width)
    for row in range(rows):
        for col in range(cols):
            y2, x2 = min(row * stride + crop, height), min(col * stride + crop, width)
            y1, x1 = max(y2 - crop, 0), max(x2 - crop, 0)
            window = padded_scores(score_fn, images[..., y1:y2, x1:x2])
            if total is None:
                total = images.new_zeros(images.shape[0], window.shape[1], height, width)
            total[..., y1:y2, x1:x2] += window
            count[..., y1:y2, x1:x2] += 1
    assert total is not None  # at least one window
    return total / count


def predict_scores(
    score_fn: ScoreFn,
    images: Tensor,
    size: tuple[int, int],
    scales: Sequence[float] = (1.0,),
    flip: bool = False,
    crop: int | None = None,
    stride: int | None = None,
) -> Tensor:
    """Class scores ``B x K x size`` of normalised ``images``: each scale (the input resized by the factor, aspect
    kept) and, with ``flip``, its mirror image, scored whole (:func:`padded_scores`) or by sliding windows (``crop``
    and ``stride``), resized to ``size`` bilinearly. One view returns its scores; several (paper Table 7's
    "m.s.", MMSegmentation's test-time augmentation) the mean of their softmax probabilities."""
    views = []
    for scale in scales:
        shape = (round(images.shape[-2] * scale), round(images.shape[-1] * scale))
        scaled = images if scale == 1 else F.interpolate(images, shape, mode="bilinear", align_corners=False)
        for mirrored in (False, True) if flip else (False,):
            view = scaled.flip(-1) if mirrored else scaled
            if crop is None:
                scores = padded_scores(score_fn, view)
            else:
                scores = sliding_scores(score_fn, view, crop, stride or crop)
            scores = scores.flip(-1) if mirrored else scores
            views.append(F.interpolate(scores, size=size, mode="bilinear", align_corners=False))
    if len(views) == 1:
        return views[0]
    return torch.stack([view.softmax(dim=1) for view in views]).mean(0)


@dataclass(frozen=True)
class InferenceSettings:
    """How a segmentation is predicted: ``scales`` (factors of the evaluation size; Table 7's m.s. uses 0.5 .. 2.0
    in steps of 0.25 with ``flip``, the official ``_ms`` config) and sliding windows of ``crop`` px every ``stride``
    px (official: 896 / 426 ADE20K, 896 / 518 Cityscapes; None: the whole image in one pass)."""

    scales: tuple[float, ...] = (1.0,)
    flip: bool = False
    crop: int | None = None
    stride: int | None = None

    def __post_init__(self) -> None:
        if not self.scales or min(self.scales) <= 0:
            raise ValueError(f"scales must be positive factors, got {list(self.scales)}")
        if self.crop is not None and (self.crop < 14 or not 0 < (self.stride or self.crop) <= self.crop):
            raise ValueError(f"sliding windows need crop >= 14 and 0 < stride <= crop, got {self.crop}, {self.stride}")


@torch.no_grad()
def segment(model: SegmentationModel, images: Tensor, size: tuple[int, int], settings: InferenceSettings) -> Tensor:
    """Class ids ``B x size`` of ``images`` (``B x 3 x h x w`` RGB in [0, 1], the evaluation size): normalised,
    scored as ``settings`` say, resized to ``size`` (the ground truth's) and arg-maxed."""
    scores = predict_scores(
        model.scores, normalize(images), size, settings.scales, settings.flip, settings.crop, settings.stride
    )
    return scores.argmax(dim=1)
