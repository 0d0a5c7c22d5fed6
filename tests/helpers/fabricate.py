"""Tiny fabricated datasets, one per registered source kind, in each reader's exact on-disk layout.

``fabricate(kind, root)`` (or ``FABRICATORS[kind](root)``) writes a valid dataset of ``kind`` under ``root``: a
handful of ~20 x 30 px samples plus the files the reader must ignore (unused views, masked copies, placeholders),
and returns how many samples the reader should list. ``SOURCE_KWARGS[kind]`` are the reader options the count
assumes (the demo kinds ignore ``root``; ``demo-train`` renders ``num_scenes`` small scenes). Used by
``test_sources.py`` (each reader's details) and ``test_data_pipeline.py`` (build -> verify -> DataModules for
every kind). A new kind in ``anydepth.sources.SOURCES`` needs a fabricator here, or the pipeline test fails.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import OpenEXR
from PIL import Image

from anydepth.sources.demo import bundled_photos

H, W = 20, 30


# ------------------------------------------------------------------------------------------- writers


def rgb(seed: int = 0, h: int = H, w: int = W) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def write_image(path: Path, seed: int = 0, h: int = H, w: int = W, **save: Any) -> np.ndarray:
    """Write an RGB image (lossless unless the suffix is .jpg) and return its pixels."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = rgb(seed, h, w)
    Image.fromarray(pixels).save(path, **save)
    return pixels


