"""Generic folder readers: ``images`` (folders and list files) and ``rgbd-folder`` (depth or disparity)."""

from __future__ import annotations

import tarfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from anydepth.shards.schema import Sample, decode_sample
from anydepth.sources import Source, SourceError
from anydepth.sources.build import build_shards, downscale_sample
from anydepth.sources.folders import ImageFolderSource, RGBDFolderSource

from helpers.fabricate import H, W, depth_mm, fabricate, ramp, rgb, write_exr, write_image, write_npy, write_pfm
from helpers.photos import large_photo

Check = Callable[[Source, int], dict[str, Sample]]  # the `check` fixture (conftest.py)


def corrupt(path: Path) -> None:
    path.write_bytes(b"not an image at all")


# ------------------------------------------------------------------------------------------- images


def test_image_folder(tmp_path: Path, check: Check) -> None:
    root = tmp_path / "imgs"
    assert fabricate("images", root) == 3
    a = rgb(1)
    samples = check(ImageFolderSource(root), 3)
    assert set(samples) == {"a_png", "sub_dir/b_v2_JPG", "sub_dir/c_webp"}
    np.testing.assert_array_equal(samples["a_png"].image, a)
    assert samples["a_png"].label is None and samples["a_png"].meta["label_kind"] is None
    assert samples["sub_dir/b_v2_JPG"].meta["files"]["image"] == "sub dir/b.v2.JPG"
    assert [i.key for i in ImageFolderSource(root, split="sub dir").items()] == ["b_v2_JPG", "c_webp"]


def test_image_folder_applies_exif_orientation(tmp_path: Path, check: Check) -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise for display
    write_image(tmp_path / "r.jpg", exif=exif)
    (sample,) = check(ImageFolderSource(tmp_path), 1).values()
    assert sample.image.shape == (W, H, 3)


def test_image_list_file(tmp_path: Path, check: Check) -> None:
    write_image(tmp_path / "data" / "x.png", 1)
    write_image(tmp_path / "data" / "y.png", 2)
    listing = tmp_path / "list.txt"
    listing.write_text("# images\n\ndata/y.png\ndata/x.png\ndata/x.png\n")
    samples = check(ImageFolderSource(listing), 2)
    assert list(samples) == ["data/x_png", "data/y_png"]
    assert samples["data/x_png"].meta["files"]["image"] == "data/x.png"
    listing.write_text("data/x.png\ndata/missing.png\n")
    with pytest.raises(SourceError, match="missing.png"):
        ImageFolderSource(listing).items()


