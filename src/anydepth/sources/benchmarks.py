"""Readers for the paper's six zero-shot evaluation benchmarks (Table 2), in their commonly distributed layouts.

Kinds (one class each; DIODE indoor and outdoor are two kinds that are never mixed)::

    nyuv2          NYUv2Source          NYU Depth V2 labeled set, official 654-image test split
    kitti          KITTISource          KITTI Eigen test split, projected-LiDAR ground truth (improved, 652 frames)
    sintel         SintelSource         MPI Sintel training set, final pass
    ddad           DDADSource           DDAD validation set, projected LiDAR (preprocessed export)
    eth3d          ETH3DSource          ETH3D high-res multi-view training set (DSLR)
    diode-indoor   DIODEIndoorSource    DIODE validation set, indoor scans only
    diode-outdoor  DIODEOutdoorSource   DIODE validation set, outdoor scans only

Every sample has ``label_kind`` ``"depth"`` (metres; Sintel in its scene units, see there), ``meta["benchmark"]`` = the
kind (the evaluation protocol's name), ``source``, ``original_size``, ``scale`` 1.0 and ``files`` (paths relative to the
root). Invalid pixels are 0 in the label (or left out by an explicit ``Sample.mask``). The readers never crop or cap
depth: evaluation crops (Eigen, Garg) and depth ranges belong to the evaluation protocol of the same name
(``configs/eval/protocols.yaml``, ``anydepth eval``); each class docstring names the one used there. ``split`` ``None``
always selects the benchmark's evaluation set (what ``anydepth shards build`` builds when no ``--split`` is given).
Nothing here downloads anything.

File formats read here: ``read_mat_v5`` (MATLAB v5 ``.mat``, e.g. NYU's ``splits.mat``; scipy is not required),
``read_dpt`` (Sintel ``.dpt``), ``read_eth3d_depth`` (ETH3D raw float32 depth) and ``read_npz_depth`` (DDAD exports).
Images, PNG and ``.npy`` labels use the shared readers of :mod:`anydepth.sources.folders`.
"""

from __future__ import annotations

import os
import re
import struct
import zlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, ClassVar

import h5py
import numpy as np

from anydepth.images import read_rgb
from anydepth.shards.schema import Sample
from anydepth.sources.base import Source, SourceError, SourceItem
from anydepth.sources.datasets import _is_image, _listdir, _missing_labels_error
from anydepth.sources.folders import (
    _as_2d,
    examples,
    find_files,
    keyed_items,
    layout_error,
    make_sample,
    read_label,
    read_png16,
    strip_ext,
)

Entry = tuple[str, dict[str, str], dict[str, Any]]

# ------------------------------------------------------------------------------------------- file readers

_MAT_NUMERIC = {1: "i1", 2: "u1", 3: "i2", 4: "u2", 5: "i4", 6: "u4", 7: "f4", 9: "f8", 12: "i8", 13: "u8"}  # miTYPE
_MI_MATRIX, _MI_COMPRESSED = 14, 15
_MX_NUMERIC_CLASSES = range(6, 16)  # mxDOUBLE_CLASS .. mxUINT64_CLASS
_MX_COMPLEX = 0x800


def _mat_elements(buffer: bytes, order: str, path: str | Path) -> Iterator[tuple[int, bytes]]:
    """The ``(miTYPE, data)`` data elements of a MAT v5 byte stream (normal and small element formats)."""
    pos = 0
    while pos + 8 <= len(buffer):
        (first,) = struct.unpack_from(order + "I", buffer, pos)
        if first >> 16:  # small data element: 2-byte size, 2-byte type, up to 4 data bytes in the tag
            kind, size = first & 0xFFFF, first >> 16
            if size > 4:
                raise ValueError(f"{path}: malformed MAT small data element at byte {pos}")
            yield kind, buffer[pos + 4 : pos + 4 + size]
            pos += 8
            continue
        (size,) = struct.unpack_from(order + "I", buffer, pos + 4)
        start = pos + 8
        if start + size > len(buffer):
            raise ValueError(f"{path}: truncated MAT file (element at byte {pos} needs {size} bytes)")
        yield first, buffer[start : start + size]
        pos = start + size + (0 if first == _MI_COMPRESSED else -size % 8)  # padded to 8 bytes, except compressed


def _mat_matrix(data: bytes, order: str, path: str | Path) -> tuple[str, np.ndarray | None]:
    """``(name, array)`` of one miMATRIX element; ``array`` None unless it is a real, full numeric array."""
    parts = list(_mat_elements(data, order, path))
    if len(parts) < 3:
        raise ValueError(f"{path}: malformed MAT array (only {len(parts)} sub-elements)")
    (_, flags), (_, dims), (_, name_bytes) = parts[:3]
    (flag_word,) = struct.unpack_from(order + "I", flags)
    name = name_bytes.decode("latin-1")
    if (flag_word & 0xFF) not in _MX_NUMERIC_CLASSES or flag_word & _MX_COMPLEX or len(parts) < 4:
        return name, None  # cell, struct, char, sparse, complex...: not needed here
    shape = tuple(int(n) for n in np.frombuffer(dims, order + "i4"))
    kind, real = parts[3]
    if kind not in _MAT_NUMERIC:
        raise ValueError(f"{path}: MAT array {name!r} stores its data as unsupported type {kind}")
    values = np.frombuffer(real, order + _MAT_NUMERIC[kind])
    if values.size != int(np.prod(shape)):
        raise ValueError(f"{path}: MAT array {name!r} has {values.size} values for shape {shape}")
    return name, values.astype(values.dtype.newbyteorder("=")).reshape(shape, order="F")