def write_png16(path: Path, values: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.fromarray(values.astype(np.uint16))
    assert image.mode == "I;16"
    image.save(path)


def write_png8(path: Path, values: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(values.astype(np.uint8)).save(path)


def write_npy(path: Path, values: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, values)


def write_pfm(path: Path, values: np.ndarray, little_endian: bool = True) -> None:
    """Write a PFM: rows bottom-to-top, scale sign = endianness."""
    path.parent.mkdir(parents=True, exist_ok=True)
    colour = values.ndim == 3
    header = f"{'PF' if colour else 'Pf'}\n{values.shape[1]} {values.shape[0]}\n{-1.0 if little_endian else 1.0}\n"
    data = np.flipud(values).astype("<f4" if little_endian else ">f4")
    path.write_bytes(header.encode() + data.tobytes())


def write_exr(path: Path, channels: dict[str, np.ndarray]) -> None:
    """Write a scanline OpenEXR file (ZIP) with the given named channels (float32 -> FLOAT, float16 -> HALF)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    header = {"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage}
    OpenEXR.File(header, {name: np.ascontiguousarray(values) for name, values in channels.items()}).write(str(path))


def write_h5(path: Path, values: np.ndarray, dataset: str = "depth") -> None:
    """Write an HDF5 file holding ``values`` as ``dataset`` (MegaDepth's depth layout)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as handle:
        handle.create_dataset(dataset, data=values)


def depth_mm(seed: int = 0) -> np.ndarray:
    """An asymmetric uint16 depth in millimetres with a few zeros (invalid)."""
    values = np.random.default_rng(seed).integers(500, 20000, (H, W)).astype(np.uint16)
    values[0, :3] = 0
    return values


def ramp(offset: float = 1.0) -> np.ndarray:
    """An asymmetric float32 H x W array (row i, column j -> offset + i + j / 100)."""
    return (offset + np.arange(H)[:, None] + np.arange(W)[None, :] / 100).astype(np.float32)


# ------------------------------------------------------------------------------------------- datasets
# Each writes under root (created as needed) and returns the number of samples its reader lists.


def images(root: Path) -> int:
    """``images``: a.png (seed 1), "sub dir/b.v2.JPG" (JPEG, seed 2), "sub dir/c.webp" (lossless, seed 3); a hidden
    file, a hidden folder and a text file that are not inputs."""
    write_image(root / "a.png", 1)
    write_image(root / "sub dir" / "b.v2.JPG", 2, format="JPEG")
    write_image(root / "sub dir" / "c.webp", 3, lossless=True)
    write_image(root / ".hidden.png", 4)
    write_image(root / ".cache" / "d.png", 5)
    (root / "notes.txt").write_text("not an image")
    return 3


def rgbd_folder(root: Path) -> int:
    """``rgbd-folder`` with depth/: a (16-bit mm PNG ``depth_mm()``, valid and sky masks), seq.1/b (.npy ``ramp()``),
    seq.1/c (.pfm ``ramp(5.0)``) and an orphan label without an image. Mask of a: columns 0-1 invalid; sky: rows 0-3."""
    write_image(root / "images" / "a.png", 1)
    write_image(root / "images" / "seq.1" / "b.jpg", 2)
    write_image(root / "images" / "seq.1" / "c.png", 3)
    mm = depth_mm()
    write_png16(root / "depth" / "a.png", mm)
    write_npy(root / "depth" / "seq.1" / "b.npy", ramp())
    write_pfm(root / "depth" / "seq.1" / "c.pfm", ramp(5.0))
    write_png16(root / "depth" / "orphan.png", mm)  # a label without an image is ignored
    valid = np.ones((H, W), np.uint8) * 255
    valid[:, :2] = 0
    write_png8(root / "masks" / "a.png", valid)
    write_png8(root / "sky" / "a.png", (np.arange(H)[:, None] < 4).repeat(W, 1))
    return 3


BLENDEDMVS_SCENES = ("5a0271884e62597cdee0d0eb", "5b08286b2775267d5b0634ba")  # scene i: depth ramp(i)


def blendedmvs(root: Path) -> int:
    """``blendedmvs``: two scenes (the first in training_list.txt, the second in validation_list.txt) of two frames,
    depth ``ramp(scene index)`` with its last pixel 0, plus the ``_masked`` copies the reader skips."""
    for i, pid in enumerate(BLENDEDMVS_SCENES):
        for frame in ("00000000", "00000001"):
            write_image(root / pid / "blended_images" / f"{frame}.jpg", i, format="JPEG")
            write_image(root / pid / "blended_images" / f"{frame}_masked.jpg", i, format="JPEG")
            depth = ramp(float(i))
            depth[-1, -1] = 0.0
            write_pfm(root / pid / "rendered_depth_maps" / f"{frame}.pfm", depth)
    (root / "training_list.txt").write_text(BLENDEDMVS_SCENES[0] + "\n")
    (root / "validation_list.txt").write_text(BLENDEDMVS_SCENES[1] + "\n")
    return 4


DIML_INDOOR = Path("indoor") / "16. Billiard Hall" / "180208" / "B1"  # the full indoor release's frame folder


def diml(root: Path) -> int:
    """``diml``: one frame of each layout (full indoor, "sample" indoor, full outdoor with a confidence map whose
    column 0 is low), all with depth ``depth_mm()``."""
    mm = depth_mm()
    full = root / DIML_INDOOR
    write_image(full / "col" / "in_180208_1_c.png", 1)
    write_png16(full / "up_png" / "in_180208_1_ud.png", mm)
    write_png16(full / "raw_png" / "in_180208_1_rd.png", mm)  # unused
    sample_rel = root / "indoor" / "train" / "HR" / "11. Bedroom"  # "sample" indoor release
    write_image(sample_rel / "color" / "in_1_c.png", 2)
    write_png16(sample_rel / "depth_filled" / "in_1_depth_filled.png", mm)
    out = root / "outdoor" / "170721_C0" / "1"  # full outdoor release
    write_image(out / "left" / "out_1_left.png", 3)
    write_png16(out / "depth" / "out_1_depth.png", mm)
    conf = np.full((H, W), 255, np.uint8)
    conf[:, 0] = 100  # low confidence
    write_png8(out / "conf" / "out_1_conf.png", conf)
    return 3


def hrwsi_disparity(bits: int) -> np.ndarray:
    """The random 8- or 16-bit disparity PNG contents of ``hrwsi``."""
    if bits == 8:
        return np.random.default_rng(0).integers(0, 256, (H, W)).astype(np.uint8)
    return np.random.default_rng(1).integers(0, 65536, (H, W)).astype(np.uint16)


def hrwsi(root: Path) -> int:
    """``hrwsi``: train/100 (8-bit disparity, valid mask with rows 0-1 invalid), train/101 (16-bit, no mask),
    val/200 (8-bit, mask)."""
    disp8, disp16 = hrwsi_disparity(8), hrwsi_disparity(16)
    valid = np.full((H, W), 255, np.uint8)
    valid[:2] = 0
    for split, name, disp in (("train", "100", disp8), ("train", "101", disp16), ("val", "200", disp8)):
        write_image(root / split / "imgs" / f"{name}.jpg", int(name), format="JPEG")
        (write_png16 if disp.dtype == np.uint16 else write_png8)(root / split / "gts" / f"{name}.png", disp)
        if name != "101":
            write_png8(root / split / "valid_masks" / f"{name}.png", valid)
    return 3


IRS_OFFICE = Path("Office") / "Office01"


def irs(root: Path) -> int:
    """``irs``: Home/ArchVizInterior03Data l_1 (converted .npy ``ramp(2.0)``, a right view) and l_2 (converted .pfm
    ``ramp(3.0)``), Office/Office01 l_10 (published single-channel "Y" .exr ``ramp(4.0)``, beside a stale converted
    .npy ``ramp(40.0)`` that the .exr takes precedence over)."""
    home = root / "Home" / "ArchVizInterior03Data"
    office = root / IRS_OFFICE
    write_image(home / "l_1.png", 1)
    write_image(home / "r_1.png", 9)
    write_npy(home / "d_1.npy", ramp(2.0))
    write_image(home / "l_2.png", 2)
    write_pfm(home / "d_2.pfm", ramp(3.0))
    write_image(office / "l_10.png", 3)
    write_exr(office / "d_10.exr", {"Y": ramp(4.0)})
    write_npy(office / "d_10.npy", ramp(40.0))  # the published .exr wins
    return 3


MEGADEPTH_BASE = Path("phoenix") / "S6" / "zl548" / "MegaDepth_v1"


def megadepth(root: Path) -> int:
    """``megadepth`` below ``root / MEGADEPTH_BASE``: 0001/dense0 with converted .npy depth ``ramp(1.0)``; 0001/dense1
    with published .h5 (dataset "depth", float32) ``ramp(2.0)``; 0204/dense0/imgs/x.y.jpg with published .h5 (float64)
    ``ramp(3.0)``."""
    base = root / MEGADEPTH_BASE
    write_image(base / "0001" / "dense0" / "imgs" / "1234_abc_o.jpg", 1, format="JPEG")
    write_npy(base / "0001" / "dense0" / "depths" / "1234_abc_o.npy", ramp(1.0))
    write_image(base / "0001" / "dense1" / "imgs" / "P1010480.JPG", 2, format="JPEG")
    write_h5(base / "0001" / "dense1" / "depths" / "P1010480.h5", ramp(2.0))
    write_image(base / "0204" / "dense0" / "imgs" / "x.y.jpg", 3, format="JPEG")
    write_h5(base / "0204" / "dense0" / "depths" / "x.y.h5", ramp(3.0).astype(np.float64))
    return 3


def tartanair(root: Path) -> int:
    """``tartanair``: abandonedfactory/{Easy,Hard}/P000, two left frames each, depth ``ramp(1.0)`` with rows 0-2 at
    10000 (the sky sphere), plus an unused right view."""
    for difficulty in ("Easy", "Hard"):
        traj = root / "abandonedfactory" / difficulty / "P000"
        for frame in ("000000", "000001"):
            write_image(traj / "image_left" / f"{frame}_left.png", int(frame) + 1)
            depth = ramp(1.0)
            depth[:3] = 10000.0  # sky sphere
            write_npy(traj / "depth_left" / f"{frame}_left_depth.npy", depth)
        write_image(traj / "image_right" / "000000_right.png")  # unused
    return 4


HYPERSIM_FRAMES = (("ai_001_001", "cam_00", "0000"), ("ai_001_001", "cam_00", "0001"), ("ai_003_010", "cam_01", "0007"))
HYPERSIM_FOCAL = 886.81 * W / 1024  # the published focal (px at width 1024), scaled to W


def hypersim_distance(depth: np.ndarray, focal: float) -> np.ndarray:
    """Hypersim's depth_meters for planar ``depth``: the Euclidean distance to the camera centre of each pixel's point,
    for a pinhole camera of focal ``focal`` px with the principal point at the image centre (rays through pixel
    centres)."""
    h, w = depth.shape
    y, x = np.mgrid[0:h, 0:w] + 0.5
    return depth * np.sqrt(focal**2 + (x - w / 2) ** 2 + (y - h / 2) ** 2) / focal


def hypersim(root: Path) -> int:
    """``hypersim``: ``HYPERSIM_FRAMES[i]`` as <scene>/images/scene_<cam>_final_preview/frame.<N>.tonemap.jpg (seed i)
    and scene_<cam>_geometry_hdf5/frame.<N>.depth_meters.hdf5 (float16 ``hypersim_distance`` of planar ``ramp(i + 1)``,
    NaN = no geometry at the top-left pixel); unused color.jpg previews and color.hdf5 files."""
    for i, (scene, camera, frame) in enumerate(HYPERSIM_FRAMES):
        preview = root / scene / "images" / f"scene_{camera}_final_preview"
        geometry = root / scene / "images" / f"scene_{camera}_geometry_hdf5"
        write_image(preview / f"frame.{frame}.tonemap.jpg", i, format="JPEG")
        write_image(preview / f"frame.{frame}.color.jpg", 9, format="JPEG")
        distance = hypersim_distance(ramp(i + 1.0), HYPERSIM_FOCAL)
        distance[0, 0] = np.nan
        write_h5(geometry / f"frame.{frame}.depth_meters.hdf5", distance.astype(np.float16), dataset="dataset")
        write_h5(geometry / f"frame.{frame}.color.hdf5", rgb(i).astype(np.float16), dataset="dataset")
    return len(HYPERSIM_FRAMES)


VKITTI2_FRAMES = (  # (scene, variant, camera, frame); depth vkitti2_depth(i)
    ("Scene01", "clone", "Camera_0", "00000"),
    ("Scene01", "clone", "Camera_1", "00000"),
    ("Scene01", "fog", "Camera_0", "00001"),
    ("Scene20", "15-deg-left", "Camera_0", "00000"),
)


def vkitti2_depth(seed: int) -> np.ndarray:
    """Virtual KITTI 2 depth in centimetres (uint16): ``depth_mm(seed)`` with rows 0-2 at the far plane 65535 (sky)."""
    values = depth_mm(seed)
    values[:3] = 65535
    return values


def vkitti2(root: Path) -> int:
    """``vkitti2``: ``VKITTI2_FRAMES[i]`` as Scene<NN>/<variant>/frames/rgb/Camera_<K>/rgb_<N>.jpg (seed i) and
    frames/depth/Camera_<K>/depth_<N>.png (``vkitti2_depth(i)``); an unused class segmentation and intrinsic.txt."""
    for i, (scene, variant, camera, frame) in enumerate(VKITTI2_FRAMES):
        frames = root / scene / variant / "frames"
        write_image(frames / "rgb" / camera / f"rgb_{frame}.jpg", i, format="JPEG")
        write_png16(frames / "depth" / camera / f"depth_{frame}.png", vkitti2_depth(i))
        write_png8(frames / "classSegmentation" / camera / f"classgt_{frame}.png", rgb(i))
        (root / scene / variant / "intrinsic.txt").write_text("frame cameraID K[0,0] K[1,1] K[0,2] K[1,2]\n")
    return len(VKITTI2_FRAMES)


# ------------------------------------------------------------------------------------------- benchmarks
# The six zero-shot evaluation benchmarks (anydepth.sources.benchmarks), each in its published file formats.

_MAT_TYPES = {"i1": 1, "u1": 2, "i2": 3, "u2": 4, "i4": 5, "u4": 6, "f4": 7, "f8": 9, "i8": 12, "u8": 13}


def _mat_element(kind: int, data: bytes, endian: str) -> bytes:
    """One MAT v5 data element: the small format (data in the tag) for up to 4 bytes, else tag + data padded to 8."""
    if len(data) <= 4:
        return struct.pack(endian + "I", (len(data) << 16) | kind) + data.ljust(4, b"\0")
    return struct.pack(endian + "II", kind, len(data)) + data + b"\0" * (-len(data) % 8)


def write_mat_v5(
    path: Path,
    arrays: dict[str, np.ndarray],
    storage: str = "f8",
    compress: bool = True,
    big_endian: bool = False,
    strings: dict[str, str] | None = None,
) -> None:
    """Write a MATLAB v5 MAT file (what ``save`` writes by default, e.g. NYU's splits.mat): every array as a double
    (mxDOUBLE_CLASS) whose data is stored as ``storage`` (MATLAB stores integral doubles in the smallest integer type)
    in column-major order, each variable zlib-compressed (miCOMPRESSED) when ``compress``; ``strings`` adds char
    variables (which readers of numeric arrays skip)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    e = ">" if big_endian else "<"
    variables = [(name, 6, np.asarray(a, dtype=np.float64), storage) for name, a in arrays.items()]
    variables += [(name, 4, np.array([[ord(c) for c in text]]), "u2") for name, text in (strings or {}).items()]
    body = b""
    for name, mx_class, array, stored in variables:
        parts = (
            _mat_element(6, struct.pack(e + "II", mx_class, 0), e)  # array flags
            + _mat_element(5, np.asarray(array.shape, e + "i4").tobytes(), e)  # dimensions
            + _mat_element(1, name.encode("ascii"), e)  # array name
            + _mat_element(_MAT_TYPES[stored], array.astype(e + stored).tobytes(order="F"), e)  # real part
        )
        matrix = struct.pack(e + "II", 14, len(parts)) + parts  # miMATRIX
        if compress:
            packed = zlib.compress(matrix)
            matrix = struct.pack(e + "II", 15, len(packed)) + packed  # miCOMPRESSED, not padded
        body += matrix
    text = b"MATLAB 5.0 MAT-file, Platform: GLNXA64, Created on: Thu Jan  1 00:00:00 2015"
    header = text.ljust(116, b" ") + b"\0" * 8 + struct.pack(e + "HH", 0x0100, 0x4D49)
    path.write_bytes(header + body)


def write_nyu_mat(path: Path, images: np.ndarray, depths: np.ndarray) -> None:
    """Write ``images`` (N x H x W x 3 uint8) and ``depths`` (N x H x W) like nyu_depth_v2_labeled.mat: MATLAB v7.3 =
    HDF5 behind a 512-byte MATLAB header, MATLAB's H x W x 3 x N array stored with reversed dimensions, so h5py sees
    images (N, 3, W, H) and depths (N, W, H); plus an unused rawDepths."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w", userblock_size=512) as handle:
        for name, data, cls in (
            ("images", images.transpose(0, 3, 2, 1), "uint8"),
            ("depths", depths.astype(np.float32).transpose(0, 2, 1), "single"),
            ("rawDepths", np.zeros(depths.shape, np.float32).transpose(0, 2, 1), "single"),
        ):
            handle.create_dataset(name, data=np.ascontiguousarray(data), chunks=True, compression="gzip")
            handle[name].attrs["MATLAB_class"] = np.bytes_(cls)
    with open(path, "r+b") as handle:
        handle.write(b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Thu Jan  1 00:00:00 2015 HDF5 schema 1.00 .")


NYU_H, NYU_W, NYU_COUNT = 24, 32, 5
NYU_TEST = (2, 4, 5)  # 1-based, like splits.mat testNdxs; the rest (1, 3) is trainNdxs


def nyu_arrays() -> tuple[np.ndarray, np.ndarray]:
    """The fabricated labeled set: N x 24 x 32 x 3 images and depths; image n's depth is 0.5 + n + row/10 + col/100."""
    images = np.stack([rgb(40 + n, NYU_H, NYU_W) for n in range(NYU_COUNT)])
    grid = np.arange(NYU_H)[:, None] / 10 + np.arange(NYU_W)[None, :] / 100
    depths = np.stack([(0.5 + n + grid).astype(np.float32) for n in range(NYU_COUNT)])
    return images, depths


def nyuv2(root: Path) -> int:
    """``nyuv2``: nyu_depth_v2_labeled.mat (v7.3/HDF5, 5 images of 24 x 32) + splits.mat (v5, compressed, indices
    stored as uint8 like MATLAB does): test = ``NYU_TEST``."""
    write_nyu_mat(root / "nyu_depth_v2_labeled.mat", *nyu_arrays())
    train = [i for i in range(1, NYU_COUNT + 1) if i not in NYU_TEST]
    splits = {"trainNdxs": np.array(train)[:, None], "testNdxs": np.array(NYU_TEST)[:, None]}
    write_mat_v5(root / "splits.mat", splits, storage="u1")
    return len(NYU_TEST)


KITTI_DRIVES = {  # drive -> (date, H, W, depth-annotated folder)
    "2011_09_26_drive_0002_sync": ("2011_09_26", 20, 30, "train"),
    "2011_09_30_drive_0016_sync": ("2011_09_30", 22, 32, "val"),
}


def kitti_gt(seed: int, h: int, w: int) -> np.ndarray:
    """A KITTI-style 16-bit ground-truth PNG's contents: depth x 256 (1-80 m), zero (no LiDAR) on a sparse grid."""
    values = np.random.default_rng(seed).integers(256, 80 * 256, (h, w)).astype(np.uint16)
    values[::3, ::4] = 0
    return values


def kitti_frame(root: Path, drive: str, camera: str, frame: int, gt: bool = True) -> np.ndarray:
    """Write raw/<date>/<drive>/<camera>/data/<frame>.png (+ its ground truth); returns the 16-bit ground truth."""
    date, h, w, folder = KITTI_DRIVES[drive]
    seed = frame + (100 if camera == "image_03" else 0)
    write_image(root / "raw" / date / drive / camera / "data" / f"{frame:010d}.png", seed, h, w)
    values = kitti_gt(seed, h, w)
    if gt:
        write_png16(
            root
            / "data_depth_annotated"
            / folder
            / drive
            / "proj_depth"
            / "groundtruth"
            / camera
            / f"{frame:010d}.png",
            values,
        )
    return values


def kitti(root: Path) -> int:
    """``kitti``: eigen_test_files.txt (Monodepth2 format) listing drive 0002 frames 69, 70 (left) and drive 0016 frame
    3 left and right; raw frame 5 of drive 0002 and its ground truth exist but are not listed."""
    a, b = KITTI_DRIVES
    for drive, camera, frame in (
        (a, "image_02", 69),
        (a, "image_02", 70),
        (a, "image_02", 5),
        (b, "image_02", 3),
        (b, "image_03", 3),
    ):
        kitti_frame(root, drive, camera, frame)
    lines = [f"2011_09_26/{a} 69 l", f"2011_09_26/{a} 70 l", f"2011_09_30/{b} 3 l", f"2011_09_30/{b} 3 r"]
    (root / "eigen_test_files.txt").write_text("\n".join(lines) + "\n")
    return 4


NYU_SYNC_FRAMES = (("kitchen_0028b", 45), ("kitchen_0028b", 46), ("living_room_0010", 0))  # frame i: depth_mm(i)


def nyu_sync_frame(root: Path, scene: str, frame: int, seed: int) -> str:
    """Write sync/<scene>/rgb_<frame>.jpg (seed ``seed``) and sync_depth_<frame>.png (``depth_mm(seed)``); returns
    its line of nyudepthv2_train_files_with_gt.txt."""
    write_image(root / "sync" / scene / f"rgb_{frame:05d}.jpg", seed, format="JPEG")
    write_png16(root / "sync" / scene / f"sync_depth_{frame:05d}.png", depth_mm(seed))
    return f"/{scene}/rgb_{frame:05d}.jpg /{scene}/sync_depth_{frame:05d}.png 518.8579"


def nyuv2_train(root: Path) -> int:
    """``nyuv2-train``: ``NYU_SYNC_FRAMES`` in BTS's sync layout, listed in nyudepthv2_train_files_with_gt.txt (the
    first line twice, a comment and a blank line); an unlisted frame 99 of the first scene."""
    lines = [nyu_sync_frame(root, scene, frame, i) for i, (scene, frame) in enumerate(NYU_SYNC_FRAMES)]
    nyu_sync_frame(root, NYU_SYNC_FRAMES[0][0], 99, 9)  # not listed: not read
    text = "\n".join(["# BTS train list", *lines, "", lines[0]]) + "\n"
    (root / "nyudepthv2_train_files_with_gt.txt").write_text(text)
    return len(NYU_SYNC_FRAMES)


def kitti_list_line(drive: str, camera: str, frame: int, gt: bool = True) -> str:
    """One line of BTS's kitti_eigen_{train,test}_files_with_gt.txt (``None``: no ground truth)."""
    date = KITTI_DRIVES[drive][0]
    truth = f"{drive}/proj_depth/groundtruth/{camera}/{frame:010d}.png" if gt else "None"
    return f"{date}/{drive}/{camera}/data/{frame:010d}.png {truth} 721.5377"


KITTI_TRAIN_FRAMES = (  # (drive, camera, frame) listed in the fabricated training list, all with ground truth
    ("2011_09_26_drive_0002_sync", "image_02", 5),
    ("2011_09_26_drive_0002_sync", "image_02", 6),
    ("2011_09_30_drive_0016_sync", "image_03", 3),
)


def kitti_eigen_train(root: Path) -> int:
    """``kitti-eigen-train``: kitti_eigen_train_files_with_gt.txt (BTS format) listing ``KITTI_TRAIN_FRAMES`` and a
    frame whose ground truth is ``None`` (skipped); raw frame 69 of drive 0002 exists but is not listed."""
    for drive, camera, frame in (*KITTI_TRAIN_FRAMES, ("2011_09_26_drive_0002_sync", "image_02", 69)):
        kitti_frame(root, drive, camera, frame)
    lines = [kitti_list_line(*frame) for frame in KITTI_TRAIN_FRAMES]
    lines.append(kitti_list_line("2011_09_26_drive_0002_sync", "image_02", 7, gt=False))
    (root / "kitti_eigen_train_files_with_gt.txt").write_text("\n".join(lines) + "\n")
    return len(KITTI_TRAIN_FRAMES)


def write_dpt(path: Path, depth: np.ndarray) -> None:
    """Write an MPI Sintel .dpt: float32 tag 202021.25, int32 width, int32 height, float32 rows (little-endian)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    header = struct.pack("<fii", 202021.25, depth.shape[1], depth.shape[0])
    path.write_bytes(header + depth.astype("<f4").tobytes())


SINTEL_FRAMES = (("alley_1", "frame_0001"), ("alley_1", "frame_0002"), ("market_2", "frame_0001"))  # depth ramp(i)


def sintel(root: Path) -> int:
    """``sintel``: training/{final,clean}/<scene>/<frame>.png (final seed i, clean seed 50 + i) and
    training/depth/<scene>/<frame>.dpt = ``ramp(i)`` for ``SINTEL_FRAMES[i]``; an unused camdata_left file."""
    for i, (scene, frame) in enumerate(SINTEL_FRAMES):
        write_image(root / "training" / "final" / scene / f"{frame}.png", i)
        write_image(root / "training" / "clean" / scene / f"{frame}.png", 50 + i)
        write_dpt(root / "training" / "depth" / scene / f"{frame}.dpt", ramp(float(i)))
    (root / "training" / "camdata_left" / "alley_1").mkdir(parents=True)
    (root / "training" / "camdata_left" / "alley_1" / "frame_0001.cam").write_bytes(b"\0" * 16)
    return len(SINTEL_FRAMES)


def lidar(offset: float) -> np.ndarray:
    """``ramp(offset)`` with zeros (no LiDAR return) on a sparse grid."""
    depth = ramp(offset)
    depth[1::4, ::3] = 0
    return depth


def ddad(root: Path) -> int:
    """``ddad``: scene 000150 CAMERA_01 frame 100 (.png + .npz "depth" ``lidar(1)``), frame 101 (.jpg + .npy
    ``lidar(2)``), CAMERA_05 frame 100 (.png + .npz "velodyne_depth" ``lidar(3)``); scene 000151 CAMERA_01 frame 200
    (.png + .npz "depth" ``lidar(4)``)."""
    scene = root / "000150"
    write_image(scene / "rgb" / "CAMERA_01" / "15616458296936490.png", 1)
    np.savez_compressed(_mkdir(scene / "depth" / "CAMERA_01") / "15616458296936490.npz", depth=lidar(1.0))
    write_image(scene / "rgb" / "CAMERA_01" / "15616458297936488.jpg", 2, format="JPEG")
    write_npy(scene / "depth" / "CAMERA_01" / "15616458297936488.npy", lidar(2.0))
    write_image(scene / "rgb" / "CAMERA_05" / "15616458296936490.png", 3)
    np.savez_compressed(_mkdir(scene / "depth" / "CAMERA_05") / "15616458296936490.npz", velodyne_depth=lidar(3.0))
    write_image(root / "000151" / "rgb" / "CAMERA_01" / "15621787638931470.png", 4)
    np.savez_compressed(_mkdir(root / "000151" / "depth" / "CAMERA_01") / "15621787638931470.npz", depth=lidar(4.0))
    return 4


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def eth3d_depth(offset: float, h: int = H, w: int = W) -> np.ndarray:
    """ETH3D ground truth: ``offset + row + col / 100`` with ``inf`` (no ground truth) in the top-left 3 x 4 block."""
    depth = (offset + np.arange(h)[:, None] + np.arange(w)[None, :] / 100).astype(np.float32)
    depth[:3, :4] = np.inf
    return depth


ETH3D_IMAGES = {  # scene/name -> (H, W, depth offset, depth folder)
    "courtyard/DSC_0286": (H, W, 1.0, "ground_truth_depth/dslr_images"),
    "courtyard/DSC_0287": (H, W, 2.0, "ground_truth_depth/dslr_images"),
    "pipes/DSC_0634": (24, 18, 3.0, "ground_truth_masked/depth"),  # portrait, the alternative depth folder
}


def eth3d(root: Path) -> int:
    """``eth3d``: ``ETH3D_IMAGES``, JPEGs in <scene>/images/dslr_images/ and raw little-endian float32 depth
    ``eth3d_depth`` named .JPG; an undistorted copy and calibration files that the reader ignores."""
    for i, (key, (h, w, offset, folder)) in enumerate(ETH3D_IMAGES.items()):
        scene, name = key.split("/")
        write_image(root / scene / "images" / "dslr_images" / f"{name}.JPG", i, h, w, format="JPEG")
        write_image(root / scene / "images" / "dslr_images_undistorted" / f"{name}.JPG", 9, h, w, format="JPEG")
        eth3d_depth(offset, h, w).astype("<f4").tofile(_mkdir(root / scene / folder) / f"{name}.JPG")
        (_mkdir(root / scene / "dslr_calibration_jpg") / "cameras.txt").write_text("# unused\n")
    return len(ETH3D_IMAGES)


DIODE_SCANS = {  # key below val/ -> depth offset; indoor and outdoor scans side by side, as in val.tar.gz
    "indoors/scene_00019/scan_00183/00019_00183_indoors_000_010": 1.0,
    "indoors/scene_00019/scan_00183/00019_00183_indoors_000_020": 2.0,
    "indoors/scene_00020/scan_00184/00020_00184_indoors_100_000": 3.0,
    "outdoor/scene_00022/scan_00193/00022_00193_outdoor_000_000": 10.0,
    "outdoor/scene_00023/scan_00200/00023_00200_outdoor_090_010": 20.0,
}


def diode_mask(h: int = H, w: int = W) -> np.ndarray:
    """DIODE validity mask (float32 0/1, H x W): column 0 and the bottom-right pixel invalid."""
    mask = np.ones((h, w), np.float32)
    mask[:, 0] = 0
    mask[-1, -1] = 0
    return mask


def diode(root: Path, split: str = "val") -> dict[str, int]:
    """Write ``DIODE_SCANS`` under root/<split>/: <name>.png, <name>_depth.npy (H x W x 1 ``ramp(offset)``) and
    <name>_depth_mask.npy (``diode_mask()``); returns the image count per scene folder."""
    counts: dict[str, int] = {}
    for i, (key, offset) in enumerate(DIODE_SCANS.items()):
        base = root / split / key
        write_image(base.with_name(base.name + ".png"), i)
        write_npy(base.with_name(base.name + "_depth.npy"), ramp(offset)[:, :, None])
        write_npy(base.with_name(base.name + "_depth_mask.npy"), diode_mask())
        counts[key.split("/")[0]] = counts.get(key.split("/")[0], 0) + 1
    return counts


def diode_indoor(root: Path) -> int:
    """``diode-indoor``: ``diode(root)``; only the indoors/ scans are listed."""
    return diode(root)["indoors"]


def diode_outdoor(root: Path) -> int:
    """``diode-outdoor``: ``diode(root)``; only the outdoor/ scans are listed."""
    return diode(root)["outdoor"]


# The demo kinds read nothing from root: their "datasets" are installed photos or rendered scenes.
SOURCE_KWARGS: dict[str, dict[str, Any]] = {
    "demo-train": {"num_scenes": 3, "size": (48, 64)},
    "demo-seg": {"num_scenes": 3, "size": (48, 64)},
}


def demo_unlabeled(root: Path) -> int:
    return len(bundled_photos())


def demo_eval(root: Path) -> int:
    return 1  # the Middlebury motorcycle (no synthetic scenes by default)


def demo_train(root: Path) -> int:
    return SOURCE_KWARGS["demo-train"]["num_scenes"]


def demo_seg(root: Path) -> int:
    return SOURCE_KWARGS["demo-seg"]["num_scenes"]


def class_ids(seed: int, high: int, h: int = H, w: int = W) -> np.ndarray:
    """Random 8-bit class ids in [0, high)."""
    return np.random.default_rng(seed).integers(0, high, (h, w), dtype=np.uint8)


def ade20k(root: Path) -> int:
    """ADEChallengeData2016: two training images with 8-bit annotations (0 = other .. 150), one validation pair and a
    stray file, both ignored for the default split."""
    base = root / "ADEChallengeData2016"
    for index, split in ((1, "training"), (2, "training"), (1, "validation")):
        name = f"ADE_{split[:5] if split == 'training' else 'val'}_{index:08d}"
        write_image(base / "images" / split / f"{name}.jpg", seed=index)
        write_png8(base / "annotations" / split / f"{name}.png", class_ids(index, 151))
    (base / "images" / "training" / "index.txt").write_text("not an image")
    return 2


def cityscapes(root: Path) -> int:
    """Cityscapes fine: one frame with ``labelTrainIds`` (and the colour and instance files the reader ignores), one
    with only the released ``labelIds``; a val frame ignored for the default split."""
    frames = (
        ("train", "aachen", "aachen_000000_000019", "labelTrainIds"),
        ("train", "bochum", "bochum_000000_000313", "labelIds"),
        ("val", "lindau", "lindau_000000_000019", "labelTrainIds"),
    )
    for seed, (split, city, stem, kind) in enumerate(frames):
        write_image(root / "leftImg8bit" / split / city / f"{stem}_leftImg8bit.png", seed=seed)
        gt = root / "gtFine" / split / city
        ids = class_ids(seed, 19 if kind == "labelTrainIds" else 34)
        write_png8(gt / f"{stem}_gtFine_{kind}.png", ids)
        write_png8(gt / f"{stem}_gtFine_instanceIds.png", ids)
        write_image(gt / f"{stem}_gtFine_color.png", seed=seed)
    return 2


FABRICATORS: dict[str, Callable[[Path], int]] = {
    "images": images,
    "rgbd-folder": rgbd_folder,
    "blendedmvs": blendedmvs,
    "diml": diml,
    "hrwsi": hrwsi,
    "hypersim": hypersim,
    "irs": irs,
    "megadepth": megadepth,
    "tartanair": tartanair,
    "vkitti2": vkitti2,
    "nyuv2": nyuv2,
    "kitti": kitti,
    "nyuv2-train": nyuv2_train,
    "kitti-eigen-train": kitti_eigen_train,
    "sintel": sintel,
    "ddad": ddad,
    "eth3d": eth3d,
    "diode-indoor": diode_indoor,
    "diode-outdoor": diode_outdoor,
    "demo-unlabeled": demo_unlabeled,
    "demo-eval": demo_eval,
    "demo-train": demo_train,
    "ade20k": ade20k,
    "cityscapes": cityscapes,
    "demo-seg": demo_seg,
}


def fabricate(kind: str, root: Path) -> int:
    """Write a tiny valid dataset of source ``kind`` under ``root``; returns its expected sample count."""
    if kind not in FABRICATORS:
        raise KeyError(f"no fabricator for source kind {kind!r}: add one to tests/fabricate.py")
    return FABRICATORS[kind](root)


# ------------------------------------------------------------------------------------------- benchmark shards
# Ready-made evaluation inputs (test_evaluation.py, test_lightning_cli.py): benchmark shard directories as
# `anydepth shards build --source <benchmark>` writes them, and a tiny checkpoint. Lightning, torch and webdataset
# are imported inside, so the reader tests above do not pay for them.

BENCHMARK_SIZES = {"nyuv2": (48, 64), "kitti": (30, 100), "diode-indoor": (42, 56)}
"""Ground-truth size (H, W) of each fabricated benchmark."""


def fabricate_benchmark(root: Path, name: str, count: int, per_shard: int = 2, seed: int = 0) -> list[Any]:
    """``root/name``: shards of ``count`` depth samples (``per_shard`` each) as a benchmark reader would write them,
    plus manifest.json; returns the samples (``anydepth.shards.schema.Sample``)."""
    import webdataset as wds

    from anydepth.evaluation import PROTOCOLS
    from anydepth.shards.manifest import Manifest, ShardRecord
    from anydepth.shards.schema import Sample, encode_sample

    rng = np.random.default_rng(seed)
    h, w = BENCHMARK_SIZES[name]
    out, samples, records = root / name, [], []
    out.mkdir(parents=True)
    protocol = PROTOCOLS[name]
    for i in range(count):
        image = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        low, high = max(protocol.min_depth, 0.05) * 1.1, min(protocol.max_depth or 100.0, 100.0) * 0.9
        depth = np.exp(rng.uniform(np.log(low), np.log(high), (h, w))).astype(np.float32)
        depth[rng.random((h, w)) < 0.2] = 0.0  # sparse / missing ground truth
        mask = None
        if name.startswith("diode"):
            mask = rng.random((h, w)) > 0.1
            depth[~mask] = 0.0
        meta = {"source": name, "benchmark": name, "label_kind": "depth", "original_size": [h, w], "scale": 1.0}
        samples.append(Sample(key=f"{name}_{i:03d}", image=image, label=depth, mask=mask, meta=meta))
    for start in range(0, count, per_shard):
        shard = f"shard-{start // per_shard:06d}.tar"
        with wds.TarWriter(str(out / shard)) as writer:
            for sample in samples[start : start + per_shard]:
                writer.write(encode_sample(sample, image_format="png"))
        chunk = len(samples[start : start + per_shard])
        records.append(ShardRecord(shard, chunk, (out / shard).stat().st_size, "0" * 64))
    Manifest(source=name, builder_version="test", shards=records, label_kind="depth").save(out)
    return samples


def tiny_checkpoint(path: Path, seed: int = 3) -> Any:
    """Write a tiny random ``DepthAnything`` (conftest's ``TINY`` sizes) as an anydepth checkpoint at ``path``;
    returns the model (eval mode). The final ReLU's input is lifted so the random disparity is not all zeros."""
    import torch

    from anydepth.models import DepthAnything

    from helpers import TINY

    torch.manual_seed(seed)
    model = DepthAnything(**TINY).eval()
    with torch.no_grad():
        model.depth_head.scratch.output_conv2[2].bias.fill_(0.5)
    model.save_checkpoint(path, format="anydepth")
    return model


def tiny_metric_checkpoint(path: Path, max_depth: float = 10.0, seed: int = 5) -> Any:
    """Write a tiny random metric ``DepthAnything`` (``TINY`` sizes, ``head="metric"``: depth in metres, sigmoid x
    ``max_depth``) as an anydepth checkpoint at ``path``; returns the model (eval mode)."""
    import torch

    from anydepth.models import DepthAnything

    from helpers import TINY

    torch.manual_seed(seed)
    model = DepthAnything(**TINY, head="metric", max_depth=max_depth).eval()
    model.save_checkpoint(path, format="anydepth")
    return model


# ------------------------------------------------------------------------------------------- coded metric depth
# Images whose red channel encodes metric depth, for exact metric evaluation and inference tests: the coded model
# (helpers.metric_models.CodedDepth) reads the depth back, so its metres are known to the last bit.

CODED_DEPTH = (0.5, 0.03)
"""``(offset, step)``: a coded pixel of red value ``r`` is ``0.5 + 0.03 r`` metres away (0.5-8.15 m)."""
CODED_SIZE = (28, 42)
"""Coded benchmark images (H, W): multiples of 14, so at input size 28 the network sees them unresampled."""


def coded_depth(images: np.ndarray) -> np.ndarray:
    """The depth (float32 metres) that ``... x H x W x 3`` coded images encode in their red channel."""
    offset, step = CODED_DEPTH
    return (np.float32(offset) + np.float32(step) * images[..., 0].astype(np.float32)).astype(np.float32)


def coded_nyuv2(root: Path, count: int = 3) -> np.ndarray:
    """``nyuv2`` files (labeled .mat + splits.mat, every image in the test split) of ``count`` random coded images of
    ``CODED_SIZE`` whose ground truth is their ``coded_depth``, 0 (invalid) on the first row's first 5 pixels; returns
    the ground truth (N x H x W)."""
    images = np.random.default_rng(7).integers(0, 256, (count, *CODED_SIZE, 3), dtype=np.uint8)
    depths = coded_depth(images)
    depths[:, 0, :5] = 0.0
    write_nyu_mat(root / "nyu_depth_v2_labeled.mat", images, depths)
    write_mat_v5(root / "splits.mat", {"testNdxs": np.arange(1, count + 1)[:, None]}, storage="u1")
    return depths