def test_image_folder_errors_and_corrupt_file(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="does not exist"):
        ImageFolderSource(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(SourceError, match=r"empty: expected image files.*; found an empty folder"):
        ImageFolderSource(tmp_path / "empty").items()
    corrupt(tmp_path / "bad.jpg")
    source = ImageFolderSource(tmp_path)
    (item,) = source.items()
    with pytest.raises(Exception):  # noqa: B017  # PIL's error type; the builder skips it
        source.load(item)


# ------------------------------------------------------------------------------------------- rgbd-folder


def test_rgbd_folder_depth(tmp_path: Path, check: Check) -> None:
    assert fabricate("rgbd-folder", tmp_path) == 3
    mm = depth_mm()
    source = RGBDFolderSource(tmp_path)
    assert source.label_kind == "depth"
    samples = check(source, 3)
    assert set(samples) == {"a", "seq_1/b", "seq_1/c"}
    a = samples["a"]
    np.testing.assert_array_equal(a.label, mm.astype(np.float32) / np.float32(1000))
    assert a.label[0, 0] == 0 and a.label[5, 5] == pytest.approx(mm[5, 5] / 1000)
    assert a.mask is not None and not a.mask[:, :2].any() and a.mask[:, 2:].all()
    assert a.sky is not None and a.sky[:4].all() and not a.sky[4:].any()
    files = {"image": "images/a.png", "label": "depth/a.png", "mask": "masks/a.png", "sky": "sky/a.png"}
    assert a.meta["files"] == files
    np.testing.assert_array_equal(samples["seq_1/b"].label, ramp())
    np.testing.assert_array_equal(samples["seq_1/c"].label, ramp(5.0))
    assert samples["seq_1/b"].mask is None and samples["seq_1/b"].sky is None
    scaled = RGBDFolderSource(tmp_path, png_scale=1.0)
    np.testing.assert_array_equal(scaled.load(scaled.items()[0]).label, mm.astype(np.float32))


def test_rgbd_folder_disparity_split_and_errors(tmp_path: Path, check: Check) -> None:
    root = tmp_path / "train"
    write_image(root / "images" / "a.png")
    write_pfm(root / "disparity" / "a.pfm", ramp())
    source = RGBDFolderSource(tmp_path, split="train")
    assert source.label_kind == "disparity"
    (sample,) = check(source, 1).values()
    assert sample.meta["label_kind"] == "disparity" and sample.meta["files"]["label"] == "train/disparity/a.pfm"
    write_image(root / "images" / "b.png")
    write_image(root / "images" / "c.png")
    with pytest.raises(SourceError, match=r"2 of 3 images without a label: b\.png, c\.png"):
        RGBDFolderSource(root).items()
    (root / "depth").mkdir()
    with pytest.raises(SourceError, match="exactly one of depth/ or disparity/"):
        RGBDFolderSource(root)
    with pytest.raises(SourceError, match="images/"):
        RGBDFolderSource(tmp_path)


def test_rgbd_folder_exr_labels(tmp_path: Path, check: Check) -> None:
    write_image(tmp_path / "images" / "a.png", 1)
    write_exr(tmp_path / "depth" / "a.exr", {"Y": ramp(6.0)})
    source = RGBDFolderSource(tmp_path)
    (sample,) = check(source, 1).values()
    np.testing.assert_array_equal(sample.label, ramp(6.0))  # used as is, no png_scale
    assert sample.meta["files"]["label"] == "depth/a.exr" and "png_scale" not in sample.meta


def test_rgbd_folder_size_mismatch_and_corrupt(tmp_path: Path) -> None:
    write_image(tmp_path / "images" / "a.png")
    write_npy(tmp_path / "depth" / "a.npy", np.ones((H + 1, W), np.float32))
    corrupt(tmp_path / "images" / "b.png")
    write_npy(tmp_path / "depth" / "b.npy", np.ones((H, W), np.float32))
    source = RGBDFolderSource(tmp_path)
    a, b = source.items()
    with pytest.raises(ValueError, match=r"label .*a\.npy is 21x30 \(HxW\) but the image .*a\.png is 20x30"):
        source.load(a)
    with pytest.raises(Exception):  # noqa: B017
        source.load(b)


def test_rgbd_folder_disparity_manifest_says_disparity(tmp_path: Path) -> None:
    """The manifest's label_kind follows the folder the reader found (per instance), not a class default."""
    from anydepth.sources.build import build_shards

    root = tmp_path / "rgbd"
    (root / "images").mkdir(parents=True)
    (root / "disparity").mkdir()
    Image.fromarray(np.full((20, 30, 3), 90, np.uint8)).save(root / "images" / "a.png")
    np.save(root / "disparity" / "a.npy", np.full((20, 30), 4.0, np.float32))
    manifest = build_shards("rgbd-folder", root, tmp_path / "out")
    assert manifest.label_kind == "disparity"


def test_max_side_builds_decode_jpegs_at_a_reduced_scale_as_a_full_decode_would_store(tmp_path: Path) -> None:
    (tmp_path / "photos").mkdir()
    Image.fromarray(large_photo("coffee", (901, 1351))).save(tmp_path / "photos" / "coffee.jpg", quality=95)
    source = ImageFolderSource(tmp_path / "photos")
    (item,) = source.items()
    expected = downscale_sample(source.load(item), 320)  # full decode, then the builder's Lanczos
    reduced = source.load_within(item, 320)  # decoded at libjpeg's 1/2 scale, then Lanczos
    assert reduced.meta == expected.meta and reduced.meta["original_size"] == [901, 1351]
    assert reduced.image.shape == expected.image.shape == (213, 320, 3)
    assert np.abs(reduced.image.astype(float) - expected.image).mean() < 1.0
    build_shards("images", tmp_path / "photos", tmp_path / "out", max_side=320, image_format="png")
    with tarfile.open(tmp_path / "out" / "shard-000000.tar") as tar:
        record = {m.name.split(".", 1)[1]: tar.extractfile(m).read() for m in tar.getmembers()}
    record["__key__"] = reduced.key
    stored = decode_sample(record)
    assert np.array_equal(stored.image, reduced.image) and stored.meta["scale"] == expected.meta["scale"]
