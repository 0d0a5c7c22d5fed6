"""The segmentation network: the Feature2Pyramid neck, transformers' Mask2Former and the light head on the anydepth
pyramid (tiny random weights), and the inference modes (whole, sliding windows, multi-scale + flip)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from anydepth.models import DepthAnything
from anydepth.models.mask2former import Mask2FormerHead, mask2former_config, semantic_targets
from anydepth.models.segmentation import (
    Feature2Pyramid,
    LightHead,
    SegmentationConfig,
    SegmentationModel,
    padded_scores,
    predict_scores,
    sliding_scores,
)

from helpers import TINY

CLASSES = ("floor", "wall", "thing")
TINY_MASK2FORMER = dict(num_queries=6, decoder_layers=3, encoder_layers=1, train_num_points=256)
"""A small Mask2Former: 6 queries, 2 masked-attention layers, 1 deformable-attention layer."""


def tiny_model(head: str, embed_dim: int = 64) -> SegmentationModel:
    torch.manual_seed(0)
    depth = DepthAnything(**{**TINY, "embed_dim": embed_dim, "version": "v1"})
    return SegmentationModel.from_depth_model(
        depth, CLASSES, head=head, light_channels=16, mask2former=TINY_MASK2FORMER
    )


def fixed_batch() -> tuple[torch.Tensor, torch.Tensor]:
    """Two 56 x 70 px images (4 x 5 patches) and class ids with an ignored band."""
    generator = torch.Generator().manual_seed(1)
    images = torch.randn(2, 3, 56, 70, generator=generator)
    seg = torch.randint(0, len(CLASSES), (2, 56, 70), generator=generator)
    seg[:, :8] = 255
    return images, seg


def test_feature2pyramid_rescales_the_patch_grid() -> None:
    maps = [torch.randn(2, 32, 6, 8) for _ in range(4)]
    shapes = [tuple(x.shape) for x in Feature2Pyramid(32)(maps)]
    assert shapes == [(2, 32, 24, 32), (2, 32, 12, 16), (2, 32, 6, 8), (2, 32, 3, 4)]
    with pytest.raises(ValueError, match="rescales must be 4, 2, 1 or 0.5"):
        Feature2Pyramid(32, (8, 2, 1, 0.5))


def test_mask2former_config_follows_the_encoder_width() -> None:
    config = mask2former_config(1024, 150, num_queries=200)
    assert (config.hidden_dim, config.feature_size, config.mask_feature_size) == (1024, 1024, 1024)
    assert (config.num_attention_heads, config.dim_feedforward, config.encoder_feedforward_dim) == (32, 4096, 4096)
    assert config.num_labels == 150 and config.num_queries == 200
    with pytest.raises(ValueError, match="multiples of 32"):
        mask2former_config(48, 3)


def test_semantic_targets_are_one_mask_per_present_class() -> None:
    seg = torch.tensor([[[0, 2], [255, 2]]])
    (masks,), (classes,) = semantic_targets(seg, 255)
    assert classes.tolist() == [0, 2]
    assert masks.tolist() == [[[1, 0], [0, 0]], [[0, 1], [0, 1]]]  # the ignored pixel is in no mask


@pytest.mark.parametrize("head", ["mask2former", "light"])
def test_head_runs_on_the_anydepth_pyramid(head: str) -> None:
    model = tiny_model(head)
    images, seg = fixed_batch()
    assert model.scores(images).shape == (2, len(CLASSES), 56, 70)
    losses = model.loss(images, seg)
    assert all(torch.isfinite(value) for value in losses.values())
    expected = {"loss", "cross_entropy", "mask", "dice"} if head == "mask2former" else {"loss", "cross_entropy"}
    assert set(losses) == expected
    assert isinstance(model.head, Mask2FormerHead if head == "mask2former" else LightHead)
    if head == "mask2former":  # the last layer's weighted terms, plus every auxiliary layer's
        assert losses["loss"] > losses["cross_entropy"] + losses["mask"] + losses["dice"]
        assert model.head.pixel_decoder.level_embed.abs().sum() > 0  # transformers' initialisation ran


@pytest.mark.parametrize("head", ["mask2former", "light"])
def test_one_optimiser_step_lowers_the_loss_on_a_fixed_batch(head: str) -> None:
    model = tiny_model(head)
    images, seg = fixed_batch()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)

    def loss() -> torch.Tensor:
        torch.manual_seed(0)  # the same Mask2Former point samples both times
        return model.loss(images, seg)["loss"]

    model.eval()  # no dropout; BatchNorm on running statistics
    before = loss()
    before.backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)  # every weight gets a gradient
    optimizer.step()
    assert loss() < before


def test_light_loss_leaves_ignored_pixels_out() -> None:
    model = tiny_model("light").eval()
    images, seg = fixed_batch()
    logits = model(images)
    valid = seg != 255
    per_pixel = model.head.scores(logits, (56, 70)).permute(0, 2, 3, 1)  # logits upsampled to the labels
    expected = nn.functional.cross_entropy(per_pixel[valid], seg[valid])
    torch.testing.assert_close(model.head.loss(logits, seg, 255)["loss"], expected)
    nothing = model.head.loss(logits, torch.full_like(seg, 255), 255)["loss"]
    assert nothing == 0 and nothing.requires_grad  # an all-ignored batch: no signal, no NaN


def test_config_round_trips_and_rebuilds_the_model() -> None:
    model = tiny_model("mask2former")
    config = SegmentationConfig.from_dict(model.config.to_dict())
    assert config == model.config and config.num_classes == 3
    rebuilt = SegmentationModel.from_config(config)
    assert rebuilt.state_dict().keys() == model.state_dict().keys()


# ---------------------------------------------------------------------------------------------------- inference


def test_sliding_window_covering_the_image_is_the_single_pass() -> None:
    model = tiny_model("light").eval()
    images = torch.randn(1, 3, 50, 64)  # not multiples of 14: padded to 56 x 70
    with torch.no_grad():
        whole = padded_scores(model.scores, images)
        assert whole.shape == (1, 3, 50, 64)
        torch.testing.assert_close(whole, model.scores(nn.functional.pad(images, (0, 6, 0, 6)))[..., :50, :64])
        torch.testing.assert_close(sliding_scores(model.scores, images, crop=70, stride=28), whole)
        torch.testing.assert_close(predict_scores(model.scores, images, (50, 64), crop=70, stride=28), whole)


def test_overlapping_windows_average_to_the_single_pass_of_a_pointwise_model() -> None:
    pointwise = nn.Conv2d(3, 4, kernel_size=1)  # a model whose score at a pixel depends on that pixel only
    images = torch.randn(2, 3, 60, 90)
    with torch.no_grad():
        torch.testing.assert_close(sliding_scores(pointwise, images, crop=28, stride=14), pointwise(images))
        with pytest.raises(ValueError, match="0 < stride <= crop"):
            sliding_scores(pointwise, images, crop=28, stride=42)


def test_multi_scale_and_flip_equal_the_single_pass_where_they_should() -> None:
    model = tiny_model("light").eval()
    images = torch.randn(1, 3, 56, 70)
    with torch.no_grad():
        single = predict_scores(model.scores, images, (56, 70))
        torch.testing.assert_close(single, model.scores(images))
        repeated = predict_scores(model.scores, images, (56, 70), scales=(1.0, 1.0))  # two identical views
        torch.testing.assert_close(repeated, single.softmax(dim=1))
        pointwise = nn.Conv2d(3, 4, kernel_size=1)  # equivariant to flips: the mirrored view is the same
        flipped = predict_scores(pointwise, images, (56, 70), flip=True)
        torch.testing.assert_close(flipped, pointwise(images).softmax(dim=1))
        upsampled = predict_scores(model.scores, images, (112, 140), scales=(0.5, 1.0), flip=True)
        assert upsampled.shape == (1, 3, 112, 140)
        torch.testing.assert_close(upsampled.sum(1), torch.ones(1, 112, 140))  # a mean of probabilities
