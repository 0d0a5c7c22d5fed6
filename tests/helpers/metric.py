"""Metric depth test helpers: a metric model whose output is known exactly, and a minimal PLY reader."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from anydepth.models import DepthAnything
from anydepth.models.preprocess import IMAGENET_MEAN, IMAGENET_STD

from helpers import TINY
from helpers.fabricate import CODED_DEPTH

PLY_TYPES = {"float": "<f4", "uchar": "u1"}


class CodedDepth(DepthAnything):
    """A real metric ``DepthAnything`` (``TINY`` sizes, ``head="metric"``) whose forward reads the depth a coded image
    encodes (:func:`helpers.fabricate.coded_depth`) times ``scale``: its metres are known exactly wherever the network
    input holds the image's own pixels (sides multiples of 14, input size = the shorter side)."""

    def __init__(self, scale: float = 1.0, max_depth: float = 100.0) -> None:
        super().__init__(**TINY, head="metric", max_depth=max_depth)
        self.scale = scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        red = ((x[:, 0] * IMAGENET_STD[0] + IMAGENET_MEAN[0]) * 255).round()  # undo the ImageNet normalisation
        offset, step = CODED_DEPTH
        return self.scale * (offset + step * red)


def read_ply(path: Path) -> np.ndarray:
    """The vertices of a binary little-endian PLY (``element vertex N`` then ``property <type> <name>`` lines) as a
    structured array, after checking the header and that the body holds exactly N vertices."""
    head, separator, body = path.read_bytes().partition(b"end_header\n")
    lines = head.decode("ascii").splitlines()
    assert separator and lines[:2] == ["ply", "format binary_little_endian 1.0"], lines
    (count,) = [int(line.split()[2]) for line in lines if line.startswith("element vertex ")]
    dtype = np.dtype([(line.split()[2], PLY_TYPES[line.split()[1]]) for line in lines if line.startswith("property")])
    assert len(body) == count * dtype.itemsize
    return np.frombuffer(body, dtype)
