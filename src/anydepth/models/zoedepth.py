"""Depth Anything V1 metric depth: ZoeDepth's metric bins head on a relative ``DepthAnything`` (paper Sec. 4.3, Tables
3-4, supp. Sec. 1; official ``metric_depth/zoedepth``: ``zoedepth_v1.py``, ``base_models/depth_anything.py``).

Structure and names follow the official ``ZoeDepth(DepthAnythingCore(DPT_DINOv2))`` so the released
``depth_anything_metric_depth_{indoor,outdoor}.pt`` load key for key: ``core.core.{pretrained,depth_head}`` is the
ViT-L V1 relative model, ``conv2``, ``seed_bin_regressor``, ``seed_projector``, ``projectors.N``, ``attractors.N``
and ``conditional_log_binomial`` the head. The forward takes an already preprocessed batch; the official pipeline
around it (reproduced by :func:`prepare_zoedepth_batch`, and by the caller after the forward) is:

- input: RGB in [0, 1] (no normalisation in the data loader), resized inside the official core by ``PrepForMidas``:
  ``img_size = (392, 518)`` (``config_zoedepth.json``, used by both released models), ``resize_method="minimal"``,
  sides rounded (half to even) to multiples of 14, bilinear ``align_corners=True``; aspect kept only in the ``infer``
  config (``force_keep_ar``), the ``eval`` config (``evaluate.py``) resizes to exactly 392 x 518; then ImageNet
  normalisation.
- output: ``metric_depth`` ``B x 1 x h x w`` at the network input resolution, in metres, never clipped.
  ``evaluate.py`` averages it with the prediction on the horizontally flipped image (flipped back), resizes it
  bilinearly (``align_corners=True``) to the ground truth and clips it to ``[min_depth_eval, max_depth_eval]``
  (NYU 1e-3..10, KITTI 1e-3..80). ZoeDepth's ``DepthModel.infer`` instead reflect-pads the input by
  ``int(sqrt(side / 2) * 3)`` px, flip-averages, resizes bicubically (``align_corners=False``) and crops the pad.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from anydepth.models.depth_anything import DepthAnything
from anydepth.models.dpt import HEAD_HIDDEN_CHANNELS
from anydepth.models.encoder import PATCH_SIZE
from anydepth.models.metric_bins import (
    AttractorKind,
    AttractorLayerUnnormed,
    AttractorType,
    ConditionalLogBinomial,
    Projector,
    SeedBinRegressorUnnormed,
    resize_like,
)
from anydepth.models.preprocess import check_image, evaluating, normalize

OFFICIAL_INPUT_SIZE: tuple[int, int] = (392, 518)
"""``img_size`` of the official ``config_zoedepth.json``; the outdoor model is also run at it by the official code
(the paper trained KITTI at 384 x 768, which no released config sets)."""
PRESETS: dict[str, dict[str, float]] = {"indoor": {"max_depth": 10.0}, "outdoor": {"max_depth": 80.0}}
"""Released models: ``indoor`` fine-tuned on NYUv2, ``outdoor`` on KITTI (the datasets' ``max_depth``)."""


@dataclass(frozen=True)
class ZoeDepthConfig:
    """The metric head's hyper-parameters; defaults are the official ``config_zoedepth.json`` (indoor preset).

    ``min_depth``/``max_depth`` do not enter the forward (softplus bins are unbounded): they are the depth range
    of training (ground-truth mask) and evaluation (prediction clipping).
    """

    n_bins: int = 64
    bin_embedding_dim: int = 128
    n_attractors: tuple[int, ...] = (16, 8, 4, 1)
    attractor_alpha: float = 1000.0
    attractor_gamma: int = 2
    attractor_kind: str = "mean"
    attractor_type: str = "inv"
    min_depth: float = 1e-3
    max_depth: float = 10.0
    min_temp: float = 0.0212
    max_temp: float = 50.0

    def __post_init__(self) -> None:
        if len(self.n_attractors) != 4:
            raise ValueError(f"n_attractors needs 4 entries (one per DPT fusion block), got {list(self.n_attractors)}")
        if self.n_bins < 2:
            raise ValueError(f"n_bins must be at least 2, got {self.n_bins}")
        if not 0 <= self.min_depth < self.max_depth:
            raise ValueError(f"need 0 <= min_depth < max_depth, got {self.min_depth} and {self.max_depth}")
        if not 0 < self.min_temp < self.max_temp:
            raise ValueError(f"need 0 < min_temp < max_temp, got {self.min_temp} and {self.max_temp}")

    @property
    def head(self) -> str:
        """Always ``metric``: depth in metres (the ``DepthAnythingConfig.head`` of relative models says otherwise)."""
        return "metric"

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ZoeDepthConfig:
        return cls(**{**data, "n_attractors": tuple(data.get("n_attractors", cls.n_attractors))})

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "n_attractors": list(self.n_attractors)}


