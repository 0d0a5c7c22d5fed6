"""File decoders shared by the dataset readers: each turns one file into a numpy array, or raises ``ValueError``
naming the file and what was wrong with it.

- ``read_png16``: a single-channel 8/16-bit PNG as float32, divided by a scale factor.
- ``read_pfm``: a PFM file (``Pf`` grey or ``PF`` colour), rows flipped to top-to-bottom.
- ``read_exr``: one channel of an OpenEXR file (the only one, else ``Y`` or ``R``) as float32.
- ``read_label``: dispatch on ``.png`` / ``.npy`` / ``.pfm`` / ``.exr`` to a 2-D float32 array.
- ``read_mask``: any image as a boolean mask (non-zero = True).
- ``read_unit``: an integer PNG as float32 in [0, 1] (e.g. DIML's confidence maps).
- ``read_h5_depth``: MegaDepth's HDF5 depth.
- ``read_mat_v5``: the numeric arrays of a MATLAB v5 ``.mat`` file (e.g. NYU's ``splits.mat``; scipy is not required).
- ``read_dpt``: MPI Sintel ``.dpt`` depth.
- ``read_eth3d_depth``: ETH3D's raw float32 depth.
- ``read_npz_depth``: a depth array in an ``.npz`` file (DDAD exports).

RGB images are read by ``read_rgb`` of :mod:`anydepth.images`.
"""

from __future__ import annotations

import os
import struct
import zlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import OpenEXR
from PIL import Image

LABEL_EXTENSIONS: tuple[str, ...] = (".png", ".npy", ".pfm", ".exr")
EXR_CHANNELS: tuple[str, ...] = ("Y", "R")  # read_exr's choice, in order, when a file has several channels
_GREY_MODES = ("1", "L", "I", "I;16", "I;16B", "I;16L", "I;16N", "F")


def read_png16(path: str | Path, scale: float = 1.0) -> np.ndarray:
    """Read a single-channel 8- or 16-bit PNG as float32 ``value / scale``.

    A 3/4-channel PNG is accepted when its colour channels are equal (a grey image saved as RGB)."""
    with Image.open(path) as img:
        mode = img.mode
        array = np.asarray(img)
    if mode not in _GREY_MODES:
        if array.ndim != 3 or mode not in ("LA", "RGB", "RGBA") or np.any(array[..., :1] != array[..., 1:3]):
            raise ValueError(f"{path}: expected a single-channel 8/16-bit PNG label, got PIL mode {mode}")
        array = array[..., 0]
    return array.astype(np.float32) / np.float32(scale)


def _pfm_line(handle: Any, path: str | Path) -> bytes:
    """The next non-empty, non-comment header line of a PFM file."""
    while True:
        line = handle.readline()
        if not line:
            raise ValueError(f"{path}: truncated PFM header")
        line = line.strip()
        if line and not line.startswith(b"#"):
            return line


def read_pfm(path: str | Path) -> np.ndarray:
    """Read a PFM file: ``Pf`` gives H x W, ``PF`` H x W x 3, float32, first row = top of the image.

    Header: ``PF``/``Pf``, ``width height``, ``scale`` (negative = little-endian, positive = big-endian);
    then float32 rows stored bottom-to-top, which are flipped here."""
    with open(path, "rb") as handle:
        magic = _pfm_line(handle, path)
        if magic not in (b"PF", b"Pf"):
            raise ValueError(f"{path}: not a PFM file (header {magic[:10]!r}, expected PF or Pf)")
        channels = 3 if magic == b"PF" else 1
        dims = _pfm_line(handle, path).split()
        while len(dims) < 2:  # tolerate "width\nheight"
            dims += _pfm_line(handle, path).split()
        try:
            width, height, scale = int(dims[0]), int(dims[1]), float(_pfm_line(handle, path))
        except ValueError as err:
            raise ValueError(f"{path}: malformed PFM header ({err})") from err
        data = handle.read()
    dtype = np.dtype("<f4" if scale < 0 else ">f4")
    count = width * height * channels
    if width <= 0 or height <= 0 or len(data) < count * 4:
        raise ValueError(f"{path}: PFM data has {len(data)} bytes, {width}x{height}x{channels} floats need {count * 4}")
    array = np.frombuffer(data, dtype=dtype, count=count)
    array = array.reshape((height, width, 3) if channels == 3 else (height, width))
    return np.ascontiguousarray(array[::-1]).astype(np.float32)


