"""Multi-view-stereo training sets (BlendedMVS, MegaDepth): tiny files in each published layout -> samples."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from anydepth.shards.schema import Sample, validate_sample
from anydepth.sources import Source, SourceError
from anydepth.sources.mvs import BlendedMVSSource, MegaDepthSource

from helpers.fabricate import BLENDEDMVS_SCENES, MEGADEPTH_BASE, H, W, fabricate, ramp, write_h5, write_npy

Check = Callable[[Source, int], dict[str, Sample]]  # the `check` fixture (conftest.py)


# ------------------------------------------------------------------------------------------- BlendedMVS


def test_blendedmvs(tmp_path: Path, check: Check) -> None:
    pids = list(BLENDEDMVS_SCENES)
    assert fabricate("blendedmvs", tmp_path) == 4
    samples = check(BlendedMVSSource(tmp_path), 4)
    sample = samples[f"{pids[1]}/00000001"]
    np.testing.assert_array_equal(sample.label[:-1], ramp(1.0)[:-1])
    assert sample.label[-1, -1] == 0 and not sample.valid_mask()[-1, -1]
    assert sample.meta["scene"] == pids[1]
    assert sample.meta["files"]["label"] == f"{pids[1]}/rendered_depth_maps/00000001.pfm"
    assert {i.key.split("/")[0] for i in BlendedMVSSource(tmp_path, split="train").items()} == {pids[0]}
    assert {i.key.split("/")[0] for i in BlendedMVSSource(tmp_path, split="val").items()} == {pids[1]}
    with pytest.raises(SourceError, match="test_list.txt"):
        BlendedMVSSource(tmp_path, split="test").items()
    (tmp_path / pids[0] / "rendered_depth_maps" / "00000000.pfm").unlink()
    with pytest.raises(SourceError, match="00000000.jpg"):
        BlendedMVSSource(tmp_path).items()
    with pytest.raises(SourceError, match="blended_images"):
        BlendedMVSSource(tmp_path / pids[0] / "blended_images").items()


# ------------------------------------------------------------------------------------------- MegaDepth


def test_megadepth(tmp_path: Path, check: Check) -> None:
    assert fabricate("megadepth", tmp_path) == 3
    base = tmp_path / MEGADEPTH_BASE
    samples = check(MegaDepthSource(tmp_path), 3)
    assert set(samples) == {"0001/dense0/1234_abc_o", "0001/dense1/P1010480", "0204/dense0/x_y"}
    np.testing.assert_array_equal(samples["0001/dense0/1234_abc_o"].label, ramp(1.0))  # converted .npy
    np.testing.assert_array_equal(samples["0001/dense1/P1010480"].label, ramp(2.0))  # published .h5, float32
    np.testing.assert_array_equal(samples["0204/dense0/x_y"].label, ramp(3.0))  # published .h5, float64
    assert samples["0204/dense0/x_y"].meta["files"]["image"] == "0204/dense0/imgs/x.y.jpg"
    assert samples["0204/dense0/x_y"].meta["files"]["label"] == "0204/dense0/depths/x.y.h5"
    assert samples["0001/dense0/1234_abc_o"].meta["files"]["label"] == "0001/dense0/depths/1234_abc_o.npy"
    assert len(MegaDepthSource(base).items()) == 3  # root = the MegaDepth_v1 folder itself
    with pytest.raises(SourceError, match="no splits"):
        MegaDepthSource(tmp_path, split="train")
    with pytest.raises(SourceError, match="dense0/imgs"):
        MegaDepthSource(base / "0001" / "dense0").items()
    (base / "0204" / "dense0" / "depths" / "x.y.h5").unlink()
    with pytest.raises(SourceError, match=r"1 of 3 images without one: 0204/dense0/imgs/x\.y\.jpg"):
        MegaDepthSource(tmp_path).items()


def test_megadepth_h5_depth_read_directly(tmp_path: Path) -> None:
    """The published .h5 (dataset "depth") is read with h5py, before a converted .npy beside it."""
    fabricate("megadepth", tmp_path)
    depths = tmp_path / MEGADEPTH_BASE / "0204" / "dense0" / "depths"
    depth = ramp(7.0)
    depth[3, 4] = 0.0  # invalid pixel
    write_h5(depths / "x.y.h5", depth.astype(np.float64))
    write_npy(depths / "x.y.npy", ramp(70.0))  # stale conversion: the .h5 wins
    source = MegaDepthSource(tmp_path)
    items = {item.key: item for item in source.items()}
    sample = source.load(items["0204/dense0/x_y"])
    validate_sample(sample)
    assert sample.label.dtype == np.float32 and sample.label.shape == (H, W)
    np.testing.assert_array_equal(sample.label, depth)
    assert not sample.valid_mask()[3, 4] and sample.valid_mask()[4, 3]
    assert sample.meta["files"]["label"] == "0204/dense0/depths/x.y.h5"
    write_h5(depths / "x.y.h5", depth, dataset="other")
    with pytest.raises(ValueError, match=r"x\.y\.h5: no HDF5 dataset 'depth' \(found: other\)"):
        source.load(items["0204/dense0/x_y"])
