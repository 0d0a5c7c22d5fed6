"""DINOv2 ViT encoder on timm's VisionTransformer, numerically faithful to the official DINOv2.

Parameter names equal the official DINOv2 ones (``cls_token``, ``pos_embed``, ``mask_token``,
``blocks.N.attn.qkv``, ``blocks.N.ls1.gamma`` ...), except that the vitg SwiGLU FFN uses timm's
packed ``mlp.fc1``/``mlp.fc2`` where the official code says ``mlp.w12``/``mlp.w3``; the
checkpoint module translates.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Literal

import torch
import torch.nn.functional as F
from timm.layers import SwiGLUPacked
from timm.models.vision_transformer import VisionTransformer
from torch import nn

PATCH_SIZE = 14
PRETRAIN_IMAGE_SIZE = 518  # DINOv2 position embeddings cover a 37 x 37 grid (518 / 14)
PosEmbedInterpolation = Literal["dinov2", "size"]


@dataclass(frozen=True)
class EncoderSpec:
    """Width, depth, heads and FFN kind of one DINOv2 ViT."""

    embed_dim: int
    depth: int
    num_heads: int
    swiglu: bool = False


ENCODERS: dict[str, EncoderSpec] = {
    "vits": EncoderSpec(384, 12, 6),
    "vitb": EncoderSpec(768, 12, 12),
    "vitl": EncoderSpec(1024, 24, 16),
    "vitg": EncoderSpec(1536, 40, 24, swiglu=True),
}


def swiglu_hidden_features(embed_dim: int, mlp_ratio: float = 4.0) -> int:
    """Hidden width of DINOv2's fused SwiGLU FFN (official ``SwiGLUFFNFused``): 4096 for vitg."""
    return (int(embed_dim * mlp_ratio * 2 / 3) + 7) // 8 * 8


def is_exporting() -> bool:
    """True while ``torch.export`` (hence ``torch.onnx.export``) or ``torch.jit.trace`` records the model."""
    return torch.compiler.is_exporting() or torch.jit.is_tracing()


