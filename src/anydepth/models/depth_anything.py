"""``DepthAnything``: DINOv2 encoder + DPT head, the official V1/V2 relative-depth model."""

from __future__ import annotations

import os
from collections import defaultdict
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from anydepth.models.dpt import DPTHead
from anydepth.models.encoder import ENCODERS, PATCH_SIZE, DINOv2Encoder, PosEmbedInterpolation
from anydepth.models.preprocess import check_image, evaluating, prepare_images, upsample_prediction

Version = Literal["v1", "v2"]
VERSIONS: tuple[str, ...] = ("v1", "v2")
HEADS: tuple[str, ...] = ("relative", "metric")
"""``relative``: ReLU disparity up to scale and shift; ``metric``: the official V2 ``metric_depth`` head, depth in
metres ``max_depth * sigmoid(...)`` (Depth Anything V2's metric models, max_depth 20 indoor, 80 outdoor)."""

# Official DPT decoder sizes per encoder: (features, out_channels).
DECODERS: dict[str, tuple[int, tuple[int, int, int, int]]] = {
    "vits": (64, (48, 96, 192, 384)),
    "vitb": (128, (96, 192, 384, 768)),
    "vitl": (256, (256, 512, 1024, 1024)),
    "vitg": (384, (1536, 1536, 1536, 1536)),
}
# Depth Anything V2 ``intermediate_layer_idx``; V1 takes the last four blocks.
V2_LAYER_INDICES: dict[str, tuple[int, ...]] = {
    "vits": (2, 5, 8, 11),
    "vitb": (2, 5, 8, 11),
    "vitl": (4, 11, 17, 23),
    "vitg": (9, 19, 29, 39),
}