def read_mat_v5(path: str | Path) -> dict[str, np.ndarray]:
    """The real numeric arrays of a MATLAB v5 ``.mat`` file (``save -v6`` / ``-v7``, zlib-compressed or not), by
    variable name, in MATLAB's shape (column-major data, so ``a(i, j)`` is ``array[i - 1, j - 1]``), each with the
    dtype its data is stored as (MATLAB may store a double array as integers). Other variables (cells, structs,
    strings, sparse or complex arrays) are left out. A v7.3 file is HDF5: read it with ``h5py``. A file that is not
    a v5 MAT file, or is truncated, is a ``ValueError`` naming it."""
    raw = Path(path).read_bytes()
    if len(raw) < 128 or raw[126:128] not in (b"IM", b"MI"):
        raise ValueError(f"{path}: not a MATLAB v5 MAT file (no 'MI' endian indicator at byte 126)")
    order = "<" if raw[126:128] == b"IM" else ">"
    (version,) = struct.unpack_from(order + "H", raw, 124)
    if version != 0x0100:
        kind = "a v7.3 (HDF5) MAT file: read it with h5py" if version == 0x0200 else f"MAT version {version:#06x}"
        raise ValueError(f"{path}: {kind}, not a v5 MAT file")
    arrays: dict[str, np.ndarray] = {}

    def visit(buffer: bytes) -> None:
        for kind, data in _mat_elements(buffer, order, path):
            if kind == _MI_COMPRESSED:
                try:
                    visit(zlib.decompress(data))
                except zlib.error as err:
                    raise ValueError(f"{path}: corrupt compressed MAT element ({err})") from err
            elif kind == _MI_MATRIX:
                name, array = _mat_matrix(data, order, path)
                if array is not None:
                    arrays[name] = array

    visit(raw[128:])
    return arrays


SINTEL_TAG = 202021.25


def read_dpt(path: str | Path) -> np.ndarray:
    """Read an MPI Sintel ``.dpt`` depth file as H x W float32, first row on top.

    Format (little-endian): float32 tag 202021.25, int32 width, int32 height, then width x height float32 depth
    values row by row. A wrong tag, bad size or short file is a ``ValueError`` naming the file."""
    with open(path, "rb") as handle:
        header = handle.read(12)
        data = handle.read()
    if len(header) < 12:
        raise ValueError(f"{path}: truncated .dpt header ({len(header)} bytes, expected 12)")
    tag, width, height = struct.unpack("<fii", header)
    if tag != np.float32(SINTEL_TAG):
        raise ValueError(f"{path}: not a Sintel .dpt file (tag {tag!r}, expected {SINTEL_TAG})")
    if not (0 < width < 100_000 and 0 < height < 100_000):
        raise ValueError(f"{path}: implausible .dpt size {width} x {height}")
    if len(data) < width * height * 4:
        raise ValueError(
            f"{path}: .dpt data has {len(data)} bytes, {width} x {height} floats need {width * height * 4}"
        )
    return np.frombuffer(data, "<f4", count=width * height).reshape(height, width).astype(np.float32)


def read_eth3d_depth(path: str | Path, size: tuple[int, int]) -> np.ndarray:
    """Read an ETH3D ground-truth depth file (raw little-endian float32, row-major, no header, despite its ``.JPG``
    name) for an image of ``size`` = (H, W) as H x W float32 metres; ``inf`` (no ground truth) becomes 0. A file
    whose byte count is not H x W x 4 is a ``ValueError`` naming it and both sizes."""
    height, width = size
    nbytes = os.path.getsize(path)
    if nbytes != height * width * 4:
        raise ValueError(
            f"{path}: {nbytes} bytes, but the image is {height}x{width} (HxW), so its raw float32 depth needs "
            f"{height * width * 4}"
        )
    depth = np.fromfile(path, dtype="<f4").reshape(height, width).astype(np.float32)
    return np.where(np.isfinite(depth), depth, np.float32(0))


NPZ_DEPTH_KEYS: tuple[str, ...] = ("depth", "velodyne_depth")


def read_npz_depth(path: str | Path, keys: Sequence[str] = NPZ_DEPTH_KEYS) -> np.ndarray:
    """The first of ``keys`` present in an ``.npz`` file as H x W float32 (1 x H x W / H x W x 1 squeezed); no such
    key is a ``ValueError`` naming the file and its keys."""
    with np.load(path, allow_pickle=False) as data:
        key = next((k for k in keys if k in data.files), None)
        if key is None:
            raise ValueError(f"{path}: no array named {' or '.join(map(repr, keys))} (found: {', '.join(data.files)})")
        return _as_2d(np.asarray(data[key]), path)


# ------------------------------------------------------------------------------------------- common


