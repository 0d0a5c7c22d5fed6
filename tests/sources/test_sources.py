"""Dataset readers: tiny files in each published layout -> items() / load() -> schema-valid samples."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from anydepth.shards.schema import Sample, decode_sample, encode_sample, validate_sample
from anydepth.sources import SOURCES, Source, SourceError, get_source
from anydepth.sources.datasets import (
    BlendedMVSSource,
    DIMLSource,
    HRWSISource,
    IRSSource,
    MegaDepthSource,
    TartanAirSource,
)
from anydepth.sources.folders import (
    ImageFolderSource,
    RGBDFolderSource,
    read_exr,
    read_label,
    read_pfm,
    sanitize_key,
    unique_keys,
)

from helpers.fabricate import (
    BLENDEDMVS_SCENES,
    DIML_INDOOR,
    IRS_OFFICE,
    MEGADEPTH_BASE,
    H,
    W,
    depth_mm,
    fabricate,
    hrwsi_disparity,
    ramp,
    rgb,
    write_exr,
    write_h5,
    write_image,
    write_npy,
    write_pfm,
    write_png16,
)

KEY = re.compile(r"^[A-Za-z0-9_\-/]+$")


# ------------------------------------------------------------------------------------------- checks


def check(source: Source, n: int) -> list[Sample]:
    """items() deterministic/unique/sorted/dot-free; every load() schema-valid with the common meta."""
    items = source.items()
    keys = [item.key for item in items]
    assert len(items) == n
    assert keys == sorted(keys) and len(set(keys)) == n
    assert all(KEY.match(key) and "." not in key for key in keys)
    assert [item.key for item in source.items()] == keys
    samples = [source.load(item) for item in items]
    for sample, key in zip(samples, keys):
        validate_sample(sample)
        assert sample.key == key
        assert sample.image.dtype == np.uint8 and sample.image.ndim == 3 and sample.image.shape[2] == 3
        meta = sample.meta
        assert meta["source"] == source.name
        assert meta["label_kind"] == source.label_kind
        assert meta["original_size"] == list(sample.image.shape[:2])
        assert meta["scale"] == 1.0
        assert "image" in meta["files"] and not Path(meta["files"]["image"]).is_absolute()
        if sample.label is not None:
            assert sample.label.dtype == np.float32 and sample.label.shape == sample.image.shape[:2]
    roundtrip = decode_sample(encode_sample(samples[0], image_format="png"))  # meta is JSON, arrays survive
    assert roundtrip.meta == samples[0].meta and np.array_equal(roundtrip.image, samples[0].image)
    return samples


def by_key(samples: list[Sample]) -> dict[str, Sample]:
    return {sample.key: sample for sample in samples}


def corrupt(path: Path) -> None:
    path.write_bytes(b"not an image at all")


# ------------------------------------------------------------------------------------------- helpers


def test_registry_names_match_classes() -> None:
    for kind in ("images", "rgbd-folder", "blendedmvs", "diml", "hrwsi", "irs", "megadepth", "tartanair"):
        assert kind in SOURCES and get_source(kind).name == kind


@pytest.mark.parametrize("little_endian", [True, False])
def test_read_pfm_flips_rows_and_endianness(tmp_path: Path, little_endian: bool) -> None:
    values = ramp()
    write_pfm(tmp_path / "d.pfm", values, little_endian)
    out = read_pfm(tmp_path / "d.pfm")
    assert out.dtype == np.float32 and out.dtype.isnative
    np.testing.assert_array_equal(out, values)  # row 0 on top, not flipped, not transposed
    colour = np.stack([values, values * 2, values * 3], axis=-1)
    write_pfm(tmp_path / "c.pfm", colour, little_endian)
    np.testing.assert_array_equal(read_pfm(tmp_path / "c.pfm"), colour)


def test_read_label_formats_and_errors(tmp_path: Path) -> None:
    write_npy(tmp_path / "a.npy", ramp()[None])  # 1 x H x W is squeezed
    np.testing.assert_array_equal(read_label(tmp_path / "a.npy"), ramp())
    write_png16(tmp_path / "b.png", np.full((H, W), 1234))
    np.testing.assert_array_equal(read_label(tmp_path / "b.png", 1000.0), np.float32(1234) / np.float32(1000))
    (tmp_path / "t.pfm").write_bytes(b"Pf\n30 20\n-1.0\n" + b"\0" * 16)
    with pytest.raises(ValueError, match="PFM"):
        read_label(tmp_path / "t.pfm")
    write_image(tmp_path / "c.png")  # colour PNG is not a label
    with pytest.raises(ValueError, match="single-channel"):
        read_label(tmp_path / "c.png")


def test_read_exr_channels_and_errors(tmp_path: Path) -> None:
    values = ramp()  # asymmetric: a flip or transpose changes the values/shape
    write_exr(tmp_path / "y.exr", {"Y": values})
    out = read_exr(tmp_path / "y.exr")
    assert out.dtype == np.float32 and out.shape == (H, W)
    np.testing.assert_array_equal(out, values)
    np.testing.assert_array_equal(read_label(tmp_path / "y.exr"), values)  # read_label dispatches .exr
    write_exr(tmp_path / "one.exr", {"disparity": values.astype(np.float16)})  # any single channel, HALF pixels
    np.testing.assert_array_equal(read_exr(tmp_path / "one.exr"), values.astype(np.float16).astype(np.float32))
    write_exr(tmp_path / "rgb.exr", {"R": values, "G": values * 2, "B": values * 3})  # grey saved as RGB -> R
    np.testing.assert_array_equal(read_exr(tmp_path / "rgb.exr"), values)
    write_exr(tmp_path / "ya.exr", {"A": values * 2, "Y": values})  # Y preferred over other channels
    np.testing.assert_array_equal(read_exr(tmp_path / "ya.exr"), values)
    write_exr(tmp_path / "za.exr", {"Z": values, "A": values * 2})  # two unrelated channels
    with pytest.raises(ValueError, match=r"za\.exr: OpenEXR file has channels A, Z; expected a single channel or"):
        read_exr(tmp_path / "za.exr")
    corrupt(tmp_path / "bad.exr")
    with pytest.raises(ValueError, match=r"bad\.exr: not a readable OpenEXR file"):
        read_label(tmp_path / "bad.exr")


def test_keys_are_sanitized_and_unique() -> None:
    assert sanitize_key("a b/c.d-e.jpg") == "a_b/c_d-e_jpg"
    keys = unique_keys(["x.jpg", "x_jpg", "y.png"])
    assert len(set(keys)) == 3 and keys[2] == "y_png" and all(KEY.match(k) for k in keys)
    assert unique_keys(["x.jpg", "x_jpg"]) == unique_keys(["x.jpg", "x_jpg"])


# ------------------------------------------------------------------------------------------- images


def test_image_folder(tmp_path: Path) -> None:
    root = tmp_path / "imgs"
    assert fabricate("images", root) == 3
    a = rgb(1)
    samples = by_key(check(ImageFolderSource(root), 3))
    assert set(samples) == {"a_png", "sub_dir/b_v2_JPG", "sub_dir/c_webp"}
    np.testing.assert_array_equal(samples["a_png"].image, a)
    assert samples["a_png"].label is None and samples["a_png"].meta["label_kind"] is None
    assert samples["sub_dir/b_v2_JPG"].meta["files"]["image"] == "sub dir/b.v2.JPG"
    assert [i.key for i in ImageFolderSource(root, split="sub dir").items()] == ["b_v2_JPG", "c_webp"]


def test_image_folder_applies_exif_orientation(tmp_path: Path) -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise for display
    write_image(tmp_path / "r.jpg", exif=exif)
    (sample,) = check(ImageFolderSource(tmp_path), 1)
    assert sample.image.shape == (W, H, 3)


def test_image_list_file(tmp_path: Path) -> None:
    write_image(tmp_path / "data" / "x.png", 1)
    write_image(tmp_path / "data" / "y.png", 2)
    listing = tmp_path / "list.txt"
    listing.write_text("# images\n\ndata/y.png\ndata/x.png\ndata/x.png\n")
    samples = check(ImageFolderSource(listing), 2)
    assert [s.key for s in samples] == ["data/x_png", "data/y_png"]
    assert samples[0].meta["files"]["image"] == "data/x.png"
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


def test_rgbd_folder_depth(tmp_path: Path) -> None:
    assert fabricate("rgbd-folder", tmp_path) == 3
    mm = depth_mm()
    source = RGBDFolderSource(tmp_path)
    assert source.label_kind == "depth"
    samples = by_key(check(source, 3))
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


def test_rgbd_folder_disparity_split_and_errors(tmp_path: Path) -> None:
    root = tmp_path / "train"
    write_image(root / "images" / "a.png")
    write_pfm(root / "disparity" / "a.pfm", ramp())
    source = RGBDFolderSource(tmp_path, split="train")
    assert source.label_kind == "disparity"
    (sample,) = check(source, 1)
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


def test_rgbd_folder_exr_labels(tmp_path: Path) -> None:
    write_image(tmp_path / "images" / "a.png", 1)
    write_exr(tmp_path / "depth" / "a.exr", {"Y": ramp(6.0)})
    source = RGBDFolderSource(tmp_path)
    (sample,) = check(source, 1)
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


# ------------------------------------------------------------------------------------------- BlendedMVS


def test_blendedmvs(tmp_path: Path) -> None:
    pids = list(BLENDEDMVS_SCENES)
    assert fabricate("blendedmvs", tmp_path) == 4
    samples = by_key(check(BlendedMVSSource(tmp_path), 4))
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


# ------------------------------------------------------------------------------------------- DIML


def test_diml_layouts(tmp_path: Path) -> None:
    assert fabricate("diml", tmp_path) == 3
    mm = depth_mm()
    full = tmp_path / DIML_INDOOR  # full indoor release
    samples = by_key(check(DIMLSource(tmp_path), 3))
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


def test_hrwsi(tmp_path: Path) -> None:
    assert fabricate("hrwsi", tmp_path) == 3
    disp8, disp16 = hrwsi_disparity(8), hrwsi_disparity(16)
    samples = by_key(check(HRWSISource(tmp_path), 3))
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


# ------------------------------------------------------------------------------------------- IRS


def test_irs(tmp_path: Path) -> None:
    assert fabricate("irs", tmp_path) == 3
    samples = by_key(check(IRSSource(tmp_path), 3))
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


# ------------------------------------------------------------------------------------------- MegaDepth


def test_megadepth(tmp_path: Path) -> None:
    assert fabricate("megadepth", tmp_path) == 3
    base = tmp_path / MEGADEPTH_BASE
    samples = by_key(check(MegaDepthSource(tmp_path), 3))
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


# ------------------------------------------------------------------------------------------- TartanAir


def test_tartanair(tmp_path: Path) -> None:
    assert fabricate("tartanair", tmp_path) == 4
    samples = by_key(check(TartanAirSource(tmp_path), 4))
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
