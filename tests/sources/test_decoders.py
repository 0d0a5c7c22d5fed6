"""File decoders: tiny files in each format -> exact values (asymmetric arrays, so a flip or transpose fails)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from anydepth.sources.decoders import (
    read_dpt,
    read_eth3d_depth,
    read_exr,
    read_label,
    read_mat_v5,
    read_npz_depth,
    read_pfm,
)

from helpers.fabricate import (
    H,
    W,
    eth3d_depth,
    nyu_arrays,
    ramp,
    write_dpt,
    write_exr,
    write_image,
    write_mat_v5,
    write_npy,
    write_nyu_mat,
    write_pfm,
    write_png16,
)


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
    (tmp_path / "bad.exr").write_bytes(b"not an image at all")
    with pytest.raises(ValueError, match=r"bad\.exr: not a readable OpenEXR file"):
        read_label(tmp_path / "bad.exr")


@pytest.mark.parametrize("compress", [True, False])
@pytest.mark.parametrize("big_endian", [False, True])
@pytest.mark.parametrize("storage", ["u1", "i4", "f8"])
def test_read_mat_v5(tmp_path: Path, compress: bool, big_endian: bool, storage: str) -> None:
    grid = np.array([[1, 2, 3], [4, 5, 6]])  # column-major on disk: 1 4 2 5 3 6
    column = np.array([[7], [9], [11], [250]])
    path = tmp_path / "splits.mat"
    arrays = {"grid": grid, "testNdxs": column, "x": np.array([[5]])}  # "x": small-format name and data elements
    write_mat_v5(path, arrays, storage, compress, big_endian, strings={"note": "not numeric"})
    read = read_mat_v5(path)
    assert set(read) == {"grid", "testNdxs", "x"}  # the char variable is skipped
    for name, expected in arrays.items():
        assert read[name].shape == expected.shape
        np.testing.assert_array_equal(read[name], expected)
        assert read[name].dtype == np.dtype(storage).newbyteorder("=")


def test_read_mat_v5_errors(tmp_path: Path) -> None:
    path = tmp_path / "a.mat"
    path.write_bytes(b"not a mat file")
    with pytest.raises(ValueError, match="not a MATLAB v5"):
        read_mat_v5(path)
    write_mat_v5(path, {"testNdxs": np.arange(40)[:, None]}, compress=False)
    path.write_bytes(path.read_bytes()[:-20])
    with pytest.raises(ValueError, match="truncated"):
        read_mat_v5(path)
    write_nyu_mat(tmp_path / "v73.mat", *nyu_arrays())  # HDF5 behind a MATLAB 7.3 header
    data = bytearray((tmp_path / "v73.mat").read_bytes())
    data[124:128] = b"\x00\x02IM"  # what MATLAB writes at the end of a v7.3 header
    (tmp_path / "v73.mat").write_bytes(bytes(data))
    with pytest.raises(ValueError, match="v7.3"):
        read_mat_v5(tmp_path / "v73.mat")


def test_read_dpt(tmp_path: Path) -> None:
    depth = ramp(3.0)[:, :-3]  # 20 x 27
    write_dpt(tmp_path / "a.dpt", depth)
    read = read_dpt(tmp_path / "a.dpt")
    assert read.shape == (20, 27) and read.dtype == np.float32
    np.testing.assert_array_equal(read, depth)
    assert (tmp_path / "a.dpt").read_bytes()[:4] == b"PIEH"  # 202021.25 as little-endian float32 (as in .flo)
    (tmp_path / "b.dpt").write_bytes(b"PIEX" + (tmp_path / "a.dpt").read_bytes()[4:])
    with pytest.raises(ValueError, match="not a Sintel"):
        read_dpt(tmp_path / "b.dpt")
    (tmp_path / "c.dpt").write_bytes((tmp_path / "a.dpt").read_bytes()[:-4])
    with pytest.raises(ValueError, match="need"):
        read_dpt(tmp_path / "c.dpt")


def test_read_eth3d_depth_and_npz(tmp_path: Path) -> None:
    depth = eth3d_depth(2.0, 6, 4)
    depth.astype("<f4").tofile(tmp_path / "DSC_0001.JPG")
    read = read_eth3d_depth(tmp_path / "DSC_0001.JPG", (6, 4))
    finite = np.isfinite(depth)
    np.testing.assert_array_equal(read[finite], depth[finite])
    assert not read[~finite].any() and (~finite).sum() == 12
    with pytest.raises(ValueError, match="96 bytes, but the image is 4x7"):
        read_eth3d_depth(tmp_path / "DSC_0001.JPG", (4, 7))
    np.savez(tmp_path / "a.npz", other=depth, velodyne_depth=depth[None])
    assert read_npz_depth(tmp_path / "a.npz").shape == (6, 4)
    np.savez(tmp_path / "b.npz", other=depth)
    with pytest.raises(ValueError, match="velodyne_depth.*other"):
        read_npz_depth(tmp_path / "b.npz")
