"""DINOv2 encoder: official position-embedding interpolation, block selection, sizes."""

from __future__ import annotations

import pytest
import torch

from anydepth import DepthAnything
from anydepth.models.depth_anything import default_layer_indices
from anydepth.models.encoder import DINOv2Encoder, interpolate_pos_embed

M = 37  # native DINOv2 grid (518 / 14)


def ramp_pos_embed(dim: int = 2) -> torch.Tensor:
    """Position embedding whose channel 0 is the row index and channel 1 the column index."""
    rows, cols = torch.meshgrid(
        torch.arange(M, dtype=torch.float32), torch.arange(M, dtype=torch.float32), indexing="ij"
    )
    grid = torch.stack([rows, cols], -1).reshape(1, M * M, dim)
    return torch.cat([torch.full((1, 1, dim), -7.0), grid], dim=1)


def test_native_grid_is_not_resampled() -> None:
    pos = ramp_pos_embed()
    assert interpolate_pos_embed(pos, M, M) is pos


def keys_cubic(src: torch.Tensor, a: float = -0.75) -> torch.Tensor:
    """1-D cubic convolution (Keys, a = -0.75 as torch and OpenCV) of the ramp f(k) = k at ``src``."""
    base = src.floor()
    out = torch.zeros_like(src)
    for k in range(-1, 3):
        t = (src - (base + k)).abs()
        w = torch.where(t <= 1, (a + 2) * t**3 - (a + 3) * t**2 + 1, a * t**3 - 5 * a * t**2 + 8 * a * t - 4 * a)
        out += w * (base + k)
    return out


@pytest.mark.parametrize("grid", [(28, 37), (37, 52), (20, 26)])
def test_dinov2_interpolation_samples_where_the_official_scale_factor_says(grid: tuple[int, int]) -> None:
    # Away from the borders, the resampled ramp equals cubic convolution of the ramp at the source
    # coordinate derived from the official scale factor (g + 0.1) / M, not from the size M / g.
    out = interpolate_pos_embed(ramp_pos_embed(), *grid, mode="dinov2")
    assert out.shape == (1, 1 + grid[0] * grid[1], 2)
    assert torch.equal(out[0, 0], torch.tensor([-7.0, -7.0]))
    patch = out[0, 1:].reshape(*grid, 2)
    for axis, g in enumerate(grid):
        src = (torch.arange(g, dtype=torch.float64) + 0.5) * M / (g + 0.1) - 0.5
        got = (patch[:, 3, 0] if axis == 0 else patch[3, :, 1]).double()
        interior = slice(3, g - 3)
        torch.testing.assert_close(got[interior], keys_cubic(src)[interior], atol=1e-4, rtol=0)
        by_size = (torch.arange(g, dtype=torch.float64) + 0.5) * M / g - 0.5
        if g != M:
            assert (got[interior] - keys_cubic(by_size)[interior]).abs().max() > 1e-2


def test_size_mode_differs_from_official_off_the_native_grid() -> None:
    pos = torch.randn(1, 1 + M * M, 8)
    official = interpolate_pos_embed(pos, 28, 37, mode="dinov2")
    by_size = interpolate_pos_embed(pos, 28, 37, mode="size")
    assert official.shape == by_size.shape
    assert (official - by_size).abs().max() > 1e-3


def test_forward_features_returns_normed_patch_and_class_tokens() -> None:
    encoder = DINOv2Encoder(embed_dim=32, depth=4, num_heads=2).eval()
    x = torch.randn(2, 3, 42, 70)
    feats = encoder.forward_features(x, (1, 3))
    assert len(feats) == 2
    for patches, cls in feats:
        assert patches.shape == (2, 3 * 5, 32) and cls.shape == (2, 32)
    # block 3 is the last: its tokens equal timm's final normed output
    final = encoder.forward_intermediates(x, indices=[3], norm=True, output_fmt="NLC")[0]
    torch.testing.assert_close(feats[1][0], final[:, 1:])
    torch.testing.assert_close(feats[1][1], final[:, 0])


def test_input_not_multiple_of_patch_size_is_a_clear_error() -> None:
    encoder = DINOv2Encoder(embed_dim=32, depth=4, num_heads=2)
    with pytest.raises(ValueError, match="multiples of 14"):
        encoder.forward_features(torch.randn(1, 3, 100, 98), (0, 1, 2, 3))


@pytest.mark.parametrize(
    "encoder,width,blocks,heads,fc1,fc2",
    [
        ("vits", 384, 12, 6, (1536, 384), (384, 1536)),
        ("vitb", 768, 12, 12, (3072, 768), (768, 3072)),
        ("vitl", 1024, 24, 16, (4096, 1024), (1024, 4096)),
        ("vitg", 1536, 40, 24, (8192, 1536), (1536, 4096)),  # SwiGLU: packed 2 x 4096
    ],
)
def test_official_encoder_sizes(encoder: str, width: int, blocks: int, heads: int, fc1: tuple, fc2: tuple) -> None:
    with torch.device("meta"):
        model = DepthAnything(encoder)
    sd = model.state_dict()
    assert sd["pretrained.cls_token"].shape == (1, 1, width)
    assert sd["pretrained.pos_embed"].shape == (1, 1 + M * M, width)
    assert len(model.pretrained.blocks) == blocks
    assert model.pretrained.blocks[0].attn.num_heads == heads
    assert sd["pretrained.blocks.0.mlp.fc1.weight"].shape == fc1
    assert sd["pretrained.blocks.0.mlp.fc2.weight"].shape == fc2


@pytest.mark.parametrize(
    "encoder,depth,v2",
    [
        ("vits", 12, (2, 5, 8, 11)),
        ("vitb", 12, (2, 5, 8, 11)),
        ("vitl", 24, (4, 11, 17, 23)),
        ("vitg", 40, (9, 19, 29, 39)),
    ],
)
def test_block_indices(encoder: str, depth: int, v2: tuple) -> None:
    assert default_layer_indices(encoder, "v1", depth) == tuple(range(depth - 4, depth))
    assert default_layer_indices(encoder, "v2", depth) == v2


def test_activation_checkpointing_gives_the_same_output_and_gradients() -> None:
    x = torch.randn(1, 3, 28, 42)
    plain = DINOv2Encoder(embed_dim=32, depth=4, num_heads=2)
    ckpt = DINOv2Encoder(embed_dim=32, depth=4, num_heads=2, grad_checkpointing=True)
    ckpt.load_state_dict(plain.state_dict())
    assert ckpt.grad_checkpointing
    outs = []
    for encoder in (plain, ckpt):
        loss = sum(p.square().sum() for p, _ in encoder.forward_features(x, (0, 1, 2, 3)))
        loss.backward()
        outs.append((loss.detach(), encoder.blocks[0].attn.qkv.weight.grad.clone()))
    torch.testing.assert_close(outs[0][0], outs[1][0])
    torch.testing.assert_close(outs[0][1], outs[1][1])


def test_resampled_embedding_takes_the_tokens_dtype_like_the_official_code() -> None:
    pos = torch.randn(1, 1 + M * M, 8)
    assert interpolate_pos_embed(pos, 28, 37, dtype=torch.bfloat16).dtype == torch.bfloat16
    assert interpolate_pos_embed(pos, M, M, dtype=torch.bfloat16) is pos  # native grid: untouched, as official
