"""Segmentation evaluation: mIoU, per-class IoU and accuracies on constructed cases, exact merging of metric states
(what the DDP reduction does), ``evaluate_segmentation`` on real shards and the palette PNGs of ``infer --task seg``."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from anydepth.evaluation.segmentation import (
    InferenceSettings,
    SegmentationMetrics,
    evaluate_segmentation,
    palette,
    segment_images,
    write_segmentation_png,
)
from anydepth.metrics import segmentation_values
from anydepth.models import DepthAnything
from anydepth.models.segmentation import SegmentationModel
from anydepth.shards.schema import decode_seg
from anydepth.sources.build import build_shards
from anydepth.sources.demo import DemoSegSource
from anydepth.sources.demo.raycast import DEMO_CLASSES
from anydepth.sources.segmentation import CITYSCAPES_CLASSES, CITYSCAPES_PALETTE

from helpers import TINY

SCENES = dict(num_scenes=3, size=(36, 48))
SIZE = 28


def ids(*rows: list[int]) -> torch.Tensor:
    return torch.tensor([rows])


def test_perfect_prediction_scores_one() -> None:
    target = torch.randint(0, 4, (2, 8, 9))
    metric = SegmentationMetrics(4)
    metric.update(target, target)
    values = metric.compute()
    assert float(values["mIoU"]) == float(values["aAcc"]) == float(values["mAcc"]) == 1.0
    assert values["IoU"].tolist() == [1.0] * 4 and int(values["images"]) == 2


def test_hand_computed_case_with_an_absent_class() -> None:
    """Class 0: 2 hits, 1 false negative, 1 false positive -> IoU 2/4; class 1: 1 hit, 1 false positive and 1 false
    negative -> 1/3; class 2 in neither -> NaN, left out of the means."""
    target = ids([0, 0, 0, 1, 1])
    pred = ids([0, 0, 1, 0, 1])
    values = segmentation_values(_computed(pred, target, classes=3), ["a", "b", "c"])
    assert values["IoU"]["a"] == pytest.approx(1 / 2) and values["IoU"]["b"] == pytest.approx(1 / 3)
    assert math.isnan(values["IoU"]["c"]) and values["mIoU"] == pytest.approx((1 / 2 + 1 / 3) / 2)
    assert values["aAcc"] == pytest.approx(3 / 5) and values["mAcc"] == pytest.approx((2 / 3 + 1 / 2) / 2)
    assert values["images"] == 1


def _computed(pred: torch.Tensor, target: torch.Tensor, classes: int) -> dict:
    metric = SegmentationMetrics(classes)
    metric.update(pred, target)
    return metric.compute()


def test_ignored_pixels_count_for_nothing() -> None:
    target = ids([0, 1, 255, 255])
    right = _computed(ids([0, 1, 1, 0]), target, classes=2)
    other = _computed(ids([0, 1, 0, 1]), target, classes=2)  # different predictions on the ignored pixels only
    for name in ("mIoU", "aAcc", "mAcc", "IoU"):
        torch.testing.assert_close(right[name], other[name])
    assert float(right["mIoU"]) == float(right["aAcc"]) == 1.0


def test_two_merged_metrics_equal_one_fed_everything() -> None:
    """What the sum reduction over DDP ranks does: counts add up, so the result is exact (not a mean of means)."""
    generator = torch.Generator().manual_seed(0)
    targets = [torch.randint(0, 5, (2, 12, 10), generator=generator) for _ in range(4)]
    preds = [torch.where(torch.rand(t.shape, generator=generator) < 0.6, t, (t + 1) % 5) for t in targets]
    targets[1][:, :4] = 255
    whole, first, second = SegmentationMetrics(5), SegmentationMetrics(5), SegmentationMetrics(5)
    for index, (pred, target) in enumerate(zip(preds, targets)):
        whole.update(pred, target)
        (first if index % 2 else second).update(pred, target)
    first.merge_state(second)
    merged, expected = first.compute(), whole.compute()
    for name in expected:
        torch.testing.assert_close(merged[name], expected[name])
    assert int(merged["images"]) == 8


# ------------------------------------------------------------------------------------------ runs and outputs


@pytest.fixture(scope="module")
def shards(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("seg") / "val"
    build_shards("demo-seg", out, out, split="val", samples_per_shard=2, image_format="png", source_kwargs=SCENES)
    return out


@pytest.fixture(scope="module")
def model() -> SegmentationModel:
    torch.manual_seed(0)
    depth = DepthAnything(**{**TINY, "version": "v1"})
    return SegmentationModel.from_depth_model(depth, DEMO_CLASSES, head="light", light_channels=8).eval()


def test_evaluation_scores_what_segment_images_predicts(shards: Path, model: SegmentationModel) -> None:
    """``evaluate_segmentation`` over shards equals the metrics of ``segment_images`` on the same images: every
    image once, predicted at the evaluation size and scored at its own resolution."""
    settings = InferenceSettings(scales=(1.0, 1.5), flip=True, crop=28, stride=14)
    results = evaluate_segmentation(
        model, [str(shards)], size=SIZE, settings=settings, num_workers=0, accelerator="cpu", progress=False
    )
    source = DemoSegSource(shards, "val", **SCENES)
    samples = [source.load(item) for item in source.items()]
    predictions = segment_images(model, [s.image for s in samples], size=SIZE, settings=settings)
    metric = SegmentationMetrics(len(DEMO_CLASSES))
    for sample, prediction in zip(samples, predictions):
        assert prediction.shape == sample.seg.shape
        metric.update(torch.from_numpy(prediction)[None], torch.from_numpy(sample.seg.astype(np.int64))[None])
    expected = segmentation_values(metric.compute(), DEMO_CLASSES)
    assert results["IoU"] == pytest.approx(expected.pop("IoU"), nan_ok=True) and list(results["IoU"]) == list(
        DEMO_CLASSES
    )
    assert {k: results[k] for k in expected} == pytest.approx(expected) and results["images"] == 3


def test_palette_png_holds_the_ids_and_shows_the_colours(tmp_path: Path) -> None:
    labels = np.array([[0, 1, 18], [255, 2, 0]])
    colors = palette(CITYSCAPES_CLASSES)
    assert colors.tolist() == [list(c) for c in CITYSCAPES_PALETTE]
    write_segmentation_png(tmp_path / "out" / "a.png", labels, colors)
    np.testing.assert_array_equal(decode_seg((tmp_path / "out" / "a.png").read_bytes()), labels)
    rgb = np.asarray(Image.open(tmp_path / "out" / "a.png").convert("RGB"))
    assert rgb[0, 2].tolist() == list(CITYSCAPES_PALETTE[18]) and rgb[1, 0].tolist() == [0, 0, 0]
    assert palette(DEMO_CLASSES).shape == (5, 3) and (palette(DEMO_CLASSES) == palette(DEMO_CLASSES)).all()
    with pytest.raises(ValueError, match="ids up to 255"):
        write_segmentation_png(tmp_path / "b.png", np.array([[300]]), colors)
