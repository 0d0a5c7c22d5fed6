"""Real RGB-D and stereo training sets (DIML, HR-WSI): tiny files in each published layout -> samples."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from anydepth.shards.schema import Sample
from anydepth.sources import Source, SourceError
from anydepth.sources.rgbd import DIMLSource, HRWSISource

from helpers.fabricate import DIML_INDOOR, depth_mm, fabricate, hrwsi_disparity

Check = Callable[[Source, int], dict[str, Sample]]  # the `check` fixture (conftest.py)


# ------------------------------------------------------------------------------------------- DIML


def test_diml_layouts(tmp_path: Path, check: Check) -> None:
    assert fabricate("diml", tmp_path) == 3
    mm = depth_mm()
    full = tmp_path / DIML_INDOOR  # full indoor release
    samples = check(DIMLSource(tmp_path), 3)
    assert set(samples) == {
        "indoor/16__Billiard_Hall/180208/B1/col/in_180208_1_c",
        "indoor/train/HR/11__Bedroom/color/in_1_c",
        "outdoor/170721_C0/1/left/out_1_left",
    }
    indoor = samples["indoor/16__Billiard_Hall/180208/B1/col/in_180208_1_c"]
    np.testing.assert_array_equal(indoor.label, mm.astype(np.float32) / np.float32(1000))
    assert indoor.mask is None and not indoor.valid_mask()[0, 0] and indoor.meta["variant"] == "indoor"
    assert indoor.meta["files"]["label"] == "indoor/16. Billiard Hall/180208/B1/up_png/in_180208_1_ud.png"
    outdoor = samples["outdoor/170721_C0/1/left/out_1_left"]
    assert outdoor.mask is not None and not outdoor.mask[:, 0].any() and not outdoor.mask[0, :3].any()
    assert outdoor.mask[1:, 1:].all()
    assert [i.key for i in DIMLSource(tmp_path, split="outdoor").items()] == ["outdoor/170721_C0/1/left/out_1_left"]
    assert len(DIMLSource(tmp_path, split="train").items()) == 1
    with pytest.raises(SourceError, match="'nowhere'"):
        DIMLSource(tmp_path, split="nowhere").items()
    (full / "up_png" / "in_180208_1_ud.png").unlink()
    with pytest.raises(SourceError, match="in_180208_1_c.png"):
        DIMLSource(tmp_path).items()
    with pytest.raises(SourceError, match="col/ \\+ up_png/"):
        DIMLSource(full / "col").items()


# ------------------------------------------------------------------------------------------- HR-WSI


def test_hrwsi(tmp_path: Path, check: Check) -> None:
    assert fabricate("hrwsi", tmp_path) == 3
    disp8, disp16 = hrwsi_disparity(8), hrwsi_disparity(16)
    samples = check(HRWSISource(tmp_path), 3)
    assert set(samples) == {"train/100", "train/101", "val/200"}
    np.testing.assert_array_equal(samples["train/100"].label, disp8.astype(np.float32))
    np.testing.assert_array_equal(samples["train/101"].label, disp16.astype(np.float32))
    mask = samples["train/100"].mask
    assert mask is not None and not mask[:2].any() and mask[2:].all()
    assert samples["train/101"].mask is None
    assert [i.key for i in HRWSISource(tmp_path, split="val").items()] == ["val/200"]
    with pytest.raises(SourceError, match="split must be"):
        HRWSISource(tmp_path, split="test").items()
    (tmp_path / "val" / "gts" / "200.png").unlink()
    with pytest.raises(SourceError, match=r"val/imgs/200\.jpg"):
        HRWSISource(tmp_path).items()
    with pytest.raises(SourceError, match="imgs"):
        HRWSISource(tmp_path / "train").items()