class CoreOutputs(NamedTuple):
    """What the official ``DepthAnythingCore`` hands the head, for a ``B x 3 x H x W`` input (H, W multiples of 14).

    ``relative``: ``B x H x W`` ReLU disparity of the relative model, unchanged (``inverse_midas`` is off);
    ``out_conv``: ``B x 32 x H x W``, the DPT's last hidden activation (``output_conv2[1]``, the ReLU);
    ``bottleneck``: ``layer4_rn`` (``l4_rn``), ``features`` channels at half the patch grid;
    ``blocks``: the fusion outputs ``refinenet4 .. refinenet1`` (``r4 .. r1``) at 1, 2, 4, 8 x the patch grid.
    """

    relative: torch.Tensor
    out_conv: torch.Tensor
    bottleneck: torch.Tensor
    blocks: tuple[torch.Tensor, ...]


class DepthAnythingCore(nn.Module):
    """The relative model as ``core`` (official ``DepthAnythingCore``, whose forward hooks collect the same tensors).

    Its resize-and-normalise ``prep`` is left to the caller (:func:`prepare_zoedepth_batch`); it has no weights.
    """

    def __init__(self, relative: DepthAnything) -> None:
        super().__init__()
        if relative.config.head != "relative":
            raise ValueError(f"the ZoeDepth core is a relative DepthAnything, got head={relative.config.head!r}")
        self.core = relative

    def forward(self, x: torch.Tensor) -> CoreOutputs:
        """The relative model's DPT forward step by step (as ``DPTHead.forward``), keeping the hooked tensors."""
        model, head = self.core, self.core.depth_head
        patch_h, patch_w = x.shape[-2] // PATCH_SIZE, x.shape[-1] // PATCH_SIZE
        features = model.pretrained.forward_features(x, model.config.layer_indices)
        s = head.scratch
        layers = head.reassemble(features, patch_h, patch_w)
        l1, l2, l3, l4 = s.layer1_rn(layers[0]), s.layer2_rn(layers[1]), s.layer3_rn(layers[2]), s.layer4_rn(layers[3])
        r4 = s.refinenet4(l4, size=l3.shape[2:])
        r3 = s.refinenet3(r4, l3, size=l2.shape[2:])
        r2 = s.refinenet2(r3, l2, size=l1.shape[2:])
        r1 = s.refinenet1(r2, l1)
        out = resize_like(s.output_conv1(r1), (patch_h * PATCH_SIZE, patch_w * PATCH_SIZE))
        out_conv = s.output_conv2[:2](out)
        relative = F.relu(s.output_conv2[2:](out_conv)).squeeze(1)
        return CoreOutputs(relative, out_conv, l4, (r4, r3, r2, r1))


class MetricDepthOutput(NamedTuple):
    """``depth``: ``B x H x W`` metres (official ``metric_depth`` without its channel axis); ``bin_centers`` and
    ``probs``: ``B x n_bins x H x W`` (official ``return_final_centers`` / ``return_probs``); ``relative``: the
    core's ``B x H x W`` disparity."""

    depth: torch.Tensor
    bin_centers: torch.Tensor
    probs: torch.Tensor
    relative: torch.Tensor


