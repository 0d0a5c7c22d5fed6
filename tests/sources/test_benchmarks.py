"""Benchmark readers (NYUv2, KITTI, Sintel, DDAD, ETH3D, DIODE) and the metric training sets of NYUv2 and KITTI:
tiny files in each published format -> exact values.

Arrays are asymmetric (H != W, values depending on row and column differently), so a transposed or flipped read
fails: NYU's HDF5 arrays are stored transposed (MATLAB's column-major H x W x 3 x N), Sintel's .dpt and ETH3D's raw
float32 files carry no orientation of their own.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
from PIL import Image

from anydepth.shards.schema import Sample, decode_sample, encode_sample, validate_sample
from anydepth.sources import SourceError, get_source
from anydepth.sources.benchmarks import BenchmarkSource
from anydepth.sources.benchmarks.ddad import DDADSource
from anydepth.sources.benchmarks.diode import DIODEIndoorSource, DIODEOutdoorSource, DIODESource
from anydepth.sources.benchmarks.eth3d import ETH3DSource
from anydepth.sources.benchmarks.kitti import KITTIEigenTrainSource, KITTISource
from anydepth.sources.benchmarks.nyuv2 import NYUv2Source, NYUv2TrainSource
from anydepth.sources.benchmarks.sintel import SintelSource

from helpers.fabricate import (
    DIODE_SCANS,
    ETH3D_IMAGES,
    KITTI_DRIVES,
    KITTI_TRAIN_FRAMES,
    NYU_COUNT,
    NYU_H,
    NYU_SYNC_FRAMES,
    NYU_TEST,
    NYU_W,
    SINTEL_FRAMES,
    depth_mm,
    diode,
    diode_mask,
    eth3d_depth,
    fabricate,
    kitti_frame,
    kitti_gt,
    kitti_list_line,
    lidar,
    nyu_arrays,
    nyu_sync_frame,
    ramp,
    rgb,
    write_image,
    write_mat_v5,
    write_npy,
)

KINDS = (
    "nyuv2",
    "kitti",
    "nyuv2-train",
    "kitti-eigen-train",
    "sintel",
    "ddad",
    "eth3d",
    "diode-indoor",
    "diode-outdoor",
)
KEY = re.compile(r"^[A-Za-z0-9_\-/]+$")
DRIVE_A, DRIVE_B = KITTI_DRIVES


def check(source: BenchmarkSource, n: int) -> dict[str, Sample]:
    """items() deterministic, sorted, unique, dot-free; every load() schema-valid with the benchmark meta."""
    items = source.items()
    keys = [item.key for item in items]
    assert len(keys) == n and keys == sorted(keys) and len(set(keys)) == n
    assert all(KEY.match(key) and "." not in key for key in keys)
    assert [item.key for item in source.items()] == keys
    samples = {}
    for item in items:
        sample = source.load(item)
        validate_sample(sample)
        meta = sample.meta
        assert sample.key == item.key and sample.label is not None
        assert sample.label.dtype == np.float32 and sample.label.shape == sample.image.shape[:2]
        assert meta["benchmark"] == meta["source"] == source.name
        assert meta["label_kind"] == "depth" and meta["scale"] == 1.0
        assert meta["original_size"] == list(sample.image.shape[:2])
        files = list(meta["files"].values())
        assert files and all(not Path(f).is_absolute() and (source.root / f).is_file() for f in files)
        samples[item.key] = sample
    return samples


def keys(source: BenchmarkSource) -> list[str]:
    return [item.key for item in source.items()]


# ------------------------------------------------------------------------------------------- registry


@pytest.mark.parametrize("kind", KINDS)
def test_registered_and_readable(kind: str, tmp_path: Path) -> None:
    cls = get_source(kind)
    assert issubclass(cls, BenchmarkSource) and cls.name == kind and cls.label_kind == "depth"
    count = fabricate(kind, tmp_path)
    samples = check(cls(tmp_path), count)
    assert keys(cls(tmp_path)) == keys(cls(tmp_path, None))  # the default split is the benchmark (= None)
    with pytest.raises(SourceError, match="split must be one of"):
        cls(tmp_path, "nope")
    sample = next(iter(samples.values()))
    roundtrip = decode_sample(encode_sample(sample, image_format="png"))
    assert roundtrip.meta == sample.meta and np.array_equal(roundtrip.label, sample.label)


# ------------------------------------------------------------------------------------------- NYUv2


def test_nyuv2_reads_the_transposed_hdf5_exactly(tmp_path: Path) -> None:
    assert fabricate("nyuv2", tmp_path) == len(NYU_TEST)
    with h5py.File(tmp_path / "nyu_depth_v2_labeled.mat", "r") as handle:  # MATLAB's layout, as h5py sees it
        assert handle["images"].shape == (NYU_COUNT, 3, NYU_W, NYU_H)
        assert handle["depths"].shape == (NYU_COUNT, NYU_W, NYU_H)
    images, depths = nyu_arrays()
    samples = check(NYUv2Source(tmp_path), len(NYU_TEST))
    assert list(samples) == [f"{i:04d}" for i in NYU_TEST]
    for index in NYU_TEST:
        sample = samples[f"{index:04d}"]
        assert sample.image.shape == (NYU_H, NYU_W, 3)
        np.testing.assert_array_equal(sample.image, images[index - 1])
        np.testing.assert_array_equal(sample.label, depths[index - 1])
        assert sample.valid_mask().all() and sample.mask is None
        assert sample.meta["index"] == index and sample.meta["hdf5_index"] == index - 1
        assert sample.meta["in_test_split"] is True and sample.meta["depth_unit"] == "m"
        assert sample.meta["files"] == {"mat": "nyu_depth_v2_labeled.mat", "split": "splits.mat"}


def test_nyuv2_splits_and_split_files(tmp_path: Path) -> None:
    fabricate("nyuv2", tmp_path)
    train = [i for i in range(1, NYU_COUNT + 1) if i not in NYU_TEST]
    assert keys(NYUv2Source(tmp_path, "test")) == [f"{i:04d}" for i in NYU_TEST]
    source = NYUv2Source(tmp_path, "train")
    samples = check(source, len(train))
    assert list(samples) == [f"{i:04d}" for i in train]
    assert not any(s.meta["in_test_split"] for s in samples.values())
    np.testing.assert_array_equal(samples["0001"].image, nyu_arrays()[0][0])
    assert keys(NYUv2Source(tmp_path, "all")) == [f"{i:04d}" for i in range(1, NYU_COUNT + 1)]

    (tmp_path / "splits.mat").unlink()
    with pytest.raises(SourceError, match="splits.mat"):
        NYUv2Source(tmp_path).items()
    assert len(check(NYUv2Source(tmp_path, "all"), NYU_COUNT)) == NYU_COUNT  # no split file needed
    assert "in_test_split" not in NYUv2Source(tmp_path, "all").items()[0].extra

    (tmp_path / "test_indices.txt").write_text("# NYU test indices, 1-based\n4\n\n1\n")
    assert keys(NYUv2Source(tmp_path)) == ["0001", "0004"]
    assert keys(NYUv2Source(tmp_path, "train")) == ["0002", "0003", "0005"]

    with h5py.File(tmp_path / "splits73.mat", "w") as handle:  # v7.3: MATLAB's 2 x 1 column is (1, 2) in h5py
        handle["testNdxs"] = np.array([[3.0, 5.0]])
    assert keys(NYUv2Source(tmp_path, split_file="splits73.mat")) == ["0003", "0005"]
    write_mat_v5(tmp_path / "be.mat", {"testNdxs": np.array([[2], [1]])}, compress=False, big_endian=True)
    assert keys(NYUv2Source(tmp_path, split_file="be.mat")) == ["0001", "0002"]


def test_nyuv2_errors(tmp_path: Path) -> None:
    fabricate("nyuv2", tmp_path)
    with pytest.raises(SourceError, match="split must be one of"):
        NYUv2Source(tmp_path, "val")
    cases = (
        ("range.txt", "2\n6\n", r"1\.\.5.*6"),
        ("dup.txt", "2\n2\n", "duplicates"),
        ("bad.txt", "2\nthree\n", "one integer index per line"),
        ("none.txt", "\n", "no indices"),
    )
    for name, text, match in cases:
        (tmp_path / name).write_text(text)
        with pytest.raises(SourceError, match=match):
            NYUv2Source(tmp_path, split_file=name).items()
    write_mat_v5(tmp_path / "other.mat", {"trainNdxs": np.array([[1]])})
    with pytest.raises(SourceError, match="testNdxs.*trainNdxs"):
        NYUv2Source(tmp_path, split_file="other.mat").items()
    with pytest.raises(SourceError, match="missing.txt"):
        NYUv2Source(tmp_path, split_file="missing.txt").items()

    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(SourceError, match="nyu_depth_v2_labeled.mat"):
        NYUv2Source(empty, "all").items()
    (empty / "nyu_depth_v2_labeled.mat").write_bytes(b"MATLAB 5.0 MAT-file" + b" " * 200)
    with pytest.raises(SourceError, match="HDF5"):
        NYUv2Source(empty, "all").items()
    images, depths = nyu_arrays()
    with h5py.File(empty / "nyu_depth_v2_labeled.mat", "w") as handle:  # H x W x 3 (not MATLAB's transposed layout)
        handle["images"], handle["depths"] = images, depths
    with pytest.raises(SourceError, match=r"images \(N, 3, W, H\).*\(5, 24, 32, 3\)"):
        NYUv2Source(empty, "all").items()
    with h5py.File(empty / "nyu_depth_v2_labeled.mat", "w") as handle:
        handle["images"] = images.transpose(0, 3, 2, 1)
    with pytest.raises(SourceError, match="'images' and 'depths'"):
        NYUv2Source(empty, "all").items()


# ------------------------------------------------------------------------------------------- KITTI


def test_kitti_values_split_and_cameras(tmp_path: Path) -> None:
    assert fabricate("kitti", tmp_path) == 4
    samples = check(KITTISource(tmp_path), 4)
    assert list(samples) == [
        f"{DRIVE_A}/image_02/0000000069",
        f"{DRIVE_A}/image_02/0000000070",
        f"{DRIVE_B}/image_02/0000000003",
        f"{DRIVE_B}/image_03/0000000003",
    ]  # raw frame 5 (with ground truth) is not in the split file
    sample = samples[f"{DRIVE_B}/image_03/0000000003"]  # "r" = the right camera, image_03; a 22 x 32 date
    gt = kitti_gt(103, 22, 32)
    np.testing.assert_array_equal(sample.image, rgb(103, 22, 32))
    np.testing.assert_array_equal(sample.label, gt.astype(np.float32) / 256)
    np.testing.assert_array_equal(sample.valid_mask(), gt > 0)
    assert sample.label[0, 0] == 0 and sample.valid_mask().mean() > 0.8
    assert sample.meta["files"] == {
        "image": f"raw/2011_09_30/{DRIVE_B}/image_03/data/0000000003.png",
        "label": f"data_depth_annotated/val/{DRIVE_B}/proj_depth/groundtruth/image_03/0000000003.png",
    }
    meta = sample.meta
    assert (meta["date"], meta["drive"], meta["camera"], meta["frame"]) == ("2011_09_30", DRIVE_B, "image_03", 3)
    assert meta["depth_png_scale"] == 256.0 and meta["split_file"] == "eigen_test_files.txt"
    assert KITTISource(tmp_path, "test").items() == KITTISource(tmp_path).items()


def test_kitti_split_file_formats_and_missing_frames(tmp_path: Path) -> None:
    fabricate("kitti", tmp_path)
    bts = [  # BTS / ZoeDepth eigen_test_files_with_gt.txt lines; "None" = no ground truth: skipped
        f"2011_09_26/{DRIVE_A}/image_02/data/0000000005.png {DRIVE_A}/proj_depth/groundtruth/image_02/0000000005.png "
        "721.5377",
        f"2011_09_26/{DRIVE_A}/image_02/data/0000000123.png None 721.5377",
        f"2011_09_26/{DRIVE_A}/image_02/data/0000000005.png {DRIVE_A}/proj_depth/x.png 721.5377",  # duplicate frame
    ]
    (tmp_path / "bts.txt").write_text("\n".join(bts) + "\n")
    assert keys(KITTISource(tmp_path, split_file="bts.txt")) == [f"{DRIVE_A}/image_02/0000000005"]

    kitti_frame(tmp_path, DRIVE_A, "image_02", 80, gt=False)  # one of the 45 Eigen frames without improved GT
    (tmp_path / "gap.txt").write_text(f"2011_09_26/{DRIVE_A} 69 l\n2011_09_26/{DRIVE_A} 80 l\n")
    with pytest.raises(SourceError, match="skip_missing_gt.*0000000080"):
        KITTISource(tmp_path, split_file="gap.txt").items()
    assert keys(KITTISource(tmp_path, split_file="gap.txt", skip_missing_gt=True)) == [f"{DRIVE_A}/image_02/0000000069"]

    (tmp_path / "noimage.txt").write_text(f"2011_09_26/{DRIVE_A} 99 l\n")
    with pytest.raises(SourceError, match=f"raw/2011_09_26/{DRIVE_A}/image_02/data/0000000099.png"):
        KITTISource(tmp_path, split_file="noimage.txt", skip_missing_gt=True).items()
    (tmp_path / "bad.txt").write_text(f"\n2011_09_26/{DRIVE_A} 69 left\n")
    with pytest.raises(SourceError, match="line 2"):
        KITTISource(tmp_path, split_file="bad.txt").items()
    with pytest.raises(SourceError, match="nope.txt"):
        KITTISource(tmp_path, split_file="nope.txt").items()
    with pytest.raises(SourceError, match="split must be one of"):
        KITTISource(tmp_path, "train")

    annotated = tmp_path / "data_depth_annotated"
    shutil.copytree(annotated / "train" / DRIVE_A, annotated / "val" / DRIVE_A)
    with pytest.raises(SourceError, match=f"duplicates: {DRIVE_A}"):
        KITTISource(tmp_path).items()
    shutil.rmtree(annotated)
    with pytest.raises(SourceError, match="ground truth for every frame"):
        KITTISource(tmp_path).items()
    shutil.rmtree(tmp_path / "raw")
    with pytest.raises(SourceError, match="raw/<date>/<drive>/image_02/data/"):
        KITTISource(tmp_path).items()


def test_kitti_eigen_train_reads_the_official_train_list(tmp_path: Path) -> None:
    assert fabricate("kitti-eigen-train", tmp_path) == len(KITTI_TRAIN_FRAMES)
    samples = check(KITTIEigenTrainSource(tmp_path), len(KITTI_TRAIN_FRAMES))
    # listed frames with ground truth only: the "None" line (frame 7) is skipped, raw frame 69 is not listed
    assert list(samples) == [f"{drive}/{camera}/{frame:010d}" for drive, camera, frame in KITTI_TRAIN_FRAMES]
    sample = samples[f"{DRIVE_B}/image_03/0000000003"]
    np.testing.assert_array_equal(sample.image, rgb(103, 22, 32))
    np.testing.assert_array_equal(sample.label, kitti_gt(103, 22, 32).astype(np.float32) / 256)  # metres
    assert sample.meta["split_file"] == "kitti_eigen_train_files_with_gt.txt" and sample.meta["depth_unit"] == "m"
    assert (
        sample.meta["files"]["label"]
        == f"data_depth_annotated/val/{DRIVE_B}/proj_depth/groundtruth/image_03/0000000003.png"
    )

    (tmp_path / "mine.txt").write_text(kitti_list_line(DRIVE_A, "image_02", 69) + "\n")
    assert keys(KITTIEigenTrainSource(tmp_path, split_file="mine.txt")) == [f"{DRIVE_A}/image_02/0000000069"]
    (tmp_path / "kitti_eigen_train_files_with_gt.txt").unlink()
    with pytest.raises(SourceError, match="kitti_eigen_train_files_with_gt.txt"):
        KITTIEigenTrainSource(tmp_path).items()
    assert KITTISource.SPLIT_FILE == "eigen_test_files.txt"  # the benchmark keeps its own list


def test_nyuv2_train_reads_the_sync_layout_selected_by_the_list(tmp_path: Path) -> None:
    assert fabricate("nyuv2-train", tmp_path) == len(NYU_SYNC_FRAMES)
    samples = check(NYUv2TrainSource(tmp_path), len(NYU_SYNC_FRAMES))
    # the listed frames (the repeated line once, frame 99 unlisted), keyed <scene>/rgb_N
    assert list(samples) == sorted(f"{scene}/rgb_{frame:05d}" for scene, frame in NYU_SYNC_FRAMES)
    for i, (scene, frame) in enumerate(NYU_SYNC_FRAMES):
        sample = samples[f"{scene}/rgb_{frame:05d}"]
        mm = depth_mm(i)
        np.testing.assert_array_equal(sample.label, mm.astype(np.float32) / 1000)  # millimetres -> metres
        np.testing.assert_array_equal(sample.valid_mask(), mm > 0)  # 0 = no Kinect reading
        assert sample.image.shape == (*mm.shape, 3) and sample.meta["scene"] == scene
        assert sample.meta["files"] == {
            "image": f"sync/{scene}/rgb_{frame:05d}.jpg",
            "label": f"sync/{scene}/sync_depth_{frame:05d}.png",
        }
        assert sample.meta["depth_png_scale"] == 1000.0
        assert sample.meta["split_file"] == "nyudepthv2_train_files_with_gt.txt"
    (tmp_path / "lists").mkdir()
    (tmp_path / "lists" / "two.txt").write_text(nyu_sync_frame(tmp_path, "bedroom_0001", 7, 5) + "\n")
    assert keys(NYUv2TrainSource(tmp_path, split_file="lists/two.txt")) == ["bedroom_0001/rgb_00007"]
    outside = tmp_path.parent / f"{tmp_path.name}-list.txt"  # an absolute list outside the dataset folder
    outside.write_text((tmp_path / "lists" / "two.txt").read_text())
    assert keys(NYUv2TrainSource(tmp_path, split_file=outside)) == ["bedroom_0001/rgb_00007"]


def test_nyuv2_train_errors(tmp_path: Path) -> None:
    fabricate("nyuv2-train", tmp_path)
    (tmp_path / "sync" / "kitchen_0028b" / "sync_depth_00046.png").unlink()
    with pytest.raises(SourceError, match="1 missing: sync/kitchen_0028b/sync_depth_00046.png"):
        NYUv2TrainSource(tmp_path).items()
    cases = (("one.txt", "/kitchen_0028b/rgb_00045.jpg\n", "line 1"), ("empty.txt", "# nothing\n", "no frames"))
    for name, text, match in cases:
        (tmp_path / name).write_text(text)
        with pytest.raises(SourceError, match=match):
            NYUv2TrainSource(tmp_path, split_file=name).items()
    with pytest.raises(SourceError, match="missing.txt"):
        NYUv2TrainSource(tmp_path, split_file="missing.txt").items()


# ------------------------------------------------------------------------------------------- Sintel


def test_sintel(tmp_path: Path) -> None:
    assert fabricate("sintel", tmp_path) == len(SINTEL_FRAMES)
    for root in (tmp_path, tmp_path / "training"):  # the folder holding training/, or training/ itself
        samples = check(SintelSource(root), len(SINTEL_FRAMES))
        assert list(samples) == [f"{scene}/{frame}" for scene, frame in SINTEL_FRAMES]
        for i, (scene, frame) in enumerate(SINTEL_FRAMES):
            sample = samples[f"{scene}/{frame}"]
            np.testing.assert_array_equal(sample.image, rgb(i))
            np.testing.assert_array_equal(sample.label, ramp(float(i)))
            assert sample.meta["scene"] == scene and sample.meta["pass"] == "final"
            assert sample.meta["depth_unit"] == "sintel"
    sample = samples["alley_1/frame_0001"]
    assert sample.meta["files"] == {"image": "final/alley_1/frame_0001.png", "label": "depth/alley_1/frame_0001.dpt"}
    clean = check(SintelSource(tmp_path, "training", image_pass="clean"), len(SINTEL_FRAMES))
    np.testing.assert_array_equal(clean["market_2/frame_0001"].image, rgb(52))
    assert clean["market_2/frame_0001"].meta["pass"] == "clean"

    with pytest.raises(SourceError, match="image_pass"):
        SintelSource(tmp_path, image_pass="albedo")
    with pytest.raises(SourceError, match="split must be one of"):
        SintelSource(tmp_path, "test")
    (tmp_path / "training" / "depth" / "alley_1" / "frame_0002.dpt").write_bytes(b"\0" * 64)
    source = SintelSource(tmp_path / "training", image_pass="clean")
    with pytest.raises(ValueError, match="not a Sintel"):
        source.load(next(i for i in source.items() if i.key == "alley_1/frame_0002"))
    (tmp_path / "training" / "depth" / "market_2" / "frame_0001.dpt").unlink()
    with pytest.raises(SourceError, match="final/market_2/frame_0001.png"):
        SintelSource(tmp_path).items()
    with pytest.raises(SourceError, match="final/<scene>/ and depth/<scene>/"):
        SintelSource(tmp_path / "training" / "final").items()


# ------------------------------------------------------------------------------------------- DDAD


def test_ddad(tmp_path: Path) -> None:
    assert fabricate("ddad", tmp_path) == 4
    samples = check(DDADSource(tmp_path), 4)
    expected = {  # key -> (image seed, depth offset)
        "000150/CAMERA_01/15616458296936490": (1, 1.0),  # .npz "depth"
        "000150/CAMERA_01/15616458297936488": (2, 2.0),  # .jpg + .npy
        "000150/CAMERA_05/15616458296936490": (3, 3.0),  # .npz "velodyne_depth"
        "000151/CAMERA_01/15621787638931470": (4, 4.0),
    }
    assert list(samples) == list(expected)
    for key, (seed, offset) in expected.items():
        sample = samples[key]
        np.testing.assert_array_equal(sample.label, lidar(offset))
        np.testing.assert_array_equal(sample.valid_mask(), lidar(offset) > 0)
        assert sample.meta["scene"] == key.split("/")[0] and sample.meta["camera"] == key.split("/")[1]
        if seed != 2:  # lossless PNG
            np.testing.assert_array_equal(sample.image, rgb(seed))
    assert samples["000150/CAMERA_05/15616458296936490"].meta["files"]["label"] == (
        "000150/depth/CAMERA_05/15616458296936490.npz"
    )
    front = keys(DDADSource(tmp_path, cameras=["camera_01"]))  # case-insensitive camera names
    assert front == [k for k in expected if "CAMERA_01" in k]
    with pytest.raises(SourceError, match="cameras CAMERA_09"):
        DDADSource(tmp_path, cameras=["CAMERA_09"]).items()

    fabricate("ddad", tmp_path / "exported" / "val")
    val = check(DDADSource(tmp_path / "exported", "val"), 4)
    assert val[next(iter(val))].meta["files"]["image"].startswith("val/000150/rgb/CAMERA_01/")
    with pytest.raises(SourceError, match="<scene>/rgb/<camera>"):
        DDADSource(tmp_path / "exported", "train").items()

    np.savez(tmp_path / "000151" / "depth" / "CAMERA_01" / "15621787638931470.npz", points=lidar(4.0))
    source = DDADSource(tmp_path)
    with pytest.raises(ValueError, match="no array named 'depth' or 'velodyne_depth'"):
        source.load(source.items()[-1])
    (tmp_path / "000150" / "depth" / "CAMERA_01" / "15616458297936488.npy").unlink()
    with pytest.raises(SourceError, match="000150/rgb/CAMERA_01/15616458297936488.jpg"):
        DDADSource(tmp_path).items()


# ------------------------------------------------------------------------------------------- ETH3D


def test_eth3d(tmp_path: Path) -> None:
    assert fabricate("eth3d", tmp_path) == len(ETH3D_IMAGES)
    samples = check(ETH3DSource(tmp_path), len(ETH3D_IMAGES))
    assert list(samples) == list(ETH3D_IMAGES)
    for key, (h, w, offset, folder) in ETH3D_IMAGES.items():
        sample = samples[key]
        depth = eth3d_depth(offset, h, w)
        finite = np.isfinite(depth)
        assert sample.image.shape == (h, w, 3) and sample.label.shape == (h, w)
        np.testing.assert_array_equal(sample.label[finite], depth[finite])
        assert not sample.label[~finite].any() and (~finite).any()
        np.testing.assert_array_equal(sample.valid_mask(), finite)
        scene, name = key.split("/")
        assert sample.meta["files"] == {
            "image": f"{scene}/images/dslr_images/{name}.JPG",
            "label": f"{scene}/{folder}/{name}.JPG",
        }
        for folder_name, same in (("dslr_images", True), ("dslr_images_undistorted", False)):  # depth is for the former
            with Image.open(tmp_path / scene / "images" / folder_name / f"{name}.JPG") as jpeg:
                assert np.array_equal(sample.image, np.asarray(jpeg.convert("RGB"))) == same

    with pytest.raises(SourceError, match="split must be one of None"):
        ETH3DSource(tmp_path, "training")
    depth_file = tmp_path / "pipes" / "ground_truth_masked" / "depth" / "DSC_0634.JPG"
    depth_file.write_bytes(depth_file.read_bytes()[:-4])
    source = ETH3DSource(tmp_path)
    with pytest.raises(ValueError, match="24x18"):
        source.load(source.items()[-1])
    (tmp_path / "courtyard" / "ground_truth_depth" / "dslr_images" / "DSC_0287.JPG").unlink()
    with pytest.raises(SourceError, match="courtyard/images/dslr_images/DSC_0287.JPG"):
        ETH3DSource(tmp_path).items()
    with pytest.raises(SourceError, match="<scene>/images/dslr_images/"):
        ETH3DSource(tmp_path / "courtyard").items()


# ------------------------------------------------------------------------------------------- DIODE


def test_diode_indoor_and_outdoor_never_mix(tmp_path: Path) -> None:
    counts = diode(tmp_path)
    indoor = check(DIODEIndoorSource(tmp_path), counts["indoors"])
    outdoor = check(DIODEOutdoorSource(tmp_path), counts["outdoor"])
    assert all("_indoors_" in key for key in indoor) and all("_outdoor_" in key for key in outdoor)
    mask = diode_mask() > 0
    for i, (rel, offset) in enumerate(DIODE_SCANS.items()):
        folder, key = rel.split("/", 1)
        sample = (indoor if folder == "indoors" else outdoor)[key]
        np.testing.assert_array_equal(sample.image, rgb(i))
        np.testing.assert_array_equal(sample.mask, mask)
        np.testing.assert_array_equal(sample.label, np.where(mask, ramp(offset), 0))
        scene, scan, _ = key.split("/")
        assert sample.meta["scene_type"] == ("indoor" if folder == "indoors" else "outdoor")
        assert (sample.meta["scene"], sample.meta["scan"], sample.meta["split"]) == (scene, scan, "val")
        assert sample.meta["files"]["mask"] == f"val/{rel}_depth_mask.npy"
    assert len(check(DIODEIndoorSource(tmp_path / "val"), counts["indoors"])) == 3  # root = the val/ folder itself
    assert keys(DIODEIndoorSource(tmp_path, "val")) == list(indoor)


def test_diode_splits_and_errors(tmp_path: Path) -> None:
    diode(tmp_path, "train")
    with pytest.raises(SourceError, match="indoors/scene_NNNNN"):
        DIODEIndoorSource(tmp_path).items()  # the benchmark (val) is absent
    train = check(DIODEOutdoorSource(tmp_path, "train"), 2)
    assert {s.meta["split"] for s in train.values()} == {"train"}
    with pytest.raises(SourceError, match="split must be one of"):
        DIODEIndoorSource(tmp_path, "test")
    with pytest.raises(TypeError, match="diode-indoor"):
        DIODESource(tmp_path)

    shutil.rmtree(tmp_path / "train" / "indoors")
    with pytest.raises(SourceError, match="indoors/scene_NNNNN"):
        DIODEIndoorSource(tmp_path, "train").items()  # outdoor scans are never read as indoor
    scan = tmp_path / "train" / "outdoor" / "scene_00022" / "scan_00193"
    (scan / "00022_00193_outdoor_000_000_depth_mask.npy").unlink()
    with pytest.raises(SourceError, match="00022_00193_outdoor_000_000.png"):
        DIODEOutdoorSource(tmp_path, "train").items()
    write_npy(scan / "00022_00193_outdoor_000_000_depth_mask.npy", np.ones((4, 4), np.float32))
    source = DIODEOutdoorSource(tmp_path, "train")
    with pytest.raises(ValueError, match="does not match depth"):
        source.load(source.items()[0])
    write_image(scan / "extra.png", 7)
    with pytest.raises(SourceError, match="extra.png"):
        DIODEOutdoorSource(tmp_path, "train").items()
