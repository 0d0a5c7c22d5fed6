"""Worker transforms: nearest-neighbour label resizing, disparity normalisation, train / eval crops and sizes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from anydepth.data.transforms import (
    EvalTransform,
    TrainTransform,
    UnlabeledTransform,
    image_to_unit_range,
    label_to_disparity,
    normalize_per_map,
    resize_nearest,
)
from anydepth.models.preprocess import lower_bound_size
from anydepth.shards.schema import Sample, SampleError

S = 28  # training crop in these tests (two patches)


@pytest.mark.parametrize("size", [(7, 5), (13, 40), (64, 64), (3, 3)])
def test_nearest_resize_only_produces_original_values(size: tuple[int, int]) -> None:
    rng = np.random.default_rng(0)
    label = rng.choice(np.array([0.0, 1.5, 2.0, 7.25, np.inf], np.float32), size=(11, 17))
    out = resize_nearest(label, size)
    assert out.shape == size
    assert set(np.unique(out)) <= set(np.unique(label))


def test_train_transform_never_blends_invalid_into_valid() -> None:
    """Disparity 1 and 3 with invalid pixels between: after any resize and crop the valid pixels normalise to
    exactly {0, 1} (a blended value would land in between) and every invalid pixel stays masked."""
    rng = np.random.default_rng(0)
    label = rng.choice(np.array([0.0, 1.0, 3.0], np.float32), size=(37, 53))
    sample = Sample(
        key="k", image=rng.integers(0, 256, (37, 53, 3), dtype=np.uint8), label=label, meta={"label_kind": "disparity"}
    )
    for seed in range(5):
        out = TrainTransform(S)(sample, np.random.default_rng(seed))
        assert set(out["label"][out["mask"]].unique().tolist()) == {0.0, 1.0}
        assert (out["label"][~out["mask"]] == 0).all() and (~out["mask"]).any()


def test_depth_to_disparity_hand_case() -> None:
    depth = np.array([[2.0, 4.0], [0.5, 0.0]], np.float32)
    valid = depth > 0
    disparity = label_to_disparity(depth, valid, "depth")
    np.testing.assert_allclose(disparity, [[0.5, 0.25], [2.0, 0.0]])
    np.testing.assert_allclose(normalize_per_map(disparity, valid), [[0.25 / 1.75, 0.0], [1.0, 0.0]], rtol=1e-6)
    np.testing.assert_array_equal(label_to_disparity(depth, valid, "relative_disparity"), depth)
    assert not normalize_per_map(np.full((2, 2), 3.0, np.float32), np.ones((2, 2), bool)).any()  # constant -> 0


def test_train_transform_hand_case_with_sky() -> None:
    """An S x S image is neither resized nor cropped: the output is the hand-computed normalised disparity."""
    depth = np.full((S, S), 4.0, np.float32)
    depth[S // 2 :] = 2.0  # near half
    depth[0, 0] = 0.0  # invalid
    depth[1, :] = np.nan  # invalid, but sky below overrides
    sky = np.zeros((S, S), bool)
    sky[1:3] = True
    image = np.arange(S * S * 3, dtype=np.uint8).reshape(S, S, 3)
    sample = Sample(key="hand", image=image, label=depth, sky=sky, meta={"label_kind": "depth"})
    out = TrainTransform(S)(sample, np.random.default_rng(0))
    assert out["image"].shape == (3, S, S) and out["image"].dtype == torch.uint8  # to [0, 1] on the device
    assert torch.equal(out["image"], torch.from_numpy(image).permute(2, 0, 1))
    torch.testing.assert_close(image_to_unit_range(out["image"]), torch.from_numpy(image).permute(2, 0, 1) / 255)
    expected = np.where(depth == 4.0, 0.5, 1.0).astype(np.float32)  # disparity 0.25 / 0.5 over max 0.5 (sky: 0)
    expected[1:3] = 0.0
    expected[0, 0] = 0.0
    mask = np.ones((S, S), bool)
    mask[0, 0] = False
    np.testing.assert_array_equal(out["mask"].numpy(), mask)
    np.testing.assert_allclose(out["label"].numpy(), expected)
    assert out["key"] == "hand" and out["label_kind"] == "depth" and out["mask"].dtype == torch.bool


def test_transforms_reject_tiny_images() -> None:
    tiny = Sample(key="tiny", image=np.zeros((10, 40, 3), np.uint8))
    for transform in (TrainTransform(S), UnlabeledTransform(S), EvalTransform(S)):
        with pytest.raises(SampleError, match="tiny"):
            transform(tiny, np.random.default_rng(0))


@pytest.mark.parametrize("hw", [(20, 30), (480, 640), (375, 1242), (700, 300)])
def test_eval_transform_sizes(hw: tuple[int, int]) -> None:
    height, width = hw
    label = np.linspace(1.0, 5.0, height * width, dtype=np.float32).reshape(height, width)
    sample = Sample(key="e", image=np.zeros((height, width, 3), np.uint8), label=label, meta={"label_kind": "depth"})
    out = EvalTransform(518)(sample)
    h, w = out["image"].shape[1:]
    assert h % 14 == 0 and w % 14 == 0 and min(h, w) >= 518 and (h, w) == lower_bound_size(height, width, 518)
    assert out["label"].shape == (height, width) and out["original_size"].tolist() == [height, width]
    np.testing.assert_array_equal(out["label"].numpy(), label)  # raw depth at the original resolution