class BenchmarkSource(Source):
    """Base of the benchmark readers: ``label_kind`` ``depth`` and ``meta["benchmark"]`` = the kind."""

    label_kind: ClassVar[str | None] = "depth"
    SPLITS: ClassVar[tuple[str | None, ...]] = (None,)

    def __init__(self, root: str | Path, split: str | None = None) -> None:
        super().__init__(root, split)
        if split not in self.SPLITS:
            choices = ", ".join("None" if s is None else repr(s) for s in self.SPLITS)
            raise SourceError(f"{self.name}: split must be one of {choices}, got {split!r}")

    def _sample(
        self, item: SourceItem, image: np.ndarray, depth: np.ndarray, mask: np.ndarray | None = None, **meta: Any
    ) -> Sample:
        meta.setdefault("depth_unit", "m")
        return make_sample(self, item, image, depth, mask, label_kind="depth", benchmark=self.name, **meta)


def _require_found(source: Source, root: Path, entries: list[Entry], missing: list[str], total: int,
                   expected: str, nothing: str) -> list[SourceItem]:  # fmt: skip
    """``keyed_items(entries)``; a ``SourceError`` if some inputs miss their label or there are none."""
    if missing:
        raise _missing_labels_error(source.name, root, expected, missing, total)
    if not entries:
        raise layout_error(source.name, root, nothing)
    return keyed_items(entries)


# ------------------------------------------------------------------------------------------- NYUv2


def _read_indices(path: Path, variable: str = "testNdxs") -> np.ndarray:
    """1-based image indices from a text file (one per line) or a ``.mat`` file (v5 or v7.3/HDF5) variable."""
    if path.suffix.lower() == ".mat":
        if h5py.is_hdf5(path):
            with h5py.File(path, "r") as handle:
                values = np.asarray(handle[variable]) if variable in handle else None
                names = sorted(handle)
        else:
            arrays = read_mat_v5(path)
            values, names = arrays.get(variable), sorted(arrays)
        if values is None:
            raise ValueError(f"{path}: no variable {variable!r} (found: {', '.join(names) or 'none'})")
    else:
        lines = [line.split("#")[0].strip() for line in path.read_text().splitlines()]
        try:
            values = np.array([float(line) for line in lines if line], dtype=np.float64)
        except ValueError as err:
            raise ValueError(f"{path}: expected one integer index per line ({err})") from err
    values = np.asarray(values, dtype=np.float64).ravel()
    if not np.array_equal(values, np.round(values)):
        raise ValueError(f"{path}: indices must be integers")
    return values.astype(np.int64)


class NYUv2Source(BenchmarkSource):
    """NYU Depth V2 (kind ``nyuv2``): the 1449 densely labeled Kinect frames, 480 x 640; 654 of them are the test set.

    Obtain from the NYU Depth V2 page (Silberman et al., ECCV 2012): the labeled dataset
    ``nyu_depth_v2_labeled.mat`` (2.8 GB) and the official train/test split ``splits.mat``. Layout::

        <root>/nyu_depth_v2_labeled.mat   MATLAB v7.3 (= HDF5) file; read with h5py. Datasets used:
                                            images  uint8   (N, 3, 640, 480) in h5py = MATLAB 480x640x3xN: an image
                                                            is images[i].transpose(2, 1, 0) -> 480 x 640 x 3 RGB
                                            depths  float   (N, 640, 480) in h5py: depths[i].T -> 480 x 640 metres
        <root>/splits.mat                 official split: testNdxs (654) and trainNdxs (795), 1-based indices. The
                                          published file is a MATLAB v5 MAT file (read by ``read_mat_v5``, no scipy
                                          needed); a v7.3/HDF5 ``splits.mat`` works too
        <root>/test_indices.txt           alternative to splits.mat: the test indices, one 1-based index per line

    ``split_file`` (constructor argument, relative to ``root`` or absolute) names the split file explicitly; by
    default ``splits.mat``, else ``test_indices.txt`` is used. ``mat_file`` names the labeled file (default above).
    Label: ``depth`` in metres, the in-painted (hole-filled) ``depths``, not ``rawDepths``; every pixel is normally
    valid; values <= 0 or non-finite are invalid. Protocol ``nyuv2``: the evaluator crops to the Eigen region (rows
    45:471, columns 41:601 of 480 x 640, which excludes the white border of the projected images) and keeps ground
    truth in 1e-3-10 m; the reader does neither.

    ``split``: ``None`` or ``"test"`` = the 654 ``testNdxs`` images (the benchmark); ``"train"`` = every other image
    (the 795 ``trainNdxs``); ``"all"`` = all N images (no split file needed). Keys: the 1-based index, 4 digits
    (``0001``); meta ``index`` (1-based, as in splits.mat) and ``in_test_split`` (when a split file is used).
    """

    name = "nyuv2"
    SPLITS = (None, "test", "train", "all")
    MAT_FILE = "nyu_depth_v2_labeled.mat"
    SPLIT_FILES = ("splits.mat", "test_indices.txt")

    def __init__(self, root: str | Path, split: str | None = None, mat_file: str = MAT_FILE,
                 split_file: str | Path | None = None) -> None:  # fmt: skip
        super().__init__(root, split)
        self.mat_path = self.root / mat_file
        self.split_file = None if split_file is None else self.root / split_file

    def _split_path(self) -> Path:
        if self.split_file is not None:
            if not self.split_file.is_file():
                raise layout_error(self.name, self.root, f"the split file {self.split_file}", "no such file")
            return self.split_file
        path = next((self.root / name for name in self.SPLIT_FILES if (self.root / name).is_file()), None)
        if path is None:
            raise layout_error(
                self.name,
                self.root,
                f"the official split file splits.mat (or test_indices.txt) for split={self.split!r}",
            )
        return path

    def _count(self) -> int:
        """Number of labeled images, after checking the datasets' shapes."""
        if not self.mat_path.is_file():
            raise layout_error(self.name, self.root, f"{self.mat_path.name} (the NYU Depth V2 labeled dataset)")
        try:
            with h5py.File(self.mat_path, "r") as handle:
                shapes = {name: handle[name].shape for name in ("images", "depths") if name in handle}
                found = ", ".join(sorted(handle))
        except OSError as err:
            raise SourceError(f"{self.name}: {self.mat_path} is not a MATLAB v7.3 (HDF5) file ({err})") from err
        images, depths = shapes.get("images"), shapes.get("depths")
        if images is None or depths is None:
            raise layout_error(self.name, self.mat_path, "HDF5 datasets 'images' and 'depths'", f"datasets {found}")
        if len(images) != 4 or images[1] != 3 or len(depths) != 3 or images[0] != depths[0] or images[2:] != depths[1:]:
            raise layout_error(
                self.name,
                self.mat_path,
                "images (N, 3, W, H) and depths (N, W, H) with equal N, W, H (h5py's view of MATLAB's H x W x 3 x N)",
                f"images {images}, depths {depths}",
            )
        return int(images[0])

    def items(self) -> list[SourceItem]:
        count = self._count()
        split_path = None if self.split == "all" else self._split_path()
        test: set[int] = set()
        if split_path is not None:
            try:
                indices = _read_indices(split_path)
            except (OSError, ValueError) as err:
                raise SourceError(f"{self.name}: cannot read the test indices: {err}") from err
            bad = sorted({int(i) for i in indices if not 1 <= i <= count})
            if bad or len(set(indices.tolist())) != len(indices) or not len(indices):
                found = f"out of range: {examples(bad)}" if bad else "duplicates or no indices"
                raise layout_error(self.name, split_path, f"distinct 1-based indices in 1..{count}", found)
            test = set(indices.tolist())
        if self.split in (None, "test"):
            selected = sorted(test)
        elif self.split == "train":
            selected = [i for i in range(1, count + 1) if i not in test]
        else:
            selected = list(range(1, count + 1))
        if not selected:
            raise layout_error(self.name, self.root, f"images in split {self.split!r}", "none")
        paths = {"mat": str(self.mat_path)}
        if split_path is not None:
            paths["split"] = str(split_path)
        entries: list[Entry] = []
        for index in selected:
            extra: dict[str, Any] = {"index": index}
            if split_path is not None:
                extra["in_test_split"] = index in test
            entries.append((f"{index:04d}", paths, extra))
        return keyed_items(entries)

    def load(self, item: SourceItem) -> Sample:
        i = int(item.extra["index"]) - 1
        with h5py.File(item.paths["mat"], "r") as handle:
            image = np.ascontiguousarray(np.asarray(handle["images"][i], dtype=np.uint8).transpose(2, 1, 0))
            depth = np.ascontiguousarray(np.asarray(handle["depths"][i], dtype=np.float32).T)
        return self._sample(item, image, depth, hdf5_index=i)


