"""Virtual KITTI 2: tiny files in the published layout (rgb_N.jpg + 16-bit centimetre depth_N.png) -> samples."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from anydepth.shards.schema import Sample
from anydepth.sources import Source, SourceError
from anydepth.sources.vkitti2 import VKITTI2Source

from helpers.fabricate import VKITTI2_FRAMES, fabricate, vkitti2_depth

Check = Callable[[Source, int], dict[str, Sample]]  # the `check` fixture (conftest.py)


def test_vkitti2(tmp_path: Path, check: Check) -> None:
    assert fabricate("vkitti2", tmp_path) == 4
    samples = check(VKITTI2Source(tmp_path), 4)
    keys = [f"{scene}/{variant}/{camera}/rgb_{frame}" for scene, variant, camera, frame in VKITTI2_FRAMES]
    assert sorted(samples) == sorted(keys)
    for i, key in enumerate(keys):
        sample = samples[key]
        assert sample.sky is not None and sample.sky[:3].all() and not sample.sky[3:].any()  # the far plane
        assert not sample.label[:3].any() and not sample.valid_mask()[:3].any()
        np.testing.assert_array_equal(sample.label[3:], vkitti2_depth(i)[3:].astype(np.float32) / np.float32(100))
    meta = samples["Scene20/15-deg-left/Camera_0/rgb_00000"].meta
    assert (meta["scene"], meta["variant"], meta["camera"], meta["depth_unit"]) == (
        "Scene20",
        "15-deg-left",
        "Camera_0",
        "m",
    )
    assert meta["files"]["label"] == "Scene20/15-deg-left/frames/depth/Camera_0/depth_00000.png"
    assert [item.key for item in VKITTI2Source(tmp_path, split="fog").items()] == ["Scene01/fog/Camera_0/rgb_00001"]
    assert len(VKITTI2Source(tmp_path, split="CLONE").items()) == 2
    with pytest.raises(SourceError, match=r"Scene<NN>/'rain'/frames/rgb"):
        VKITTI2Source(tmp_path, split="rain").items()


def test_vkitti2_missing_depth(tmp_path: Path) -> None:
    fabricate("vkitti2", tmp_path)
    (tmp_path / "Scene01" / "clone" / "frames" / "depth" / "Camera_1" / "depth_00000.png").unlink()
    with pytest.raises(
        SourceError, match=r"1 of 4 images without one: Scene01/clone/frames/rgb/Camera_1/rgb_00000\.jpg"
    ):
        VKITTI2Source(tmp_path).items()