class ZoeDepthMetric(nn.Module):
    """Depth Anything V1 metric model: ImageNet-normalised ``B x 3 x H x W`` (sides multiples of 14) -> ``B x H x W``
    depth in metres at the input resolution (official ``ZoeDepth`` with ``bin_centers_type="softplus"``).

    ``relative`` is the encoder + DPT (default: an untrained official ViT-L V1 preset); the head reads the DPT's
    bottleneck and four fusion outputs, refines ``n_bins`` seed bin centres with one attractor layer per fusion
    output, and takes the expectation of the centres under a conditional log-binomial distribution computed from
    the DPT's last hidden features and the relative disparity. Keyword arguments are :class:`ZoeDepthConfig`'s.
    """

    def __init__(
        self,
        relative: DepthAnything | None = None,
        n_bins: int = 64,
        bin_embedding_dim: int = 128,
        n_attractors: tuple[int, ...] = (16, 8, 4, 1),
        attractor_alpha: float = 1000.0,
        attractor_gamma: int = 2,
        attractor_kind: AttractorKind = "mean",
        attractor_type: AttractorType = "inv",
        min_depth: float = 1e-3,
        max_depth: float = 10.0,
        min_temp: float = 0.0212,
        max_temp: float = 50.0,
    ) -> None:
        super().__init__()
        self.config = ZoeDepthConfig(
            n_bins,
            bin_embedding_dim,
            tuple(n_attractors),
            float(attractor_alpha),
            attractor_gamma,
            attractor_kind,
            attractor_type,
            float(min_depth),
            float(max_depth),
            float(min_temp),
            float(max_temp),
        )
        cfg = self.config
        self.core = DepthAnythingCore(DepthAnything(encoder="vitl", version="v1") if relative is None else relative)
        features = self.core.core.config.features  # official core.output_channels: [features] * 5
        self.conv2 = nn.Conv2d(features, features, kernel_size=1)
        self.seed_bin_regressor = SeedBinRegressorUnnormed(features, n_bins)
        self.seed_projector = Projector(features, bin_embedding_dim)
        self.projectors = nn.ModuleList([Projector(features, bin_embedding_dim) for _ in cfg.n_attractors])
        self.attractors = nn.ModuleList(
            [
                AttractorLayerUnnormed(
                    bin_embedding_dim, n, cfg.attractor_alpha, attractor_gamma, attractor_kind, attractor_type
                )
                for n in cfg.n_attractors
            ]
        )
        # DPT hidden channels + 1 for the relative disparity, conditioned on the last bin embedding
        self.conditional_log_binomial = ConditionalLogBinomial(
            HEAD_HIDDEN_CHANNELS + 1, bin_embedding_dim, n_bins, cfg.min_temp, cfg.max_temp
        )

    @classmethod
    def from_preset(cls, preset: str, relative: DepthAnything | None = None, **overrides: Any) -> ZoeDepthMetric:
        """The official ``indoor`` (max_depth 10) or ``outdoor`` (80) configuration, ``overrides`` on top."""
        if preset not in PRESETS:
            raise ValueError(f"preset must be one of {sorted(PRESETS)}, got {preset!r}")
        return cls(relative, **{**PRESETS[preset], **overrides})

    @property
    def relative(self) -> DepthAnything:
        """The wrapped relative model (``core.core``)."""
        return self.core.core

    def forward_details(self, x: torch.Tensor) -> MetricDepthOutput:
        """Official ``ZoeDepth.forward`` on a preprocessed batch, with its optional outputs."""
        core = self.core(x)
        x = self.conv2(core.bottleneck)
        b_prev = self.seed_bin_regressor(x)
        prev_embedding = self.seed_projector(x)
        for projector, attractor, block in zip(self.projectors, self.attractors, core.blocks):
            embedding = projector(block)
            b_prev = attractor(embedding, b_prev, prev_embedding)
            prev_embedding = embedding
        last = torch.cat([core.out_conv, resize_like(core.relative.unsqueeze(1), core.out_conv.shape[2:])], dim=1)
        probs = self.conditional_log_binomial(last, resize_like(prev_embedding, last.shape[-2:]))
        centres = resize_like(b_prev, probs.shape[-2:])
        depth = torch.sum(probs * centres, dim=1)
        return MetricDepthOutput(depth, centres, probs, core.relative)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_details(x).depth

    @torch.inference_mode()
    def infer_images(self, images: list[np.ndarray], input_size: int = 518, batch_size: int = 4) -> list[np.ndarray]:
        """Depth in metres (H x W float32) of each H x W x 3 uint8 RGB image, as the official ``evaluate.py``: the
        image resized to the fixed :data:`OFFICIAL_INPUT_SIZE` (:func:`prepare_zoedepth_batch`), the prediction
        upsampled bilinearly (``align_corners=True``) to the image size. ``input_size`` is accepted for the
        ``DepthAnything.infer_images`` contract and not used: the released models run at their training size."""
        device = next(self.parameters()).device
        results = []
        with evaluating(self):
            for image in images:
                check_image(image)
                batch = torch.from_numpy(image).to(device).permute(2, 0, 1)[None].float() / 255.0
                depth = self(prepare_zoedepth_batch(batch))
                results.append(resize_like(depth[:, None], image.shape[:2])[0, 0].float().cpu().numpy())
        return results

    def infer_image(self, rgb: np.ndarray, input_size: int = 518) -> np.ndarray:
        """Depth in metres (H x W float32) of one H x W x 3 uint8 RGB image (see :meth:`infer_images`)."""
        return self.infer_images([rgb], input_size)[0]


