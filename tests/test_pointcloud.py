"""Pinhole back-projection and the PLY writer: a constant-depth plane becomes a planar cloud of the right extent, and
the files parse with a minimal reader of the PLY format (``helpers.metric.read_ply``)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from anydepth.pointcloud import Camera, back_project, write_ply

from helpers.metric import read_ply


def test_a_constant_depth_plane_back_projects_to_a_plane_of_the_right_extent() -> None:
    height, width, focal, depth = 30, 40, 25.0, 2.5
    points, valid = back_project(np.full((height, width), depth, np.float32), focal)
    assert valid.all() and points.shape == (height * width, 3) and points.dtype == np.float32
    x, y, z = points.T
    assert (z == depth).all()  # planar, at the plane's depth
    # pixel centres span +-depth (W - 1) / (2 f); with each pixel's footprint (depth / f) the image's edges are at
    # +-depth W / (2 f)
    assert (x.min(), x.max()) == pytest.approx((-depth * (width - 1) / (2 * focal), depth * (width - 1) / (2 * focal)))
    assert x.max() + depth / focal / 2 == pytest.approx(depth * width / (2 * focal))
    assert (y.min(), y.max()) == pytest.approx(
        (-depth * (height - 1) / (2 * focal), depth * (height - 1) / (2 * focal))
    )
    # row-major from the top-left pixel: x to the right, y down
    assert points[0, 0] < 0 and points[0, 1] < 0 and points[width - 1, 0] > 0 and points[-1, 1] > 0
    assert points[1, 0] - points[0, 0] == pytest.approx(depth / focal)  # one pixel = depth / f metres


def test_the_field_of_view_gives_the_focal_length() -> None:
    assert Camera(fov=90.0).focal_px(640) == pytest.approx(320.0)  # W / (2 tan(45 deg))
    assert Camera(focal=500.0).focal_px(640) == 500.0
    width, depth = 64, 3.0
    focal = Camera(fov=60.0).focal_px(width)
    x = back_project(np.full((10, width), depth), focal)[0][:, 0]
    assert x.max() + depth / focal / 2 == pytest.approx(depth * math.tan(math.radians(30.0)))  # the image edge
    for bad in (dict(), dict(focal=500.0, fov=60.0), dict(focal=0.0), dict(fov=180.0), dict(fov=-5.0)):
        with pytest.raises(ValueError):
            Camera(**bad)


def test_invalid_pixels_are_left_out_and_the_ply_holds_every_point_with_its_colour(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    depth = rng.uniform(0.5, 9.0, (12, 16)).astype(np.float32)
    depth[0, :4] = [0.0, -1.0, np.nan, np.inf]  # no depth there
    rgb = rng.integers(0, 256, (12, 16, 3), dtype=np.uint8)
    points, valid = back_project(depth, 20.0)
    assert valid.sum() == depth.size - 4 and not valid[0, :4].any() and len(points) == valid.sum()
    vertices = read_ply(write_ply(tmp_path / "cloud.ply", points, rgb[valid]))
    assert vertices.dtype.names == ("x", "y", "z", "red", "green", "blue")
    np.testing.assert_array_equal(np.stack([vertices[n] for n in "xyz"], axis=1), points)
    np.testing.assert_array_equal(np.stack([vertices[n] for n in ("red", "green", "blue")], axis=1), rgb[valid])
    np.testing.assert_array_equal(vertices["z"], depth[valid])
    with pytest.raises(ValueError, match="N x 3"):
        write_ply(tmp_path / "bad.ply", points, rgb[valid][:-1])
