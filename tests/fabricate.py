"""Tiny fabricated datasets, one per registered source kind, in each reader's exact on-disk layout.

``fabricate(kind, root)`` (or ``FABRICATORS[kind](root)``) writes a valid dataset of ``kind`` under ``root``: a
handful of ~20 x 30 px samples plus the files the reader must ignore (unused views, masked copies, placeholders),
and returns how many samples the reader should list. ``SOURCE_KWARGS[kind]`` are the reader options the count
assumes (the demo kinds ignore ``root``; ``demo-train`` renders ``num_scenes`` small scenes). Used by
``test_sources.py`` (each reader's details) and ``test_data_pipeline.py`` (build -> verify -> DataModules for
every kind). A new kind in ``anydepth.data.sources.SOURCES`` needs a fabricator here, or the pipeline test fails.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import OpenEXR
from PIL import Image

from anydepth.data.sources.demo import bundled_photos

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


# The demo kinds read nothing from root: their "datasets" are installed photos or rendered scenes.
SOURCE_KWARGS: dict[str, dict[str, Any]] = {"demo-train": {"num_scenes": 3, "size": (48, 64)}}


def demo_unlabeled(root: Path) -> int:
    return len(bundled_photos())


def demo_eval(root: Path) -> int:
    return 1  # the Middlebury motorcycle (no synthetic scenes by default)


def demo_train(root: Path) -> int:
    return SOURCE_KWARGS["demo-train"]["num_scenes"]


FABRICATORS: dict[str, Callable[[Path], int]] = {
    "images": images,
    "rgbd-folder": rgbd_folder,
    "blendedmvs": blendedmvs,
    "diml": diml,
    "hrwsi": hrwsi,
    "irs": irs,
    "megadepth": megadepth,
    "tartanair": tartanair,
    "demo-unlabeled": demo_unlabeled,
    "demo-eval": demo_eval,
    "demo-train": demo_train,
}


def fabricate(kind: str, root: Path) -> int:
    """Write a tiny valid dataset of source ``kind`` under ``root``; returns its expected sample count."""
    if kind not in FABRICATORS:
        raise KeyError(f"no fabricator for source kind {kind!r}: add one to tests/fabricate.py")
    return FABRICATORS[kind](root)