# ------------------------------------------------------------------------------------------- KITTI

_KITTI_DRIVE_LINE = re.compile(r"^(\d{4}_\d{2}_\d{2})/(\S+)$")  # <date>/<drive>
_KITTI_IMAGE_PATH = re.compile(r"^(?:.*/)?(\d{4}_\d{2}_\d{2})/([^/]+)/(image_0[23])/data/(\d+)\.(?:png|jpg)$")
_KITTI_SIDES = {"l": "image_02", "r": "image_03"}


class KITTISource(BenchmarkSource):
    """KITTI, Eigen test split with improved ground truth (kind ``kitti``), about 1242 x 375 (sizes vary by date).

    Obtain: the KITTI raw data synced+rectified drives (``<date>_drive_<NNNN>_sync.zip``, e.g. via KITTI's
    ``raw_data_downloader.sh``), the depth benchmark's annotated ground truth ``data_depth_annotated.zip`` (KITTI
    depth prediction/completion: projected, accumulated LiDAR; Uhrig et al. 2017) and a split file. Layout::

        <root>/raw/<date>/<drive>/image_02/data/<frame:010d>.png    left colour camera (image_03: right)
        <root>/.../<drive>/proj_depth/groundtruth/image_02/<frame:010d>.png    16-bit PNG, depth = value / 256 m
        <root>/eigen_test_files.txt                                 the split file

    The ``<drive>`` ground-truth folders may sit directly under ``root`` or up to three levels below it (outside
    ``raw/``), e.g. ``<root>/data_depth_annotated/{train,val}/<drive>/...`` as unzipped; a drive found twice is a
    ``SourceError``. Split file lines, either format (blank and ``#`` lines ignored, duplicates read once):

    - ``<date>/<drive> <frame> <l|r>`` (Monodepth2's ``splits/eigen/test_files.txt``, 697 frames, and
      ``splits/eigen_benchmark/test_files.txt``, the 652 of them that have improved ground truth: the standard
      "Eigen benchmark" set), e.g. ``2011_09_26/2011_09_26_drive_0002_sync 69 l``;
    - ``<date>/<drive>/image_02/data/<frame>.png <gt path or None> <focal>`` (BTS / ZoeDepth
      ``eigen_test_files_with_gt.txt``); lines whose ground truth is ``None`` are skipped.

    Every listed frame needs its image; a listed frame without ground truth is a ``SourceError`` (the 697-line
    list has 45 such frames) unless ``skip_missing_gt=True`` (constructor argument), which drops them. The split file
    is ``<root>/eigen_test_files.txt`` unless ``split_file`` (relative to ``root`` or absolute) says otherwise.
    Images may also be ``.jpg`` (Monodepth2's converted copies). Label: ``depth`` in metres; 0 = no LiDAR return
    (invalid; the ground truth is sparse, about 15-30 % of pixels). Protocol ``kitti``: Garg crop and 1e-3-80 m,
    applied by the evaluator. ``split``: ``None`` or ``"test"`` (the split file). Keys:
    ``<drive>/<image_02|image_03>/<frame:010d>``.
    """

    name = "kitti"
    SPLITS = (None, "test")
    SPLIT_FILE = "eigen_test_files.txt"
    DEPTH_SCALE = 256.0

    def __init__(self, root: str | Path, split: str | None = None, split_file: str | Path = SPLIT_FILE,
                 skip_missing_gt: bool = False) -> None:  # fmt: skip
        super().__init__(root, split)
        self.split_file = self.root / split_file
        self.skip_missing_gt = bool(skip_missing_gt)

    def _frames(self) -> list[tuple[str, str, str, int]]:
        """``(date, drive, camera, frame)`` per split-file line, in file order, duplicates dropped."""
        if not self.split_file.is_file():
            raise layout_error(self.name, self.root, f"the split file {self.split_file.name} (Eigen test frames)")
        frames: list[tuple[str, str, str, int]] = []
        for number, line in enumerate(self.split_file.read_text().splitlines(), 1):
            tokens = line.split("#")[0].split()
            if not tokens:
                continue
            drive_match, path_match = _KITTI_DRIVE_LINE.match(tokens[0]), _KITTI_IMAGE_PATH.match(tokens[0])
            if path_match and len(tokens) >= 2:
                if tokens[1] == "None":
                    continue
                date, drive, camera, frame = path_match.groups()
            elif drive_match and len(tokens) == 3 and tokens[1].isdigit() and tokens[2] in _KITTI_SIDES:
                (date, drive), frame, camera = drive_match.groups(), tokens[1], _KITTI_SIDES[tokens[2]]
            else:
                raise layout_error(
                    self.name,
                    self.split_file,
                    "lines '<date>/<drive> <frame> <l|r>' or '<date>/<drive>/image_02/data/<frame>.png <gt> <focal>'",
                    f"line {number}: {line.strip()!r}",
                )
            frames.append((date, drive, camera, int(frame)))
        if not frames:
            raise layout_error(self.name, self.split_file, "at least one frame", "no frames")
        return list(dict.fromkeys(frames))

    def _ground_truth_drives(self) -> dict[str, Path]:
        """Drive name -> its folder holding ``proj_depth/groundtruth`` (up to 3 levels below the root, not raw/)."""
        found: dict[str, list[Path]] = {}
        for current, dirs, _ in os.walk(self.root, followlinks=True):
            here = Path(current)
            depth = len(here.relative_to(self.root).parts)
            if depth and (here / "proj_depth" / "groundtruth").is_dir():
                found.setdefault(here.name, []).append(here)
                dirs[:] = []
                continue
            skip = {"raw"} if depth == 0 else set()
            dirs[:] = [] if depth >= 3 else sorted(d for d in dirs if not d.startswith(".") and d not in skip)
        twice = [f"{drive} ({', '.join(str(p.relative_to(self.root)) for p in places)})"
                 for drive, places in found.items() if len(places) > 1]  # fmt: skip
        if twice:
            raise layout_error(self.name, self.root, "each drive's ground truth once", f"duplicates: {examples(twice)}")
        return {drive: places[0] for drive, places in found.items()}

    def items(self) -> list[SourceItem]:
        frames = self._frames()
        if not (self.root / "raw").is_dir():
            raise layout_error(self.name, self.root, "raw/<date>/<drive>/image_02/data/ (the KITTI raw drives)")
        drives = self._ground_truth_drives()
        entries: list[Entry] = []
        no_image: list[str] = []
        no_gt: list[str] = []
        for date, drive, camera, frame in frames:
            name = f"{frame:010d}"
            data = self.root / "raw" / date / drive / camera / "data"
            image = next((data / f"{name}{ext}" for ext in (".png", ".jpg") if (data / f"{name}{ext}").is_file()), None)
            if image is None:
                no_image.append(f"raw/{date}/{drive}/{camera}/data/{name}.png")
                continue
            gt = drives[drive] / "proj_depth" / "groundtruth" / camera / f"{name}.png" if drive in drives else None
            if gt is None or not gt.is_file():
                no_gt.append(f"{drive}/proj_depth/groundtruth/{camera}/{name}.png")
                continue
            extra = {"date": date, "drive": drive, "camera": camera, "frame": frame}
            entries.append((f"{drive}/{camera}/{name}", {"image": str(image), "label": str(gt)}, extra))
        if no_image:
            raise layout_error(
                self.name,
                self.root,
                f"an image for every frame in {self.split_file.name}",
                f"{len(no_image)} of {len(frames)} missing: {examples(no_image)}",
            )
        if no_gt and not self.skip_missing_gt:
            raise layout_error(
                self.name,
                self.root,
                f"ground truth for every frame in {self.split_file.name} (or skip_missing_gt=True)",
                f"{len(no_gt)} of {len(frames)} missing: {examples(no_gt)}",
            )
        if not entries:
            raise layout_error(self.name, self.root, f"frames with ground truth in {self.split_file.name}", "none")
        return keyed_items(entries)

    def load(self, item: SourceItem) -> Sample:
        image = read_rgb(item.paths["image"])
        depth = read_png16(item.paths["label"], self.DEPTH_SCALE)
        return self._sample(item, image, depth, depth_png_scale=self.DEPTH_SCALE, split_file=self.split_file.name)


