"""Segmentation readers (ADE20K, Cityscapes, the demo scenes' class ids) on tiny files in the published layouts, and
the ``seg.png`` field of the shard schema they write."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import webdataset as wds
from PIL import Image

from anydepth.shards.reader import resolve_shards
from anydepth.shards.schema import Sample, SampleError, decode_sample, encode_sample, validate_sample
from anydepth.sources import ROOTLESS, SourceError, get_source
from anydepth.sources.build import build_shards
from anydepth.sources.demo import DemoSegSource, DemoTrainSource
from anydepth.sources.demo.raycast import DEMO_CLASSES
from anydepth.sources.segmentation import (
    ADE20K_CLASSES,
    CITYSCAPES_CLASSES,
    CITYSCAPES_PALETTE,
    CITYSCAPES_TRAIN_IDS,
    ADE20KSource,
    CityscapesSource,
)

from helpers.fabricate import SOURCE_KWARGS, ade20k, cityscapes

Check = Callable[..., dict[str, Sample]]


def annotation(root: Path, rel: str) -> np.ndarray:
    return np.asarray(Image.open(root / rel))


def test_class_sets_have_the_benchmarks_sizes() -> None:
    assert len(ADE20K_CLASSES) == len(set(ADE20K_CLASSES)) == 150 and ADE20K_CLASSES[:3] == ("wall", "building", "sky")
    assert len(CITYSCAPES_CLASSES) == len(CITYSCAPES_PALETTE) == 19 and CITYSCAPES_CLASSES[-1] == "bicycle"
    assert sorted(CITYSCAPES_TRAIN_IDS.values()) == list(range(19))
    assert get_source("ade20k") is ADE20KSource and get_source("cityscapes") is CityscapesSource
    assert get_source("demo-seg") is DemoSegSource and "demo-seg" in ROOTLESS


def test_ade20k_reduces_the_zero_label(tmp_path: Path, check: Check) -> None:
    assert ade20k(tmp_path) == 2
    base = tmp_path / "ADEChallengeData2016"
    for root in (tmp_path, base):  # the dataset folder or the folder holding it
        samples = check(ADE20KSource(root), 2)
        assert list(samples) == ["ADE_train_00000001", "ADE_train_00000002"]
    sample = samples["ADE_train_00000001"]
    raw = annotation(base, "annotations/training/ADE_train_00000001.png")
    assert sample.label is None and sample.seg.dtype == np.uint8 and sample.meta["reduce_zero_label"]
    np.testing.assert_array_equal(sample.seg, np.where(raw == 0, 255, raw.astype(int) - 1))
    assert set(check(ADE20KSource(tmp_path, "val"), 1)) == {"ADE_val_00000001"}
    with pytest.raises(SourceError, match="split must be one of"):
        ADE20KSource(tmp_path, "test")


def test_ade20k_lists_images_without_annotation(tmp_path: Path) -> None:
    ade20k(tmp_path)
    (tmp_path / "ADEChallengeData2016/annotations/training/ADE_train_00000002.png").unlink()
    with pytest.raises(SourceError, match=r"1 of 2 images without one: ADE_train_00000002.jpg"):
        ADE20KSource(tmp_path).items()
    with pytest.raises(SourceError, match="expected ADEChallengeData2016/images/training/"):
        ADE20KSource(tmp_path / "ADEChallengeData2016" / "images").items()


def test_cityscapes_reads_train_ids_or_maps_label_ids(tmp_path: Path, check: Check) -> None:
    assert cityscapes(tmp_path) == 2
    samples = check(CityscapesSource(tmp_path), 2)
    assert list(samples) == ["aachen/aachen_000000_000019", "bochum/bochum_000000_000313"]
    train_ids = annotation(tmp_path, "gtFine/train/aachen/aachen_000000_000019_gtFine_labelTrainIds.png")
    np.testing.assert_array_equal(samples["aachen/aachen_000000_000019"].seg, train_ids)
    label_ids = annotation(tmp_path, "gtFine/train/bochum/bochum_000000_000313_gtFine_labelIds.png")
    mapped = samples["bochum/bochum_000000_000313"].seg
    assert (mapped[label_ids == 7] == 0).all() and (mapped[label_ids == 33] == 18).all()  # road, bicycle
    assert (mapped[~np.isin(label_ids, list(CITYSCAPES_TRAIN_IDS))] == 255).all()  # e.g. 0 unlabeled, 4 static
    assert list(check(CityscapesSource(tmp_path, "val"), 1)) == ["lindau/lindau_000000_000019"]


def test_cityscapes_lists_images_without_annotation(tmp_path: Path) -> None:
    cityscapes(tmp_path)
    (tmp_path / "gtFine/train/bochum/bochum_000000_000313_gtFine_labelIds.png").unlink()
    with pytest.raises(SourceError, match=r"1 of 2 images without one: bochum/bochum_000000_000313_leftImg8bit.png"):
        CityscapesSource(tmp_path).items()


def test_annotation_of_another_size_is_refused(tmp_path: Path) -> None:
    cityscapes(tmp_path)
    path = tmp_path / "gtFine/train/aachen/aachen_000000_000019_gtFine_labelTrainIds.png"
    Image.fromarray(np.zeros((5, 5), np.uint8)).save(path)
    source = CityscapesSource(tmp_path)
    with pytest.raises(ValueError, match=r"annotation .* is \(5, 5\) \(HxW\) but the image .* is \(20, 30\)"):
        source.load(source.items()[0])


def test_shards_hold_the_readers_class_ids(tmp_path: Path) -> None:
    ade20k(tmp_path / "ade")
    build_shards("ade20k", tmp_path / "ade", tmp_path / "shards", samples_per_shard=1, workers=1)
    (url,) = [u for u in resolve_shards([str(tmp_path / "shards")]).urls if u.endswith("000000.tar")]
    source = ADE20KSource(tmp_path / "ade")
    expected = {item.key: source.load(item).seg for item in source.items()}
    for record in wds.WebDataset(url, shardshuffle=False):
        sample = decode_sample(record)
        assert sample.seg.dtype == np.uint8 and "seg.png" in record
        np.testing.assert_array_equal(sample.seg, expected[sample.key])


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_seg_field_round_trips_and_is_validated(dtype: type) -> None:
    image = np.zeros((4, 5, 3), np.uint8)
    seg = (np.arange(20).reshape(4, 5) * (3000 if dtype == np.uint16 else 12)).astype(dtype)
    back = decode_sample(encode_sample(Sample("a", image, seg=seg), image_format="png"))
    assert back.seg.dtype == dtype and back.label is None
    np.testing.assert_array_equal(back.seg, seg)
    for bad in (seg[:3], seg.astype(np.int32)):
        with pytest.raises(SampleError, match="seg.png must be an H x W uint8 or uint16 class-id map"):
            validate_sample(Sample("a", image, seg=bad))


def test_demo_scenes_label_every_pixel_with_its_surface(tmp_path: Path) -> None:
    kwargs = SOURCE_KWARGS["demo-seg"]
    segs, depths = DemoSegSource(tmp_path, **kwargs), DemoTrainSource(tmp_path, **kwargs)
    assert [i.key for i in segs.items()] == [i.key for i in depths.items()]  # the same scenes
    seen = set()
    for item in segs.items():
        sample, depth = segs.load(item), depths.load(item)
        validate_sample(sample)
        np.testing.assert_array_equal(sample.image, depth.image)
        assert sample.label is None and sample.meta["classes"] == list(DEMO_CLASSES)
        np.testing.assert_array_equal(sample.seg == DEMO_CLASSES.index("sky"), depth.sky)
        seen |= set(np.unique(sample.seg).tolist())
    assert {DEMO_CLASSES.index(name) for name in ("ground", "box", "sky")} <= seen <= set(range(len(DEMO_CLASSES)))
    val = DemoSegSource(tmp_path, "val", **kwargs)
    assert val.scene_seed(0) != segs.scene_seed(0)  # held-out scenes
