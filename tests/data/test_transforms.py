"""Worker transforms: nearest-neighbour label resizing, disparity normalisation, train / eval crops and sizes."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from anydepth.data.transforms import (
    EvalTransform,
    MetricEvalTransform,
    MetricTrainTransform,
    TrainTransform,
    UnlabeledTransform,
    image_to_unit_range,
    label_to_disparity,
    normalize_per_map,
    resize_nearest,
)
from anydepth.models.preprocess import lower_bound_size
from anydepth.shards.schema import Sample, SampleError, decode_sample

from helpers.photos import LARGE, PHOTOS, large_photo, photo_record

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


@pytest.mark.parametrize("invalid", [0, 1, 5000])
def test_normalize_per_map_is_min_max_over_the_valid_pixels(invalid: int) -> None:
    """All valid (whole-array arithmetic) or some invalid (masked): the same float32 values as the definition."""
    rng = np.random.default_rng(invalid)
    disparity = (rng.random((120, 90)) * 7 + 0.5).astype(np.float32)
    valid = np.ones(disparity.shape, bool)
    valid.flat[rng.choice(disparity.size, invalid, replace=False)] = False
    values = disparity[valid]
    expected = np.where(valid, (disparity - values.min()) / (values.max() - values.min()), 0).astype(np.float32)
    out = normalize_per_map(disparity, valid)
    assert out.dtype == np.float32 and out[valid].min() == 0 and out[valid].max() == 1
    np.testing.assert_array_equal(out, expected)


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


@pytest.mark.parametrize("layout", ["contiguous", "read-only", "flipped view"])
def test_the_training_resize_is_pils_bicubic_for_any_array_layout(layout: str) -> None:
    """A square photo fills the crop (no offset to draw): the crop is PIL's antialiased bicubic resize within 2 grey
    levels, whether the decoded array is contiguous, read-only or a negative-stride view."""
    photo = large_photo("astronaut", (300, 300)).copy()
    image = {"contiguous": photo, "read-only": photo.copy(), "flipped view": photo[::-1]}[layout]
    image.flags.writeable = layout != "read-only"
    out = TrainTransform(S)(Sample("k", image, meta={"label_kind": None}), np.random.default_rng(0))["image"]
    expected = np.asarray(Image.fromarray(np.ascontiguousarray(image)).resize((S, S), Image.Resampling.BICUBIC))
    assert np.abs(out.numpy().transpose(1, 2, 0).astype(int) - expected).max() <= 2


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


REDUCED = [TrainTransform(518), UnlabeledTransform(518), EvalTransform(518), MetricTrainTransform((392, 518))]
REDUCED += [MetricEvalTransform((392, 518)), TrainTransform(252)]  # 252: libjpeg scale 1/4


@pytest.fixture(scope="module")
def photo_records() -> list[dict[str, Any]]:
    return [photo_record(name, shape) for name, shape in zip(PHOTOS, [LARGE, (1501, 2253), (2253, 1501)])]


@pytest.mark.parametrize("transform", REDUCED, ids=lambda t: f"{type(t).__name__}-{t.decode_size(1500, 2250)}")
def test_reduced_scale_decoding_matches_full_decoding(transform: Any, photo_records: list[dict[str, Any]]) -> None:
    """Real photos (1500 x 2250 and odd sizes) through decode_sample with the transform's decode_size: decoded at a
    reduced scale, never below the resize target; the image within one grey level (mean) of full decode + the same
    transform; label and mask identical (never decoded at reduced scale)."""
    for record in photo_records:
        full = decode_sample(record)
        reduced = decode_sample(record, needed=transform.decode_size)
        needed = transform.decode_size(*full.image.shape[:2])
        assert reduced.full_size == full.image.shape[:2] and reduced.size == full.size
        assert needed[0] <= reduced.image.shape[0] < full.image.shape[0] / 1.5 and reduced.image.shape[1] >= needed[1]
        np.testing.assert_array_equal(reduced.label, full.label)
        np.testing.assert_array_equal(reduced.mask, full.mask)
        a, b = (transform(s, np.random.default_rng(7)) for s in (full, reduced))
        assert a["image"].shape == b["image"].shape and a["image"].dtype == b["image"].dtype
        scale = 1.0 if a["image"].dtype == torch.uint8 else 255.0
        assert (a["image"].double() - b["image"].double()).abs().mean() * scale < 1.0
        for name in ("label", "mask", "original_size"):
            if name in a:
                assert torch.equal(a[name], b[name]), name


def test_reduced_decoding_can_be_turned_off(photo_records: list[dict[str, Any]]) -> None:
    for transform in (TrainTransform(518, reduced_decode=False), EvalTransform(518, reduced_decode=False)):
        assert transform.decode_size(1500, 2250) is None
        assert decode_sample(photo_records[0], needed=transform.decode_size).full_size is None
    small = decode_sample(photo_records[0], needed=TrainTransform(1024).decode_size)
    assert small.full_size is None and small.image.shape[:2] == LARGE  # 1500 // 1024 = 1: no scale below 1 fits