# ------------------------------------------------------------------------------------------- Sintel


class SintelSource(BenchmarkSource):
    """MPI Sintel (kind ``sintel``): the training set's 23 scenes, 1064 frames of 436 x 1024, final render pass.

    Obtain: ``MPI-Sintel-complete.zip`` (images) and ``MPI-Sintel-depth-training-20150305.zip`` (depth and camera
    data; Butler et al. 2012), unzipped into the same folder. Layout (``root`` is that folder, holding
    ``training/``, or the ``training/`` folder itself)::

        training/final/<scene>/frame_0001.png     RGB, final pass (``image_pass="clean"`` reads training/clean/)
        training/depth/<scene>/frame_0001.dpt     depth, Sintel .dpt (``read_dpt``)

    Label: ``depth`` along the optical axis in the renderer's scene units (treated as metres: ``depth_unit``
    ``"sintel"``); dense, every pixel has a value, so nothing is invalid except values <= 0 or non-finite. Far
    background/sky has very large depths: protocol ``sintel`` caps the ground truth at 72 (the usual MiDaS-style
    convention; farther pixels are left out of the metrics); the reader applies no cap, the evaluator does. ``split``:
    ``None`` or ``"training"`` (the only split with depth). Every image needs its ``.dpt`` (else ``SourceError``). Keys:
    ``<scene>/frame_NNNN``.
    """

    name = "sintel"
    SPLITS = (None, "training")
    PASSES = ("final", "clean")

    def __init__(self, root: str | Path, split: str | None = None, image_pass: str = "final") -> None:
        super().__init__(root, split)
        if image_pass not in self.PASSES:
            raise SourceError(f"{self.name}: image_pass must be one of {self.PASSES}, got {image_pass!r}")
        self.image_pass = image_pass
        self.base = self.root / "training" if (self.root / "training").is_dir() else self.root

    def items(self) -> list[SourceItem]:
        images, depths = self.base / self.image_pass, self.base / "depth"
        if not images.is_dir() or not depths.is_dir():
            raise layout_error(self.name, self.base, f"{self.image_pass}/<scene>/ and depth/<scene>/ (Sintel training)")
        entries: list[Entry] = []
        missing: list[str] = []
        total = 0
        for scene in _listdir(images):
            for name in _listdir(images / scene):
                if not name.lower().endswith(".png"):
                    continue
                total += 1
                frame = strip_ext(name)
                depth = depths / scene / f"{frame}.dpt"
                if not depth.is_file():
                    missing.append(f"{self.image_pass}/{scene}/{name}")
                    continue
                paths = {"image": str(images / scene / name), "label": str(depth)}
                entries.append((f"{scene}/{frame}", paths, {"scene": scene, "pass": self.image_pass}))
        return _require_found(self, self.base, entries, missing, total, "depth/<scene>/<frame>.dpt",
                              f"{self.image_pass}/<scene>/frame_NNNN.png images")  # fmt: skip

    def load(self, item: SourceItem) -> Sample:
        image = read_rgb(item.paths["image"])
        depth = read_dpt(item.paths["label"])
        return self._sample(item, image, depth, depth_unit="sintel")


