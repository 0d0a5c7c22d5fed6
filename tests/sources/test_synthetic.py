"""Synthetic training sets (IRS, TartanAir): tiny files in each published layout -> samples."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from anydepth.shards.schema import Sample, validate_sample
from anydepth.sources import Source, SourceError
from anydepth.sources.synthetic import IRSSource, TartanAirSource

from helpers.fabricate import IRS_OFFICE, fabricate, ramp, write_exr, write_image

Check = Callable[[Source, int], dict[str, Sample]]  # the `check` fixture (conftest.py)


# ------------------------------------------------------------------------------------------- IRS


def test_irs(tmp_path: Path, check: Check) -> None:
    assert fabricate("irs", tmp_path) == 3
    samples = check(IRSSource(tmp_path), 3)
    assert set(samples) == {"Home/ArchVizInterior03Data/l_1", "Home/ArchVizInterior03Data/l_2", "Office/Office01/l_10"}
    np.testing.assert_array_equal(samples["Home/ArchVizInterior03Data/l_1"].label, ramp(2.0))
    np.testing.assert_array_equal(samples["Home/ArchVizInterior03Data/l_2"].label, ramp(3.0))
    np.testing.assert_array_equal(samples["Office/Office01/l_10"].label, ramp(4.0))  # the .exr, not the stale .npy
    assert samples["Office/Office01/l_10"].meta["category"] == "Office"
    assert samples["Office/Office01/l_10"].meta["files"]["label"] == "Office/Office01/d_10.exr"
    assert samples["Home/ArchVizInterior03Data/l_1"].meta["files"]["label"] == "Home/ArchVizInterior03Data/d_1.npy"
    assert len(IRSSource(tmp_path, split="home").items()) == 2
    with pytest.raises(SourceError, match="l_<N>.png"):
        IRSSource(tmp_path, split="Store").items()


def test_irs_exr_channels_and_errors(tmp_path: Path) -> None:
    """Published d_<N>.exr in other channel layouts: RGB -> R; two unrelated channels -> a clear ValueError."""
    fabricate("irs", tmp_path)
    office = tmp_path / IRS_OFFICE
    disparity = ramp(6.0)
    disparity[2, 7] = 0.0  # invalid pixel
    write_image(office / "l_11.png", 4)
    write_exr(office / "d_11.exr", {"R": disparity, "G": disparity + 1, "B": disparity + 2})
    write_image(office / "l_12.png", 5)
    write_exr(office / "d_12.exr", {"Z": ramp(), "A": ramp()})
    source = IRSSource(tmp_path, split="Office")
    items = {item.key: item for item in source.items()}
    assert sorted(items) == ["Office/Office01/l_10", "Office/Office01/l_11", "Office/Office01/l_12"]
    sample = source.load(items["Office/Office01/l_11"])
    validate_sample(sample)
    np.testing.assert_array_equal(sample.label, disparity)
    assert not sample.valid_mask()[2, 7] and sample.valid_mask()[2, 8]
    with pytest.raises(ValueError, match=r"d_12\.exr: OpenEXR file has channels A, Z"):
        source.load(items["Office/Office01/l_12"])
    write_image(office / "l_13.png", 6)  # no d_13 at all
    with pytest.raises(SourceError, match=r"d_<N>\.exr.*1 of 6 images without one: Office/Office01/l_13\.png"):
        IRSSource(tmp_path).items()


# ------------------------------------------------------------------------------------------- TartanAir


def test_tartanair(tmp_path: Path, check: Check) -> None:
    assert fabricate("tartanair", tmp_path) == 4
    samples = check(TartanAirSource(tmp_path), 4)
    sample = samples["abandonedfactory/Easy/P000/image_left/000001_left"]
    assert sample.sky is not None and sample.sky[:3].all() and not sample.sky[3:].any()
    assert (sample.label[:3] == 0).all() and not sample.valid_mask()[:3].any()
    np.testing.assert_array_equal(sample.label[3:], ramp(1.0)[3:])
    assert sample.meta["env"] == "abandonedfactory" and sample.meta["difficulty"] == "Easy"
    assert sample.meta["files"]["label"] == "abandonedfactory/Easy/P000/depth_left/000001_left_depth.npy"
    hard = TartanAirSource(tmp_path, split="hard").items()
    assert len(hard) == 2 and all("/Hard/" in item.key for item in hard)
    high = TartanAirSource(tmp_path, sky_depth=1e5)
    assert not high.load(high.items()[0]).sky.any()
    with pytest.raises(SourceError, match="split must be"):
        TartanAirSource(tmp_path, split="medium")
    (tmp_path / "abandonedfactory" / "Hard" / "P000" / "depth_left" / "000001_left_depth.npy").unlink()
    with pytest.raises(SourceError, match="Hard/P000/image_left/000001_left.png"):
        TartanAirSource(tmp_path).items()
    with pytest.raises(SourceError, match="image_left"):
        TartanAirSource(tmp_path / "abandonedfactory" / "Easy" / "P000" / "image_left").items()