def default_layer_indices(encoder: str, version: str, depth: int) -> tuple[int, ...]:
    """Blocks fed to the DPT head: V1 the last four; V2 the official table (custom: evenly spaced)."""
    if version not in VERSIONS:
        raise ValueError(f"version must be one of {VERSIONS}, got {version!r}")
    if depth < 4:
        raise ValueError(f"the DPT head needs at least 4 encoder blocks, got depth={depth}")
    if version == "v1":
        return tuple(range(depth - 4, depth))
    if encoder in V2_LAYER_INDICES:
        return V2_LAYER_INDICES[encoder]
    return tuple(depth * k // 4 - 1 for k in range(1, 5))


@dataclass(frozen=True)
class DepthAnythingConfig:
    """Complete architecture of a ``DepthAnything``; ``DepthAnything(**asdict(cfg))`` rebuilds it."""

    encoder: str
    version: str
    embed_dim: int
    depth: int
    num_heads: int
    swiglu: bool
    features: int
    out_channels: tuple[int, int, int, int]
    layer_indices: tuple[int, ...]
    use_bn: bool = False
    use_clstoken: bool = False
    pos_embed_interpolation: str = "dinov2"
    head: str = "relative"
    max_depth: float | None = None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DepthAnythingConfig:
        data = dict(data)
        data["out_channels"] = tuple(data["out_channels"])
        data["layer_indices"] = tuple(data["layer_indices"])
        return cls(**data)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["out_channels"] = list(self.out_channels)
        data["layer_indices"] = list(self.layer_indices)
        return data


def resolve_config(
    encoder: str = "vits",
    version: str = "v2",
    embed_dim: int | None = None,
    depth: int | None = None,
    num_heads: int | None = None,
    swiglu: bool | None = None,
    features: int | None = None,
    out_channels: tuple[int, int, int, int] | list[int] | None = None,
    layer_indices: tuple[int, ...] | list[int] | None = None,
    use_bn: bool = False,
    use_clstoken: bool = False,
    pos_embed_interpolation: str = "dinov2",
    head: str = "relative",
    max_depth: float | None = None,
) -> DepthAnythingConfig:
    """Fill unset sizes from the official preset of ``encoder``; ``"custom"`` needs them all. ``head="metric"``
    needs a positive ``max_depth`` (metres); a relative head has none."""
    if head not in HEADS:
        raise ValueError(f"head must be one of {HEADS}, got {head!r}")
    if head == "metric" and not (max_depth is not None and max_depth > 0):
        raise ValueError(f"a metric head needs max_depth > 0 (metres), got {max_depth}")
    if head == "relative" and max_depth is not None:
        raise ValueError("max_depth belongs to metric heads; a relative head predicts disparity up to scale")
    if encoder in ENCODERS:
        spec = ENCODERS[encoder]
        feats, outs = DECODERS[encoder]
        embed_dim = spec.embed_dim if embed_dim is None else embed_dim
        depth = spec.depth if depth is None else depth
        num_heads = spec.num_heads if num_heads is None else num_heads
        swiglu = spec.swiglu if swiglu is None else swiglu
        features = feats if features is None else features
        out_channels = outs if out_channels is None else out_channels
    elif encoder == "custom":
        missing = [
            name
            for name, value in dict(
                embed_dim=embed_dim, depth=depth, num_heads=num_heads, features=features, out_channels=out_channels
            ).items()
            if value is None
        ]
        if missing:
            raise ValueError(f"encoder='custom' needs {', '.join(missing)}")
        swiglu = bool(swiglu)
    else:
        raise ValueError(f"encoder must be one of {sorted(ENCODERS)} or 'custom', got {encoder!r}")
    assert embed_dim is not None and depth is not None and num_heads is not None  # filled above
    if len(out_channels) != 4:
        raise ValueError(f"out_channels needs 4 entries (one per DPT stage), got {list(out_channels)}")
    if layer_indices is None:
        layer_indices = default_layer_indices(encoder, version, depth)
    if len(layer_indices) != 4 or not all(0 <= i < depth for i in layer_indices):
        raise ValueError(f"layer_indices must be 4 block indices in [0, {depth}), got {list(layer_indices)}")
    return DepthAnythingConfig(
        encoder=encoder,
        version=version,
        embed_dim=embed_dim,
        depth=depth,
        num_heads=num_heads,
        swiglu=bool(swiglu),
        features=features,
        out_channels=tuple(out_channels),
        layer_indices=tuple(layer_indices),
        use_bn=use_bn,
        use_clstoken=use_clstoken,
        pos_embed_interpolation=pos_embed_interpolation,
        head=head,
        max_depth=None if max_depth is None else float(max_depth),
    )


class DepthAnything(nn.Module):
    """Depth Anything (V1 or V2): ImageNet-normalised ``B x 3 x H x W`` -> ``B x H x W`` disparity, or depth in
    metres for ``head="metric"`` (the official V2 metric models: the same weights' names, a sigmoid output scaled by
    ``max_depth``).

    Submodules are named as in the official code (``pretrained``, ``depth_head``) so state dicts
    match official checkpoints key for key. Sizes default to the official preset of ``encoder``
    (``vits``/``vitb``/``vitl``/``vitg``); ``encoder="custom"`` with explicit sizes builds small
    models for tests. ``grad_checkpointing`` enables activation checkpointing of the ViT blocks.
    ``pos_embed_interpolation="dinov2"`` resamples position embeddings exactly as the official
    DINOv2 code; ``"size"`` as transformers' Dinov2 (see ``encoder.interpolate_pos_embed``).
    ``version`` picks the default ``layer_indices``; explicit indices take precedence.
    """

    def __init__(
        self,
        encoder: str = "vits",
        version: Version = "v2",
        embed_dim: int | None = None,
        depth: int | None = None,
        num_heads: int | None = None,
        swiglu: bool | None = None,
        features: int | None = None,
        out_channels: tuple[int, int, int, int] | None = None,
        layer_indices: tuple[int, ...] | None = None,
        use_bn: bool = False,
        use_clstoken: bool = False,
        pos_embed_interpolation: PosEmbedInterpolation = "dinov2",
        grad_checkpointing: bool = False,
        head: Literal["relative", "metric"] = "relative",
        max_depth: float | None = None,
    ) -> None:
        super().__init__()
        self.config = resolve_config(
            encoder,
            version,
            embed_dim,
            depth,
            num_heads,
            swiglu,
            features,
            out_channels,
            layer_indices,
            use_bn,
            use_clstoken,
            pos_embed_interpolation,
            head,
            max_depth,
        )
        cfg = self.config
        self.pretrained = DINOv2Encoder(
            cfg.embed_dim, cfg.depth, cfg.num_heads, cfg.swiglu, pos_embed_interpolation, grad_checkpointing
        )
        activation = "sigmoid" if cfg.head == "metric" else "relu"
        self.depth_head = DPTHead(
            cfg.embed_dim, cfg.features, cfg.out_channels, use_bn, use_clstoken, PATCH_SIZE, activation
        )

    @classmethod
    def from_config(cls, config: DepthAnythingConfig, **kwargs: Any) -> DepthAnything:
        return cls(**{**asdict(config), **kwargs})

    def _decode(self, features: list[tuple[torch.Tensor, torch.Tensor]], x: torch.Tensor) -> torch.Tensor:
        depth = self.depth_head(features, x.shape[-2] // PATCH_SIZE, x.shape[-1] // PATCH_SIZE)
        if self.config.head == "metric":
            return (depth * self.config.max_depth).squeeze(1)  # official V2 metric_depth: sigmoid x max_depth
        return F.relu(depth).squeeze(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._decode(self.pretrained.forward_features(x, self.config.layer_indices), x)

    def forward_with_features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(disparity B x H x W, last-block patch tokens B x N x C after the final norm)`` in one encoder pass:
        the tokens are the student feature ``f`` of the feature alignment loss (eq. 9)."""
        last = self.config.depth - 1
        wanted = tuple(sorted({*self.config.layer_indices, last}))  # timm returns blocks in ascending order
        outputs = dict(zip(wanted, self.pretrained.forward_features(x, wanted)))
        return self._decode([outputs[i] for i in self.config.layer_indices], x), outputs[last][0]

    @torch.inference_mode()
    def infer_images(self, images: list[np.ndarray], input_size: int = 518, batch_size: int = 4) -> list[np.ndarray]:
        """Relative disparity (H x W float32) for each H x W x 3 uint8 RGB image, official recipe.

        Each image is resized (aspect kept, shorter side >= ``input_size``, sides multiples of 14,
        bicubic), normalised, run through the model, and the prediction is upsampled bilinearly back to the image
        size as the official code of the model's version does (V1 ``align_corners=False``, V2 ``True``). Images of
        equal size share batches.
        """
        for i, image in enumerate(images):
            check_image(image, f"image {i}")
        device = next(self.parameters()).device
        dtype = next(self.parameters()).dtype
        by_size: dict[tuple[int, int], list[int]] = defaultdict(list)
        for i, image in enumerate(images):
            by_size[image.shape[:2]].append(i)
        results: list[np.ndarray] = [np.empty(0, np.float32)] * len(images)
        with evaluating(self):
            for size, indices in by_size.items():
                for start in range(0, len(indices), batch_size):
                    chunk = indices[start : start + batch_size]
                    batch = prepare_images([images[i] for i in chunk], input_size, device).to(dtype)
                    depth = upsample_prediction(self(batch), size, self.config.version)
                    for i, d in zip(chunk, depth.cpu().numpy()):
                        results[i] = d
        return results

    def infer_image(self, rgb: np.ndarray, input_size: int = 518) -> np.ndarray:
        """Relative disparity (H x W float32, larger = nearer) of one H x W x 3 uint8 RGB image; for a metric model
        (``config.head == "metric"``) depth in metres."""
        return self.infer_images([rgb], input_size, batch_size=1)[0]

    @classmethod
    def from_checkpoint(
        cls,
        path: str | os.PathLike,
        encoder: str | None = None,
        version: str | None = None,
        **kwargs: Any,
    ) -> DepthAnything:
        """Load any supported checkpoint (see ``anydepth.checkpoints.load_checkpoint``). The paper's official metric
        files (``depth_anything_metric_depth_{indoor,outdoor}.pt``) load as a ``ZoeDepthMetric``, which has the same
        ``infer_image(s)`` contract, in metres."""
        from anydepth.checkpoints import load_checkpoint

        return load_checkpoint(path, encoder=encoder, version=version, **kwargs)

    def save_checkpoint(self, path: str | os.PathLike, format: str = "official") -> None:
        """Write ``official`` (.pth), ``hf`` (transformers directory) or ``anydepth`` weights."""
        from anydepth.checkpoints import save_checkpoint

        save_checkpoint(self, path, format=format)

    def export(
        self,
        path: str | os.PathLike,
        format: str = "onnx",
        precision: str = "fp32",
        input_size: tuple[int, int] | None = None,
        bake_preprocessing: bool = False,
    ) -> Any:
        """Write an ``onnx``, ``torchscript`` or ``torch-export`` file of this model and check it against the model;
        returns an ``ExportReport`` (see ``anydepth.export.export_model``)."""
        from anydepth.export import export_model

        return export_model(self, path, format, precision, input_size, bake_preprocessing)