# ------------------------------------------------------------------------------------------- DDAD


class DDADSource(BenchmarkSource):
    """DDAD (kind ``ddad``): Dense Depth for Autonomous Driving validation set (1936 x 1216 frames, projected LiDAR).

    Obtain: ``DDAD.tar`` from TRI (github TRI-ML/DDAD), in TRI's ``dgp`` format (``ddad_train_val/ddad.json``,
    protobuf scenes). Reading that needs the ``dgp`` toolkit, so this reader takes the commonly used export instead:
    for each validation sample, ``dgp``'s ``SynchronizedSceneDataset(ddad.json, split="val",
    datum_names=(<cameras>, "lidar"), generate_depth_from_datum="lidar")`` gives every camera datum an ``rgb``
    image and a ``depth`` map (the LiDAR sweep projected into that camera, metres, 0 = no return), saved as::

        <root>/<scene>/rgb/<camera>/<frame>.png        RGB (or .jpg)
        <root>/<scene>/depth/<camera>/<frame>.npz      key "depth" (or "velodyne_depth", PackNet-SfM's name);
                                                       or <frame>.npy, float H x W metres

    ``<camera>`` is e.g. ``CAMERA_01`` (front; the zero-shot DDAD benchmark uses the 3950 front-camera validation
    frames: pass ``cameras=("CAMERA_01",)`` when the export holds more cameras; ``None`` = every camera folder). Label:
    ``depth`` in metres; 0 (or <= 0, non-finite) = invalid (sparse LiDAR). Protocol ``ddad``: 1e-3-80 m (as ZoeDepth),
    uncropped, applied by the evaluator. ``split``: ``None`` = ``root`` itself; ``"val"`` / ``"train"`` read
    ``<root>/<split>/``. When both ``.npz`` and ``.npy`` exist the ``.npz`` is used. Every image needs its depth (else
    ``SourceError``). Keys: ``<scene>/<camera>/<frame>``.
    """

    name = "ddad"
    SPLITS = (None, "val", "train")

    def __init__(self, root: str | Path, split: str | None = None, cameras: Sequence[str] | None = None) -> None:
        super().__init__(root, split)
        self.base = self.root / split if split else self.root
        self.cameras = None if cameras is None else tuple(str(c) for c in cameras)

    def items(self) -> list[SourceItem]:
        scenes = [scene for scene in _listdir(self.base) if (self.base / scene / "rgb").is_dir()]
        if not scenes:
            raise layout_error(self.name, self.base, "<scene>/rgb/<camera>/<frame>.png + <scene>/depth/<camera>/")
        wanted = None if self.cameras is None else {c.lower() for c in self.cameras}
        entries: list[Entry] = []
        missing: list[str] = []
        total = 0
        for scene in scenes:
            for camera in _listdir(self.base / scene / "rgb"):
                if wanted is not None and camera.lower() not in wanted:
                    continue
                depth_dir = self.base / scene / "depth" / camera
                for name in _listdir(self.base / scene / "rgb" / camera):
                    if not _is_image(name):
                        continue
                    total += 1
                    frame = strip_ext(name)
                    candidates = [depth_dir / f"{frame}{ext}" for ext in (".npz", ".npy")]
                    depth = next((path for path in candidates if path.is_file()), None)
                    if depth is None:
                        missing.append(f"{scene}/rgb/{camera}/{name}")
                        continue
                    paths = {"image": str(self.base / scene / "rgb" / camera / name), "label": str(depth)}
                    entries.append((f"{scene}/{camera}/{frame}", paths, {"scene": scene, "camera": camera}))
        nothing = f"images of cameras {', '.join(self.cameras)}" if self.cameras else "images in <scene>/rgb/<camera>/"
        return _require_found(self, self.base, entries, missing, total, "<scene>/depth/<camera>/<frame>.npz or .npy",
                              nothing)  # fmt: skip

    def load(self, item: SourceItem) -> Sample:
        image = read_rgb(item.paths["image"])
        path = item.paths["label"]
        depth = read_npz_depth(path) if path.endswith(".npz") else read_label(path)
        return self._sample(item, image, depth)


