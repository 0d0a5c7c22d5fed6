"""Segmentation data: the worker-side rescale + crop (aligned image and class ids, padding, cat_max_ratio), the
evaluation resize, the device-side flip and photometric distortion, and the DataModule on real demo shards."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from anydepth.data.segmentation import (
    AugmentationConfig,
    SegEvalTransform,
    SegmentationAugmentation,
    SegmentationDataModule,
    SegTrainTransform,
    rescaled_size,
)
from anydepth.shards.schema import Sample, SampleError
from anydepth.sources.build import build_shards

SIZE = 28
COLORS = np.array([[250, 0, 0], [0, 250, 0], [0, 0, 250]], np.uint8)


def blocks(height: int = 60, width: int = 90, seed: int = 0) -> Sample:
    """Three vertical class bands whose image colour names the class (red, green, blue), plus an ignored strip."""
    seg = np.repeat((np.arange(width) * 3 // width).astype(np.uint8)[None], height, axis=0)
    seg[:4] = 255
    image = np.where(seg[..., None] == 255, 128, COLORS[np.minimum(seg, 2)]).astype(np.uint8)
    return Sample(f"blocks{seed}", image, seg=seg)


def test_rescaled_size_keeps_the_aspect_ratio_within_both_bounds() -> None:
    assert rescaled_size(512, 683, 896, 3584) == (896, 1195)  # an ADE20K image: the shorter side binds
    assert rescaled_size(1024, 2048, 896, 3584) == (896, 1792)  # Cityscapes
    assert rescaled_size(100, 1000, 896, 3584) == (358, 3584)  # a panorama: the longer side binds


def test_train_crop_keeps_image_and_ids_aligned() -> None:
    transform = SegTrainTransform(SIZE, cat_max_ratio=1.0)
    for seed in range(8):
        out = transform(blocks(), np.random.default_rng(seed))
        image, seg = out["image"].numpy(), out["seg"].numpy()
        assert image.shape == (3, SIZE, SIZE) and image.dtype == np.uint8 and seg.dtype == np.int32
        for cls, color in enumerate(COLORS):
            inside = seg == cls
            if inside.any():  # the brightest channel of a class's pixels is its colour (edges blend a little)
                assert (image[:, inside].argmax(0) == color.argmax()).mean() > 0.9


def test_identity_scale_crops_exact_pixels_and_small_images_are_padded() -> None:
    sample = blocks(height=SIZE, width=3 * SIZE)  # shorter side = size: scale 1 is no resampling
    out = SegTrainTransform(SIZE, scales=(1.0,), cat_max_ratio=1.0)(sample, np.random.default_rng(3))
    image, seg = out["image"].numpy().transpose(1, 2, 0), out["seg"].numpy()
    (left,) = [x for x in range(2 * SIZE + 1) if np.array_equal(seg, sample.seg[:, x : x + SIZE])]
    np.testing.assert_array_equal(image, sample.image[:, left : left + SIZE])
    shrunk = SegTrainTransform(SIZE, scales=(0.5,), cat_max_ratio=1.0)(blocks(SIZE, SIZE), np.random.default_rng(0))
    assert (shrunk["seg"][SIZE // 2 :] == 255).all() and (shrunk["seg"][:, SIZE // 2 :] == 255).all()  # padding
    assert not shrunk["image"][:, SIZE // 2 :].any()


def test_crops_dominated_by_one_class_are_redrawn() -> None:
    """cat_max_ratio 0.75: crops where one class covers 75 % or more of the labeled pixels are drawn again (up to
    10 times), so far more crops hold several classes than without the test."""
    sample = blocks(height=SIZE, width=10 * SIZE)
    sample.seg[:] = np.arange(10 * SIZE) % 60 >= 52  # 8 px stripes of class 1 every 60 px: most crops are class 0

    def mixed(ratio: float) -> int:
        count = 0
        for seed in range(20):
            transform = SegTrainTransform(SIZE, scales=(1.0,), max_long_ratio=10, cat_max_ratio=ratio)
            seg = transform(sample, np.random.default_rng(seed))["seg"]
            count += int(torch.bincount(seg.flatten()).max() < 0.75 * seg.numel())
        return count

    assert mixed(1.0) <= 10 and mixed(0.75) >= 18


def test_eval_transform_resizes_the_image_and_keeps_the_ids() -> None:
    sample = blocks(height=30, width=45)
    out = SegEvalTransform(SIZE)(sample)
    assert out["image"].shape == (3, SIZE, 42) and out["image"].dtype == torch.float32
    assert out["original_size"].tolist() == [30, 45]
    np.testing.assert_array_equal(out["seg"].numpy(), sample.seg)
    with pytest.raises(SampleError, match="has no seg.png"):
        SegEvalTransform(SIZE)(Sample("x", sample.image))


def test_flip_moves_image_and_ids_together_and_colour_leaves_ids_alone() -> None:
    images, seg = torch.rand(4, 3, 8, 10), torch.randint(0, 3, (4, 8, 10))
    flipped = SegmentationAugmentation(AugmentationConfig(flip_p=1.0, p=0.0))(images, seg)
    torch.testing.assert_close(flipped[0], images.flip(-1))
    assert torch.equal(flipped[1], seg.flip(-1))
    same = SegmentationAugmentation(AugmentationConfig(flip_p=0.0, p=0.0))(images, seg)
    torch.testing.assert_close(same[0], images)
    torch.manual_seed(0)
    coloured, ids = SegmentationAugmentation(AugmentationConfig(flip_p=0.0, p=1.0))(images, seg)
    assert torch.equal(ids, seg) and 0 <= coloured.min() and coloured.max() <= 1
    assert not torch.allclose(coloured, images)


@pytest.fixture(scope="module")
def shards(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("seg-data")
    scenes = dict(size=(36, 48))
    build_shards("demo-seg", root, root / "train", samples_per_shard=2, source_kwargs=dict(num_scenes=4, **scenes))
    build_shards(
        "demo-seg", root, root / "val", split="val", samples_per_shard=1, source_kwargs=dict(num_scenes=2, **scenes)
    )
    return {"train": root / "train", "val": root / "val"}


def test_datamodule_batches(shards: dict[str, Path]) -> None:
    data = SegmentationDataModule(
        [str(shards["train"])], [str(shards["val"])], batch_size=2, num_workers=0, size=SIZE, shuffle_buffer=4
    )
    train = list(data.train_dataloader())
    assert len(train) == 2 and {tuple(b["image"].shape) for b in train} == {(2, 3, SIZE, SIZE)}
    assert all(b["seg"].shape == (2, SIZE, SIZE) and int(b["seg"][b["seg"] != 255].max()) < 5 for b in train)
    val = list(data.val_dataloader())
    assert sorted(key for b in val for key in b["key"]) == ["synthetic/scene_00000", "synthetic/scene_00001"]
    assert all(b["seg"].shape == (1, 36, 48) and b["image"].shape == (1, 3, SIZE, 37) for b in val)
    assert [b["key"] for b in data.test_dataloader()] == [b["key"] for b in val]
    with pytest.raises(ValueError, match="no training shards"):
        SegmentationDataModule(val_shards=[str(shards["val"])]).train_dataloader()
