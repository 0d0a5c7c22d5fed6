"""Metric transforms and ``MetricDataModule``: depth stays in metres, crops of any (h, w), training and evaluation at
one scale, non-metric labels refused; real demo shards through the real pipeline."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from anydepth.data.metric import MetricDataModule
from anydepth.data.transforms import MetricEvalTransform, MetricTrainTransform, cover_size
from anydepth.shards.schema import Sample, SampleError
from anydepth.sources.build import build_shards

CROP = (28, 42)  # 2 x 3 patches: a non-square crop


def depth_sample(height: int = 36, width: int = 48, seed: int = 0) -> Sample:
    """Depth in metres on a few distinct values, invalid pixels (0) and a sky band on top."""
    rng = np.random.default_rng(seed)
    depth = rng.choice(np.array([0.0, 1.25, 3.5, 12.0, 60.0], np.float32), size=(height, width))
    sky = np.zeros((height, width), bool)
    sky[:4] = True
    depth[:4] = 0.0
    image = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    return Sample(key="metres", image=image, label=depth, sky=sky, meta={"label_kind": "depth"})


@pytest.mark.parametrize(
    ("size", "crop", "expected"),
    [
        ((480, 640), (392, 518), (392, 518)),  # the paper's NYUv2 crop covers a whole (scaled) frame
        ((375, 1242), (378, 770), (378, 1246)),  # KITTI at 378 x 770: a crop of a 1.008x frame
        ((768, 1024), (518, 518), (518, 686)),  # Hypersim: the shorter side to 518, as V2's Resize(lower_bound)
        ((640, 480), (392, 518), (686, 518)),  # portrait: the width decides
    ],
)
def test_cover_size_keeps_the_aspect_and_covers_the_crop(
    size: tuple[int, int], crop: tuple[int, int], expected: tuple[int, int]
) -> None:
    out = cover_size(*size, crop)
    assert out == expected and out[0] >= crop[0] and out[1] >= crop[1]
    assert all(side % 14 == 0 for side in out)
    assert abs(out[0] / out[1] - size[0] / size[1]) < 14 / min(out)  # aspect kept up to the rounding


def test_metric_train_transform_keeps_metres_and_produces_the_crop() -> None:
    sample = depth_sample()
    stored = set(np.unique(sample.label[sample.label > 0]).tolist())
    shapes = set()
    for seed in range(6):
        out = MetricTrainTransform(CROP)(sample, np.random.default_rng(seed))
        assert out["image"].shape == (3, *CROP) and out["image"].dtype == torch.uint8
        assert out["label"].shape == out["mask"].shape == CROP and out["mask"].dtype == torch.bool
        assert set(out["label"][out["mask"]].unique().tolist()) <= stored  # metres as stored, nothing blended
        assert (out["label"][~out["mask"]] == 0).all() and out["mask"].any()
        shapes.add(tuple(out["label"].shape))
    assert shapes == {CROP}


def test_metric_train_transform_hand_case_without_resize() -> None:
    """An image of the crop's size is neither scaled nor cropped: label and mask are the stored ones, sky invalid."""
    sample = depth_sample(*CROP)
    out = MetricTrainTransform(CROP)(sample, np.random.default_rng(0))
    valid = (sample.label > 0) & ~sample.sky
    np.testing.assert_array_equal(out["mask"].numpy(), valid)
    np.testing.assert_array_equal(out["label"].numpy(), np.where(valid, sample.label, 0))
    assert torch.equal(out["image"], torch.from_numpy(sample.image).permute(2, 0, 1))


def test_metric_eval_transform_scales_as_training_and_keeps_ground_truth() -> None:
    sample = depth_sample()
    out = MetricEvalTransform(CROP)(sample)
    assert tuple(out["image"].shape[1:]) == cover_size(36, 48, CROP) == (28, 42)  # the training scale, uncropped
    assert out["image"].dtype == torch.float32 and out["original_size"].tolist() == [36, 48]
    valid = (sample.label > 0) & ~sample.sky
    np.testing.assert_array_equal(out["mask"].numpy(), valid)
    np.testing.assert_array_equal(out["label"].numpy(), np.where(valid, sample.label, 0))


@pytest.mark.parametrize("kind", ["disparity", "relative_disparity"])
def test_metric_transforms_refuse_labels_without_metric_scale(kind: str) -> None:
    sample = Sample(key="d", image=depth_sample().image, label=np.ones((36, 48), np.float32), meta={"label_kind": kind})
    for transform in (MetricTrainTransform(CROP), MetricEvalTransform(CROP)):
        with pytest.raises(SampleError, match="metric depth needs depth labels in metres"):
            transform(sample, np.random.default_rng(0))


@pytest.mark.parametrize("crop", [(384, 768), (28,), (7, 14)])
def test_crops_must_be_whole_patches(crop: tuple[int, ...]) -> None:
    with pytest.raises(ValueError, match="multiples of 14"):
        MetricTrainTransform(crop)  # type: ignore[arg-type]


def test_metric_datamodule_reads_demo_shards_in_metres(tmp_path: Path) -> None:
    """Real synthetic RGB-D shards (exact z-depth in metres) through the LabeledDataModule pipeline with the metric
    transforms: training crops of (h, w), validation at the stored resolution, depths the renderer's."""
    scenes = dict(num_scenes=4, size=(36, 48))
    build_shards("demo-train", tmp_path, tmp_path / "train", samples_per_shard=2, source_kwargs=scenes)
    build_shards("demo-train", tmp_path, tmp_path / "val", split="val", source_kwargs=dict(scenes, num_scenes=1))
    data = MetricDataModule(
        [str(tmp_path / "train")], [str(tmp_path / "val")], crop=CROP, batch_size=2, num_workers=0, shuffle_buffer=4
    )
    batches = list(data.train_dataloader())
    assert len(batches) == 2
    for batch in batches:
        assert batch["image"].shape == (2, 3, *CROP) and batch["label"].shape == (2, *CROP)
        depth = batch["label"][batch["mask"]]
        assert depth.min() > 1.0 and depth.max() < 200.0  # metres: the renderer's camera sees 1-200 m, not [0, 1]
    (val,) = list(data.val_dataloader())
    assert val["label"].shape == (1, 36, 48) and val["image"].shape == (1, 3, *CROP)
    assert val["label"][val["mask"]].min() > 1.0
