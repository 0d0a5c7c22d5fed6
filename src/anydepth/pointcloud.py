"""Metric depth maps as coloured point clouds: pinhole back-projection and binary PLY files (``anydepth infer
--point-cloud``).

The camera is a pinhole with square pixels and the principal point at the image centre, given by its focal length in
pixels or its horizontal field of view, as Depth Anything V2's ``metric_depth/depth_to_pointcloud.py`` back-projects
(``x = (u - W / 2) z / f``), except that pixel ``(u, v)`` is sampled at its centre, so the cloud is symmetric about
the optical axis: a point at depth ``z`` is ``x = (u + 0.5 - W / 2) z / f``, ``y = (v + 0.5 - H / 2) z / f`` (x to
the right, y down, z forward: OpenCV's camera frame), in metres. The image's edges are then at ``x = +-z W / (2 f)``.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["Camera", "back_project", "write_ply"]


@dataclass(frozen=True)
class Camera:
    """A pinhole camera: ``focal`` in pixels of the image, or ``fov`` the horizontal field of view in degrees."""

    focal: float | None = None
    fov: float | None = None

    def __post_init__(self) -> None:
        if (self.focal is None) == (self.fov is None):
            raise ValueError(
                f"give exactly one of a focal length and a field of view (focal {self.focal}, fov {self.fov})"
            )
        if self.focal is not None and not (math.isfinite(self.focal) and self.focal > 0):
            raise ValueError(f"the focal length must be positive (pixels), got {self.focal}")
        if self.fov is not None and not 0 < self.fov < 180:  # NaN fails too
            raise ValueError(f"the horizontal field of view must be in (0, 180) degrees, got {self.fov}")

    def focal_px(self, width: int) -> float:
        """The focal length in pixels for an image ``width`` pixels wide: ``focal``, or ``W / (2 tan(fov / 2))``."""
        if self.focal is not None:
            return self.focal
        assert self.fov is not None  # __post_init__: exactly one is set
        return width / (2.0 * math.tan(math.radians(self.fov) / 2.0))


def back_project(depth: np.ndarray, focal: float) -> tuple[np.ndarray, np.ndarray]:
    """``(points, valid)``: the N x 3 float32 camera-frame points (metres) of the ``valid`` pixels of an H x W depth
    map in metres (finite and positive; ``valid`` is the H x W bool map, row-major order as the points)."""
    if depth.ndim != 2:
        raise ValueError(f"expected an H x W depth map, got shape {depth.shape}")
    height, width = depth.shape
    valid = np.isfinite(depth) & (depth > 0)
    v, u = np.nonzero(valid)
    z = depth[valid].astype(np.float64)
    x = (u + 0.5 - width / 2) * z / focal
    y = (v + 0.5 - height / 2) * z / focal
    return np.stack([x, y, z], axis=1).astype(np.float32), valid


def write_ply(path: str | os.PathLike, points: np.ndarray, colors: np.ndarray) -> Path:
    """Write N x 3 float32 ``points`` with N x 3 uint8 RGB ``colors`` as a binary little-endian PLY (vertices
    ``x y z`` float, ``red green blue`` uchar; no faces), readable by MeshLab, CloudCompare, Open3D and Blender."""
    if points.ndim != 2 or points.shape[1] != 3 or colors.shape != points.shape:
        raise ValueError(f"expected N x 3 points and N x 3 colours, got {points.shape} and {colors.shape}")
    vertex = np.dtype([(n, "<f4") for n in "xyz"] + [(n, "u1") for n in ("red", "green", "blue")])
    data = np.empty(len(points), vertex)
    for i, name in enumerate("xyz"):
        data[name] = points[:, i]
    for i, name in enumerate(("red", "green", "blue")):
        data[name] = colors[:, i]
    header = (
        "ply\nformat binary_little_endian 1.0\ncomment anydepth metric point cloud, metres\n"
        f"element vertex {len(points)}\nproperty float x\nproperty float y\nproperty float z\n"
        "property uchar red\nproperty uchar green\nproperty uchar blue\nend_header\n"
    )
    path = Path(path)
    path.write_bytes(header.encode("ascii") + data.tobytes())
    return path
