"""DepthAnything forward semantics and the official inference preprocessing."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from anydepth import DepthAnything
from anydepth.models.preprocess import lower_bound_size, prepare_images

from helpers import TINY, lift_output_, perturb_


@pytest.fixture(scope="module")
def tiny() -> DepthAnything:
    torch.manual_seed(0)
    return lift_output_(perturb_(DepthAnything(version="v2", **TINY), std=0.1)).eval()


def test_forward_maps_normalised_images_to_nonnegative_disparity(tiny: DepthAnything) -> None:
    out = tiny(torch.randn(2, 3, 56, 84))
    assert out.shape == (2, 56, 84) and out.dtype == torch.float32
    assert (out >= 0).all()


def test_v1_and_v2_differ_only_in_the_blocks_feeding_the_head() -> None:
    v1, v2 = DepthAnything(version="v1", **TINY), DepthAnything(version="v2", **{**TINY, "depth": 8})
    assert v1.config.layer_indices == (0, 1, 2, 3) and v2.config.layer_indices == (1, 3, 5, 7)
    assert [k for k in v1.state_dict() if k.startswith("depth_head")] == [
        k for k in v2.state_dict() if k.startswith("depth_head")
    ]


@pytest.mark.parametrize(
    "size,expected",
    [
        ((480, 640), (518, 686)),  # the common VGA case
        ((300, 451), (518, 784)),
        ((518, 525), (518, 532)),  # 525 / 14 = 37.5 rounds half to even -> 38 * 14
        ((518, 539), (518, 532)),  # 38.5 -> 38
        ((1000, 400), (1288, 518)),  # portrait: the shorter (width) side becomes 518
        ((20, 20), (518, 518)),
    ],
)
def test_lower_bound_resize_matches_the_official_rule(size: tuple[int, int], expected: tuple[int, int]) -> None:
    assert lower_bound_size(*size, input_size=518) == expected


def test_infer_image_returns_disparity_at_the_input_size(tiny: DepthAnything) -> None:
    rgb = np.random.default_rng(0).integers(0, 256, (45, 61, 3), dtype=np.uint8)
    depth = tiny.infer_image(rgb, input_size=42)
    assert depth.shape == (45, 61) and depth.dtype == np.float32
    assert np.isfinite(depth).all() and (depth >= 0).all() and depth.std() > 0


def test_infer_image_is_the_forward_pass_upsampled(tiny: DepthAnything) -> None:
    rgb = np.random.default_rng(1).integers(0, 256, (28, 42, 3), dtype=np.uint8)  # already network-sized
    mean, std = torch.tensor([0.485, 0.456, 0.406]), torch.tensor([0.229, 0.224, 0.225])
    x = ((torch.from_numpy(rgb).float() / 255 - mean) / std).permute(2, 0, 1)[None]
    with torch.inference_mode():
        expected = tiny(x)[0].numpy()
    np.testing.assert_allclose(tiny.infer_image(rgb, input_size=28), expected, rtol=0, atol=1e-6)


def test_batched_inference_equals_one_by_one(tiny: DepthAnything) -> None:
    rng = np.random.default_rng(2)
    images = [rng.integers(0, 256, shape, dtype=np.uint8) for shape in [(40, 50, 3), (33, 47, 3), (40, 50, 3)]]
    batched = tiny.infer_images(images, input_size=28, batch_size=2)
    for image, depth in zip(images, batched):
        np.testing.assert_allclose(depth, tiny.infer_image(image, input_size=28), rtol=0, atol=1e-5)
    assert tiny.training is False


def test_inference_restores_training_mode() -> None:
    model = DepthAnything(version="v2", **TINY).train()
    model.infer_image(np.zeros((28, 28, 3), np.uint8), input_size=28)
    assert model.training


@pytest.mark.parametrize(
    "image,match",
    [
        (np.zeros((10, 30, 3), np.uint8), "30x10 px; the model needs at least 14 px"),
        (np.zeros((30, 30, 3), np.float32), "uint8 RGB array, got float32"),
        (np.zeros((30, 30), np.uint8), r"shape \(30, 30\)"),
    ],
)
def test_bad_images_are_clear_errors(tiny: DepthAnything, image: np.ndarray, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        tiny.infer_image(image)


def test_unknown_sizes_are_rejected() -> None:
    with pytest.raises(ValueError, match="encoder must be one of"):
        DepthAnything("vith")
    with pytest.raises(ValueError, match="needs embed_dim, depth"):
        DepthAnything("custom")
    with pytest.raises(ValueError, match="version must be one of"):
        DepthAnything(version="v3", **TINY)


@pytest.mark.gpu
def test_cuda_bf16_autocast_follows_fp32(tiny: DepthAnything) -> None:
    model = DepthAnything(version="v2", **TINY)
    model.load_state_dict(tiny.state_dict())
    model = model.cuda().eval()
    x = torch.randn(2, 3, 392, 518, device="cuda")
    with torch.inference_mode():
        reference = model(x)
        with torch.autocast("cuda", dtype=torch.bfloat16):
            mixed = model(x)
    assert mixed.dtype == torch.bfloat16
    scale = reference.abs().max()
    assert (mixed.float() - reference).abs().max() <= 0.05 * scale


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_each_version_upsamples_as_its_official_code(version: str) -> None:
    """On a real photo: V1 models upsample as the official V1 ``run.py`` (``F.interpolate(depth[None], (h, w),
    mode="bilinear", align_corners=False)``), V2 models as V2's ``infer_image`` (``align_corners=True``); the two
    rules differ on this photo, so the choice is visible."""
    photo = pytest.importorskip("skimage.data").chelsea()  # 300 x 451
    torch.manual_seed(0)
    model = lift_output_(perturb_(DepthAnything(version=version, **TINY), std=0.1)).eval()
    with torch.inference_mode():
        raw = model(prepare_images([photo], 70))[:, None]
        official = {
            corners: F.interpolate(raw, photo.shape[:2], mode="bilinear", align_corners=corners)[0, 0].numpy()
            for corners in (False, True)
        }
    expected = official[version == "v2"]
    np.testing.assert_allclose(model.infer_image(photo, input_size=70), expected, rtol=1e-5, atol=1e-6)
    assert np.abs(official[False] - official[True]).max() > 1e-3 * np.ptp(expected)