def interpolate_pos_embed(
    pos_embed: torch.Tensor,
    grid_h: int,
    grid_w: int,
    mode: PosEmbedInterpolation = "dinov2",
    offset: float = 0.1,
    dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """Resample a ``1 x (1 + M*M) x C`` DINOv2 position embedding (class slot first) to a grid.

    ``mode="dinov2"`` reproduces the official DINOv2 code exactly: bicubic, no antialias,
    driven by the scale factor ``(grid + offset) / M`` (the historical +0.1 kludge, which also
    shifts the sampling positions), computed in fp32, and no resampling at all for the native
    square grid. ``mode="size"`` resamples to the target size instead, as transformers' Dinov2
    does; at non-native grids the two differ slightly. A resampled embedding is cast to ``dtype``
    (the official code casts to the tokens' dtype, which matters under autocast).

    While exporting (:func:`is_exporting`) the same numbers come from :func:`resample_pos_embed`, whose graph keeps
    the grid symbolic, so one exported model serves every input size. Eager runs keep ``F.interpolate``: the two
    agree to fp32 rounding (about 1e-6 relative), not bit for bit.
    """
    side = _grid_side(pos_embed)
    if mode not in ("dinov2", "size"):
        raise ValueError(f"pos_embed_interpolation must be 'dinov2' or 'size', got {mode!r}")
    if is_exporting():
        return resample_pos_embed(pos_embed, grid_h, grid_w, mode, offset, dtype)
    if grid_h == grid_w == side:
        return pos_embed
    dim = pos_embed.shape[-1]
    patch_pos = pos_embed[:, 1:].float().reshape(1, side, side, dim).permute(0, 3, 1, 2)
    if mode == "dinov2":
        scale = ((grid_h + offset) / side, (grid_w + offset) / side)
        patch_pos = F.interpolate(patch_pos, scale_factor=scale, mode="bicubic", antialias=False)
    else:
        patch_pos = F.interpolate(patch_pos, size=(grid_h, grid_w), mode="bicubic", antialias=False)
    patch_pos = patch_pos.permute(0, 2, 3, 1).reshape(1, grid_h * grid_w, dim)
    return torch.cat((pos_embed[:, :1].float(), patch_pos), dim=1).to(dtype or pos_embed.dtype)


def _grid_side(pos_embed: torch.Tensor) -> int:
    num_patches = pos_embed.shape[1] - 1
    side = math.isqrt(num_patches)
    if side * side != num_patches:
        raise ValueError(f"position embedding with {num_patches} patch slots is not a square grid")
    return side


BICUBIC_A = -0.75  # PyTorch's (and OpenCV's) cubic convolution coefficient


def _cubic_weights(t: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Weights of the taps ``floor(src) - 1 .. floor(src) + 2`` at fraction ``t`` (PyTorch's
    ``get_cubic_upsample_coefficients``)."""
    a = BICUBIC_A

    def near(x: torch.Tensor) -> torch.Tensor:  # |x| <= 1
        return ((a + 2) * x - (a + 3)) * x * x + 1

    def far(x: torch.Tensor) -> torch.Tensor:  # 1 < |x| < 2
        return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a

    return far(t + 1), near(t), near(1 - t), far(2 - t)


def _fused_multiply_sub_half(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``x * y - 0.5`` rounded once, as the fused multiply-add of PyTorch's compiled resampling kernels: ``y`` split
    into 12-bit halves (Veltkamp), so both partial products and the first difference are exact in fp32 (for ``x``
    half-integers below 2048, i.e. grids below 2048 patches, and ``x * y`` within the source grid)."""
    big = y * 4097.0
    high = big - (big - y)
    return (x * high - 0.5) + x * (y - high)


def bicubic_matrix(out_len: int, in_len: int, inv_scale: torch.Tensor) -> torch.Tensor:
    """``out_len x in_len`` fp32 matrix ``W`` with ``W @ v`` = PyTorch's bicubic resampling of ``v`` (no
    antialias, ``align_corners=False``) sampling at ``src = (dst + 0.5) * inv_scale - 0.5``; edge taps clamp.
    ``out_len`` may be symbolic: the matrix is built from tensor operations only."""
    dst = torch.arange(out_len, dtype=torch.float32)
    src = _fused_multiply_sub_half(dst + 0.5, inv_scale)
    base = torch.floor(src).clamp(max=in_len - 1)
    frac = (src - base).clamp(0.0, 1.0)
    columns = torch.arange(in_len, dtype=torch.float32)
    matrix = torch.zeros(())
    for tap, weight in enumerate(_cubic_weights(frac), start=-1):
        index = (base + tap).clamp(0, in_len - 1)
        matrix = matrix + (index[:, None] == columns).float() * weight[:, None]
    return matrix


def _inverse_scale(grid: int, side: int, offset: float) -> torch.Tensor:
    """``side / (grid + offset)`` in fp32 as PyTorch derives it from the official scale factor (``1 / scale`` in
    fp64, then fp32): one correctly rounded fp32 division of exact integers (``offset`` as a fraction; not
    ``number / tensor``, which torch computes as a reciprocal and a product)."""
    fraction = Fraction(offset).limit_denominator(1000)
    numerator = torch.full((), side * fraction.denominator, dtype=torch.float32)
    return numerator / (torch.full((), grid, dtype=torch.float32) * fraction.denominator + fraction.numerator)


def resample_pos_embed(
    pos_embed: torch.Tensor,
    grid_h: int,
    grid_w: int,
    mode: PosEmbedInterpolation = "dinov2",
    offset: float = 0.1,
    dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """:func:`interpolate_pos_embed`'s numbers (to fp32 rounding, ~1e-6) from tensor operations only, so the grid
    may be symbolic (``torch.export``) or traced: per axis a bicubic weight matrix, ``W_h @ pos @ W_w^T``. The
    native square grid of ``mode="dinov2"`` samples at ``src = dst``, which is the identity, as official."""
    side = _grid_side(pos_embed)
    dim = pos_embed.shape[-1]
    if mode == "dinov2":
        native = (torch.full((), grid_h) == side) & (torch.full((), grid_w) == side)
        inv_h, inv_w = (torch.where(native, 1.0, _inverse_scale(g, side, offset)) for g in (grid_h, grid_w))
    else:
        inv_h, inv_w = _inverse_scale(grid_h, side, 0.0), _inverse_scale(grid_w, side, 0.0)
    patch_pos = pos_embed[0, 1:].float().reshape(side, side, dim).permute(2, 0, 1)
    patch_pos = bicubic_matrix(grid_h, side, inv_h) @ patch_pos @ bicubic_matrix(grid_w, side, inv_w).T
    patch_pos = patch_pos.permute(1, 2, 0).reshape(1, grid_h * grid_w, dim)
    return torch.cat((pos_embed[:, :1].float(), patch_pos), dim=1).to(dtype or pos_embed.dtype)


class DINOv2Encoder(VisionTransformer):
    """DINOv2 ViT/14 (timm blocks, fused SDPA attention) accepting any input with sides % 14 == 0.

    ``forward_features(x, layer_indices)`` returns, for each selected block, the pair
    ``(patch_tokens B x N x C, class_token B x C)`` after the final LayerNorm, like the official
    ``get_intermediate_layers(..., return_class_token=True)``.
    """

    def __init__(
        self,
        embed_dim: int = 384,
        depth: int = 12,
        num_heads: int = 6,
        swiglu: bool = False,
        pos_embed_interpolation: PosEmbedInterpolation = "dinov2",
        grad_checkpointing: bool = False,
    ) -> None:
        mlp_kwargs: dict = {}
        if swiglu:  # official vitg: SwiGLUFFNFused, packed w12 = fc1 (2 x 4096), w3 = fc2
            mlp_kwargs = dict(
                mlp_layer=SwiGLUPacked,
                act_layer=nn.SiLU,
                mlp_ratio=(2 * swiglu_hidden_features(embed_dim) + 0.5) / embed_dim,  # int() -> 2 x 4096
            )
        super().__init__(
            img_size=PRETRAIN_IMAGE_SIZE,
            patch_size=PATCH_SIZE,
            embed_dim=embed_dim,
            depth=depth,
            num_heads=num_heads,
            init_values=1.0,  # official DINOv2 hub models: LayerScale init 1.0
            num_classes=0,
            dynamic_img_size=True,
            **mlp_kwargs,
        )
        # DINOv2's masked-image-modelling token: unused for depth, kept so checkpoints round-trip.
        self.mask_token = nn.Parameter(torch.zeros(1, embed_dim))
        self.pos_embed_interpolation = pos_embed_interpolation
        self.set_grad_checkpointing(grad_checkpointing)

    def _pos_embed(self, x: torch.Tensor) -> torch.Tensor:
        batch, grid_h, grid_w, dim = x.shape
        pos_embed = interpolate_pos_embed(self.pos_embed, grid_h, grid_w, self.pos_embed_interpolation, dtype=x.dtype)
        tokens = torch.cat((self.cls_token.expand(batch, -1, -1), x.reshape(batch, -1, dim)), dim=1)
        return self.pos_drop(tokens + pos_embed)

    def forward_features(  # type: ignore[override]
        self, x: torch.Tensor, layer_indices: tuple[int, ...]
    ) -> list[tuple[torch.Tensor, torch.Tensor]]:
        height, width = x.shape[-2:]
        if height % PATCH_SIZE or width % PATCH_SIZE:
            raise ValueError(
                f"input is {height}x{width} px; both sides must be multiples of {PATCH_SIZE} "
                "(resize with anydepth.models.preprocess.lower_bound_size or pad first)"
            )
        outputs = self.forward_intermediates(
            x,
            indices=list(layer_indices),
            return_prefix_tokens=True,
            norm=True,
            stop_early=True,
            output_fmt="NLC",
            intermediates_only=True,
        )
        return [(patches, prefix[:, 0]) for patches, prefix in outputs]