def zoedepth_state_dict_from_official(state_dict: dict[str, Any]) -> dict[str, torch.Tensor]:
    """Official ZoeDepth checkpoint contents -> :class:`ZoeDepthMetric` state dict.

    Names are the official ones, so this only unwraps the file's ``{"model": ..., "optimizer", "epoch"}`` dict and
    drops a DataParallel ``module.`` prefix, as the official ``model_io.load_state_dict`` does.
    """
    inner = state_dict.get("model")
    weights = inner if isinstance(inner, dict) else state_dict
    return {key.removeprefix("module."): value for key, value in weights.items()}


def zoedepth_input_size(
    height: int, width: int, img_size: tuple[int, int] = OFFICIAL_INPUT_SIZE, keep_aspect_ratio: bool = False
) -> tuple[int, int]:
    """Network input ``(h, w)`` of the official ``PrepForMidas`` resize (``resize_method="minimal"``): scale each
    side to ``img_size``, or with ``keep_aspect_ratio`` both by whichever of the two scales is closer to 1; round
    to multiples of 14 (half to even)."""
    scale_h, scale_w = img_size[0] / height, img_size[1] / width
    if keep_aspect_ratio:
        scale_h = scale_w = scale_w if abs(1 - scale_w) < abs(1 - scale_h) else scale_h
    return round(scale_h * height / PATCH_SIZE) * PATCH_SIZE, round(scale_w * width / PATCH_SIZE) * PATCH_SIZE


def prepare_zoedepth_batch(
    images: torch.Tensor, img_size: tuple[int, int] = OFFICIAL_INPUT_SIZE, keep_aspect_ratio: bool = False
) -> torch.Tensor:
    """``B x 3 x H x W`` RGB in [0, 1] -> the official core's network input: bilinear (``align_corners=True``) resize
    to :func:`zoedepth_input_size`, then ImageNet normalisation. Defaults are ``evaluate.py``'s."""
    size = zoedepth_input_size(images.shape[-2], images.shape[-1], img_size, keep_aspect_ratio)
    return normalize(resize_like(images, size))