# ------------------------------------------------------------------------------------------- ETH3D

_ETH3D_DEPTH_DIRS = (Path("ground_truth_depth") / "dslr_images", Path("ground_truth_masked") / "depth")


class ETH3DSource(BenchmarkSource):
    """ETH3D high-res multi-view, training set (kind ``eth3d``): 13 scenes, 454 DSLR images of 6048 x 4032 (W x H).

    Obtain from eth3d.net (Schöps et al., CVPR 2017), high-res multi-view training data: the distorted JPEG images
    ``multi_view_training_dslr_jpg.7z`` and the ground-truth depth maps ``multi_view_training_dslr_depth.7z`` (or
    the per-scene ``<scene>_dslr_jpg.7z`` / ``<scene>_dslr_depth.7z``), extracted into the same folder. Layout::

        <root>/<scene>/images/dslr_images/DSC_NNNN.JPG              RGB (the distorted images: the depth maps are
                                                                    rendered for them, not for the undistorted set)
        <root>/<scene>/ground_truth_depth/dslr_images/DSC_NNNN.JPG  depth, raw float32 (see ``read_eth3d_depth``)

    ``<scene>/ground_truth_masked/depth/DSC_NNNN.JPG`` is accepted as the depth folder too (used if the official one
    is absent). Despite the ``.JPG`` name a depth file is little-endian float32, row-major, exactly W x H values with
    no header; its size is the image's (read from the decoded JPEG, whose header gives it). Label: ``depth`` in
    metres (rendered from the laser scan); ``inf`` = no ground truth, stored as 0 (invalid), as are values <= 0.
    Protocol ``eth3d``: no crop and no upper cap (as Marigold). ``split``: ``None`` only (the training
    set is the benchmark). Every image needs its depth file (else ``SourceError``). Keys: ``<scene>/DSC_NNNN``.
    """

    name = "eth3d"

    def _depth_dir(self, scene: str) -> Path | None:
        return next((self.root / scene / d for d in _ETH3D_DEPTH_DIRS if (self.root / scene / d).is_dir()), None)

    def items(self) -> list[SourceItem]:
        scenes = [scene for scene in _listdir(self.root) if (self.root / scene / "images" / "dslr_images").is_dir()]
        if not scenes:
            raise layout_error(
                self.name, self.root, "<scene>/images/dslr_images/ + <scene>/ground_truth_depth/dslr_images/"
            )
        entries: list[Entry] = []
        missing: list[str] = []
        total = 0
        for scene in scenes:
            depth_dir = self._depth_dir(scene) or self.root / scene / _ETH3D_DEPTH_DIRS[0]
            names = set(_listdir(depth_dir))
            for name in _listdir(self.root / scene / "images" / "dslr_images"):
                if not _is_image(name):
                    continue
                total += 1
                if name not in names:
                    missing.append(f"{scene}/images/dslr_images/{name}")
                    continue
                paths = {
                    "image": str(self.root / scene / "images" / "dslr_images" / name),
                    "label": str(depth_dir / name),
                }
                entries.append((f"{scene}/{strip_ext(name)}", paths, {"scene": scene}))
        expected = "<scene>/ground_truth_depth/dslr_images/<name> for every image"
        return _require_found(self, self.root, entries, missing, total, expected, "DSLR images")

    def load(self, item: SourceItem) -> Sample:
        image = read_rgb(item.paths["image"])
        depth = read_eth3d_depth(item.paths["label"], image.shape[:2])
        return self._sample(item, image, depth)


