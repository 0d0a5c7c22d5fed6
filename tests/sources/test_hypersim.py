"""Hypersim: tiny files in the published layout (tonemap.jpg + depth_meters.hdf5, optional split CSV) -> samples, and
the distance -> planar depth conversion checked against a plane."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from anydepth.shards.schema import Sample, validate_sample
from anydepth.sources import Source, SourceError
from anydepth.sources.hypersim import HypersimSource

from helpers.fabricate import HYPERSIM_FOCAL, fabricate, hypersim_distance, ramp, write_h5, write_image

Check = Callable[[Source, int], dict[str, Sample]]  # the `check` fixture (conftest.py)
KEYS = ["ai_001_001/cam_00/frame_0000", "ai_001_001/cam_00/frame_0001", "ai_003_010/cam_01/frame_0007"]
SPLIT_CSV = """scene_name,camera_name,frame_id,included_in_public_release,exclude_reason,split_partition_name
ai_001_001,cam_00,0,True,,train
ai_001_001,cam_00,1,True,,val
ai_003_010,cam_01,7,False,Camera trajectory is bad,test
"""


def test_hypersim(tmp_path: Path, check: Check) -> None:
    assert fabricate("hypersim", tmp_path) == 3
    samples = check(HypersimSource(tmp_path), 3)
    assert sorted(samples) == KEYS
    for i, key in enumerate(KEYS):  # float16 distances of planar ramp(i + 1) read back as that ramp
        sample = samples[key]
        assert sample.label[0, 0] == 0 and not sample.valid_mask()[0, 0]  # NaN: no geometry
        np.testing.assert_allclose(sample.label.ravel()[1:], ramp(i + 1.0).ravel()[1:], rtol=1e-3)
    meta = samples[KEYS[2]].meta
    assert (meta["scene"], meta["camera"], meta["frame"], meta["split"]) == ("ai_003_010", "cam_01", 7, "train")
    assert meta["files"]["label"] == "ai_003_010/images/scene_cam_01_geometry_hdf5/frame.0007.depth_meters.hdf5"
    assert meta["intrinsics"] == {
        "fx": pytest.approx(HYPERSIM_FOCAL),
        "fy": pytest.approx(HYPERSIM_FOCAL),
        "cx": 15.0,
        "cy": 10.0,
    }
    assert len(HypersimSource(tmp_path, split="train").items()) == 3  # no split file: everything is train
    with pytest.raises(SourceError, match="split 'val' needs metadata_images_split_scene_v1.csv"):
        HypersimSource(tmp_path, split="val").items()
    with pytest.raises(SourceError, match="split must be one of"):
        HypersimSource(tmp_path, split="training")


@pytest.mark.parametrize("size", [(768, 1024), (12, 16)])  # the published size; a resized copy (focal scaled)
def test_distance_becomes_planar_depth(tmp_path: Path, size: tuple[int, int]) -> None:
    """A fronto-parallel plane at z = 2 m has depth_meters = 2 sqrt(f^2 + u^2 + v^2) / f (f = 886.81 px at width 1024):
    it reads back as 2.0 everywhere; NaN, inf and <= 0 pixels are invalid."""
    h, w = size
    focal = 886.81 * w / 1024
    distance = hypersim_distance(np.full(size, 2.0), focal).astype(np.float32)
    assert distance[0, 0] > 2.4  # the corner ray is ~20% longer than z: the conversion is not a no-op
    distance[0, 1], distance[1, 0], distance[1, 1], distance[2, 2] = np.nan, np.inf, 0.0, -1.0
    images = tmp_path / "ai_055_009" / "images"
    write_image(images / "scene_cam_02_final_preview" / "frame.0003.tonemap.jpg", 1, h, w, format="JPEG")
    write_h5(images / "scene_cam_02_geometry_hdf5" / "frame.0003.depth_meters.hdf5", distance, dataset="dataset")
    source = HypersimSource(tmp_path)
    sample = source.load(source.items()[0])
    validate_sample(sample)
    invalid = np.zeros(size, bool)
    invalid[[0, 1, 1, 2], [1, 0, 1, 2]] = True
    np.testing.assert_array_equal(sample.valid_mask(), ~invalid)
    np.testing.assert_allclose(sample.label[~invalid], 2.0, rtol=1e-6)
    assert not sample.label[invalid].any()
    assert sample.meta["intrinsics"] == {"fx": focal, "fy": focal, "cx": w / 2, "cy": h / 2}


def test_hypersim_split_file(tmp_path: Path) -> None:
    """With the official split CSV: frames outside the public release are skipped, ``split`` selects a partition."""
    fabricate("hypersim", tmp_path)
    (tmp_path / "metadata_images_split_scene_v1.csv").write_text(SPLIT_CSV)
    assert [item.key for item in HypersimSource(tmp_path).items()] == KEYS[:2]
    (train,) = HypersimSource(tmp_path, split="train").items()
    (val,) = HypersimSource(tmp_path, split="val").items()
    assert (train.key, train.extra["split"], val.key, val.extra["split"]) == (KEYS[0], "train", KEYS[1], "val")
    with pytest.raises(SourceError, match="tonemap.jpg images in split 'test'"):
        HypersimSource(tmp_path, split="test").items()
    (tmp_path / "ai_003_010" / "images" / "scene_cam_01_geometry_hdf5" / "frame.0007.depth_meters.hdf5").unlink()
    assert len(HypersimSource(tmp_path).items()) == 2  # a frame outside the release needs no depth
    (tmp_path / "metadata_images_split_scene_v1.csv").write_text("scene_name,camera_name,frame_id\n")
    with pytest.raises(SourceError, match="has no column included_in_public_release, split_partition_name"):
        HypersimSource(tmp_path).items()


def test_hypersim_layout_errors(tmp_path: Path) -> None:
    fabricate("hypersim", tmp_path)
    (tmp_path / "ai_001_001" / "images" / "scene_cam_00_geometry_hdf5" / "frame.0001.depth_meters.hdf5").unlink()
    with pytest.raises(
        SourceError, match=r"1 of 3 images without one: ai_001_001/images/scene_cam_00_final_preview/frame\.0001"
    ):
        HypersimSource(tmp_path).items()
    with pytest.raises(SourceError, match="<scene>/images/scene_cam_NN_final_preview/"):
        HypersimSource(tmp_path / "ai_001_001").items()