def read_exr(path: str | Path) -> np.ndarray:
    """Read one channel of an OpenEXR file as H x W float32 (``HALF``/``FLOAT``/``UINT`` pixels), first row on top.

    A single-channel file gives that channel, whatever its name; otherwise the channel named ``Y`` (luminance /
    grey), else ``R`` (a grey value saved as RGB, e.g. by OpenCV). Any other channel set is a ``ValueError``
    naming the file and its channels; so is a file OpenEXR cannot open. Only the first part of a multi-part
    file is read."""
    try:
        with OpenEXR.File(str(path), separate_channels=True) as exr:
            channels = {name: channel.pixels for name, channel in exr.channels().items()}
    except RuntimeError as err:
        raise ValueError(f"{path}: not a readable OpenEXR file ({err})") from err
    if len(channels) == 1:
        (pixels,) = channels.values()
    else:
        name = next((name for name in EXR_CHANNELS if name in channels), None)
        if name is None:
            raise ValueError(
                f"{path}: OpenEXR file has channels {', '.join(sorted(channels)) or '(none)'}; expected a single "
                f"channel or one named {' or '.join(repr(n) for n in EXR_CHANNELS)}"
            )
        pixels = channels[name]
    return np.asarray(pixels).astype(np.float32)


def _as_2d(array: np.ndarray, path: str | Path) -> np.ndarray:
    """Squeeze a 1 x H x W or H x W x 1 label to H x W float32; anything else is an error."""
    if array.ndim == 3 and 1 in (array.shape[0], array.shape[-1]):
        array = array.reshape(array.shape[1:] if array.shape[0] == 1 else array.shape[:2])
    if array.ndim != 2 or not (np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer)):
        raise ValueError(f"{path}: expected a 2-D numeric label, got {array.dtype} array of shape {array.shape}")
    return array.astype(np.float32)


def read_label(path: str | Path, png_scale: float = 1.0) -> np.ndarray:
    """Read an H x W float32 label from ``.png`` (``value / png_scale``), ``.npy``, ``.pfm`` (single channel)
    or ``.exr`` (see ``read_exr``: the only channel, else ``Y``, else ``R``)."""
    suffix = Path(path).suffix.lower()
    if suffix == ".png":
        return read_png16(path, png_scale)
    if suffix == ".npy":
        return _as_2d(np.load(path, allow_pickle=False), path)
    if suffix == ".pfm":
        return _as_2d(read_pfm(path), path)
    if suffix == ".exr":
        return _as_2d(read_exr(path), path)
    raise ValueError(f"{path}: unsupported label format {suffix!r} (expected one of {', '.join(LABEL_EXTENSIONS)})")


def read_mask(path: str | Path) -> np.ndarray:
    """Read any image as an H x W boolean mask: non-zero (in any channel) = True."""
    with Image.open(path) as img:
        if img.mode not in _GREY_MODES:
            img = img.convert("L")
        return np.asarray(img) != 0


def read_unit(path: str | Path) -> np.ndarray:
    """An integer PNG as float32 in [0, 1] (divided by the dtype's maximum, e.g. 255 for 8-bit)."""
    with Image.open(path) as img:
        array = np.asarray(img)
    if array.ndim == 3:
        array = array[..., 0]
    if np.issubdtype(array.dtype, np.integer):
        return array.astype(np.float32) / np.float32(np.iinfo(array.dtype).max)
    return array.astype(np.float32)


def read_h5_depth(path: str | Path, dataset: str = "depth") -> np.ndarray:
    """Read MegaDepth's ``depth`` HDF5 dataset (H x W, any numeric dtype) as float32, first row on top.

    A file without that dataset, or whose dataset is not 2-D, is a ``ValueError`` naming the file."""
    with h5py.File(path, "r") as handle:
        if dataset not in handle:
            raise ValueError(f"{path}: no HDF5 dataset {dataset!r} (found: {', '.join(sorted(handle)) or 'none'})")
        depth = np.asarray(handle[dataset], dtype=np.float32)
    if depth.ndim != 2:
        raise ValueError(f"{path}: HDF5 dataset {dataset!r} has shape {depth.shape}, expected H x W")
    return depth


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
