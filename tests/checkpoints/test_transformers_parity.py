"""Numerical parity with transformers' DepthAnythingForDepthEstimation, conversion both ways.

transformers' Dinov2 resamples position embeddings to a target *size*, while the official DINOv2
code (anydepth's default) resamples by *scale factor* (+0.1); the two agree at the native
37 x 37 grid only, so the non-square comparisons use ``pos_embed_interpolation="size"``.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from anydepth import DepthAnything

from helpers import lift_output_, max_rel_diff, perturb_

transformers = pytest.importorskip("transformers")

SIZES = [(518, 518), (392, 518), (518, 728)]
TOL = 1e-4  # of the output's scale


def hf_model(width: int, depth: int, heads: int, out_indices: list[int], neck: list[int], fusion: int):
    backbone = transformers.Dinov2Config(
        hidden_size=width,
        num_hidden_layers=depth,
        num_attention_heads=heads,
        out_indices=out_indices,
        image_size=518,
        patch_size=14,
        reshape_hidden_states=False,
    )
    config = transformers.DepthAnythingConfig(
        backbone_config=backbone.to_dict(),
        reassemble_hidden_size=width,
        neck_hidden_sizes=neck,
        fusion_hidden_size=fusion,
    )
    return lift_output_(perturb_(transformers.DepthAnythingForDepthEstimation(config), std=0.1)).eval()


CONFIGS = {
    "tiny-v1": dict(width=32, depth=4, heads=2, out_indices=[1, 2, 3, 4], neck=[8, 16, 32, 32], fusion=16),
    "tiny-v2": dict(width=48, depth=8, heads=2, out_indices=[2, 4, 6, 8], neck=[8, 16, 32, 48], fusion=16),
    "vits-v1": dict(width=384, depth=12, heads=6, out_indices=[9, 10, 11, 12], neck=[48, 96, 192, 384], fusion=64),
    "vits-v2": dict(width=384, depth=12, heads=6, out_indices=[3, 6, 9, 12], neck=[48, 96, 192, 384], fusion=64),
}


@pytest.fixture(scope="module", params=list(CONFIGS))
def hf_pair(request, tmp_path_factory) -> tuple[str, object, Path]:
    torch.manual_seed(0)
    model = hf_model(**CONFIGS[request.param])
    directory = tmp_path_factory.mktemp(request.param)
    model.save_pretrained(directory)
    return request.param, model, directory


def compare(hf, ours: DepthAnything, size: tuple[int, int]) -> float:
    x = torch.randn(1, 3, *size)
    with torch.inference_mode():
        return max_rel_diff(hf(pixel_values=x).predicted_depth, ours(x))


def test_hf_directory_loads_with_the_right_architecture(hf_pair) -> None:
    name, _, directory = hf_pair
    ours = DepthAnything.from_checkpoint(directory)
    expected_version = name.split("-")[1]
    assert ours.config.version == expected_version
    assert ours.config.encoder == ("vits" if name.startswith("vits") else "custom")
    assert list(ours.config.layer_indices) == [i - 1 for i in CONFIGS[name]["out_indices"]]


def test_hf_to_anydepth_parity(hf_pair) -> None:
    name, hf, directory = hf_pair
    ours = DepthAnything.from_checkpoint(directory, pos_embed_interpolation="size").eval()
    sizes = SIZES if name != "vits-v1" else SIZES[1:2]  # keep the CPU suite short: vits-v2 covers all sizes
    for size in sizes:
        assert compare(hf, ours, size) <= TOL, size


def test_official_interpolation_equals_transformers_at_the_native_grid(hf_pair) -> None:
    _, hf, directory = hf_pair
    ours = DepthAnything.from_checkpoint(directory).eval()  # default: official DINOv2 resampling
    assert ours.config.pos_embed_interpolation == "dinov2"
    assert compare(hf, ours, (518, 518)) <= TOL


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_anydepth_to_hf_parity(tmp_path: Path, version: str) -> None:
    ours = DepthAnything(
        encoder="custom",
        version=version,
        embed_dim=48,
        depth=8,
        num_heads=2,
        features=16,
        out_channels=(8, 16, 32, 48),
        pos_embed_interpolation="size",
    )
    ours = lift_output_(perturb_(ours, std=0.1)).eval()
    ours.save_checkpoint(tmp_path / "hf", format="hf")
    hf = transformers.DepthAnythingForDepthEstimation.from_pretrained(tmp_path / "hf").eval()
    assert hf.config.backbone_config.out_indices == [i + 1 for i in ours.config.layer_indices]
    for size in SIZES:
        assert compare(hf, ours, size) <= TOL
    # and back: the written directory reloads into the same anydepth model
    again = DepthAnything.from_checkpoint(tmp_path / "hf", pos_embed_interpolation="size").eval()
    assert again.config == ours.config
    x = torch.randn(1, 3, 70, 98)
    with torch.inference_mode():
        torch.testing.assert_close(again(x), ours(x))


def test_swiglu_encoder_converts_both_ways(tmp_path: Path) -> None:
    """vitg-style SwiGLU FFN: transformers' packed weights_in/weights_out <-> timm's fc1/fc2."""
    backbone = transformers.Dinov2Config(
        hidden_size=48,
        num_hidden_layers=4,
        num_attention_heads=2,
        out_indices=[1, 2, 3, 4],
        use_swiglu_ffn=True,
        image_size=518,
        reshape_hidden_states=False,
    )
    config = transformers.DepthAnythingConfig(
        backbone_config=backbone.to_dict(),
        reassemble_hidden_size=48,
        neck_hidden_sizes=[8, 16, 32, 48],
        fusion_hidden_size=16,
    )
    hf = lift_output_(perturb_(transformers.DepthAnythingForDepthEstimation(config), std=0.1)).eval()
    hf.save_pretrained(tmp_path / "in")
    ours = DepthAnything.from_checkpoint(tmp_path / "in", version="v1").eval()
    assert ours.config.swiglu
    assert compare(hf, ours, (518, 518)) <= TOL
    ours.save_checkpoint(tmp_path / "out", format="hf")
    back = transformers.DepthAnythingForDepthEstimation.from_pretrained(tmp_path / "out").eval()
    assert compare(back, ours, (518, 518)) <= TOL