# ------------------------------------------------------------------------------------------- DIODE


class DIODESource(BenchmarkSource):
    """DIODE (Vasiljevic et al. 2019), validation set, 768 x 1024 FARO laser scans; one scene type per kind.

    Obtain from diode-dataset.org: ``val.tar.gz`` (depth + masks; ``train.tar.gz`` has the same layout). Layout
    (``root`` holds ``val/``, or is the ``val/`` folder itself)::

        <root>/val/<indoors|outdoor>/scene_NNNNN/scan_NNNNN/<name>.png              RGB
        <root>/val/<indoors|outdoor>/scene_NNNNN/scan_NNNNN/<name>_depth.npy        float32 H x W x 1, metres
        <root>/val/<indoors|outdoor>/scene_NNNNN/scan_NNNNN/<name>_depth_mask.npy   H x W validity, non-zero = valid

    Indoor (``diode-indoor``, ``DIODEIndoorSource``, folder ``indoors/``, 325 images) and outdoor (``diode-outdoor``,
    ``DIODEOutdoorSource``, folder ``outdoor/``, 446 images) are separate kinds and never mixed: each reads only its own
    folder. Label: ``depth`` in metres; the mask (no laser return, out of range) is returned as ``Sample.mask``, and
    depth is set to 0 wherever it is invalid (mask zero, depth <= 0 or non-finite). Protocols ``diode-indoor`` /
    ``diode-outdoor``: the mask and 0.6-350 m (the scanner's range), applied by the evaluator. ``split``: ``None`` or
    ``"val"`` (the benchmark); ``"train"``. Every image needs both ``.npy`` files (else ``SourceError``). Keys:
    ``scene_NNNNN/scan_NNNNN/<name>``.
    """

    name = "diode"
    SPLITS = (None, "val", "train")
    SCENE_DIR: ClassVar[str] = ""  # "indoors" or "outdoor", set by the subclasses
    SCENE_TYPE: ClassVar[str] = ""

    def __init__(self, root: str | Path, split: str | None = None) -> None:
        if not self.SCENE_DIR:
            raise TypeError("use DIODEIndoorSource (diode-indoor) or DIODEOutdoorSource (diode-outdoor)")
        super().__init__(root, split)
        folder = split or "val"
        nested = self.root / folder
        self.base = (nested if nested.is_dir() or self.root.name != folder else self.root) / self.SCENE_DIR

    def items(self) -> list[SourceItem]:
        if not self.base.is_dir():
            parent = self.base.parent
            raise layout_error(self.name, parent, f"{self.SCENE_DIR}/scene_NNNNN/scan_NNNNN/ (DIODE {self.SCENE_TYPE})")
        entries: list[Entry] = []
        missing: list[str] = []
        total = 0
        for rel in find_files(self.base, (".png",)):
            total += 1
            stem = strip_ext(rel)
            depth, mask = self.base / f"{stem}_depth.npy", self.base / f"{stem}_depth_mask.npy"
            if not depth.is_file() or not mask.is_file():
                missing.append(rel)
                continue
            parts = Path(rel).parts
            extra = {"scene_type": self.SCENE_TYPE, "scene": parts[0] if len(parts) > 2 else "",
                     "scan": parts[1] if len(parts) > 2 else ""}  # fmt: skip
            entries.append((stem, {"image": str(self.base / rel), "label": str(depth), "mask": str(mask)}, extra))
        return _require_found(self, self.base, entries, missing, total, "<name>_depth.npy and <name>_depth_mask.npy",
                              "scene_NNNNN/scan_NNNNN/<name>.png images")  # fmt: skip

    def load(self, item: SourceItem) -> Sample:
        image = read_rgb(item.paths["image"])
        depth = read_label(item.paths["label"])
        valid = read_label(item.paths["mask"]) > 0
        if valid.shape != depth.shape:
            raise ValueError(f"{item.paths['mask']}: mask {valid.shape} does not match depth {depth.shape}")
        valid &= np.isfinite(depth) & (depth > 0)
        depth = np.where(valid, depth, np.float32(0)).astype(np.float32)
        return self._sample(item, image, depth, valid, split=self.split or "val")


class DIODEIndoorSource(DIODESource):
    __doc__ = DIODESource.__doc__
    name = "diode-indoor"
    SCENE_DIR = "indoors"
    SCENE_TYPE = "indoor"


class DIODEOutdoorSource(DIODESource):
    __doc__ = DIODESource.__doc__
    name = "diode-outdoor"
    SCENE_DIR = "outdoor"
    SCENE_TYPE = "outdoor"


__all__ = [
    "BenchmarkSource",
    "DDADSource",
    "DIODEIndoorSource",
    "DIODEOutdoorSource",
    "DIODESource",
    "ETH3DSource",
    "KITTISource",
    "NYUv2Source",
    "SintelSource",
    "read_dpt",
    "read_eth3d_depth",
    "read_mat_v5",
    "read_npz_depth",
]
