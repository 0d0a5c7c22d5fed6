"""Reader for Hypersim (Roberts et al., ICCV 2021), one of Depth Anything V2's synthetic training sets, in its
published layout.

The class docstring gives the expected layout (relative to the ``root`` passed to the reader), where the data comes
from, the label kind and unit, the invalid-value convention, what ``split`` selects, and the key format. Nothing here
downloads anything.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from anydepth.images import read_rgb
from anydepth.shards.schema import Sample
from anydepth.sources.base import Source, SourceError, SourceItem
from anydepth.sources.decoders import read_h5_depth
from anydepth.sources.layout import Entry, layout_error, listdir, make_sample, require_found

HYPERSIM_WIDTH = 1024
"""Width in pixels of the published renders (1024 x 768)."""
HYPERSIM_FOCAL = 886.81
"""Focal length in pixels at ``HYPERSIM_WIDTH``: a 60 degree horizontal field of view, 512 / tan(30 deg)."""

_PREVIEW = re.compile(r"^scene_(cam_\d+)_final_preview$")
_FRAME = re.compile(r"^frame\.(\d+)\.tonemap\.jpg$")
_SPLIT_COLUMNS = ("scene_name", "camera_name", "frame_id", "included_in_public_release", "split_partition_name")


def distance_to_depth(distance: np.ndarray, focal: float) -> np.ndarray:
    """Planar depth (z along the optical axis) from the Euclidean distance to the camera centre of each pixel.

    A pinhole camera with focal ``focal`` px and the principal point at the image centre sees pixel ``(x, y)`` along
    the ray ``(u, v, f)`` with ``u = x + 0.5 - W / 2``, ``v = y + 0.5 - H / 2`` (pixel centres), so a point at
    distance ``d`` has ``z = d * f / sqrt(f^2 + u^2 + v^2)``. Non-finite input stays non-finite."""
    height, width = distance.shape
    u = np.arange(width, dtype=np.float64) + 0.5 - width / 2
    v = np.arange(height, dtype=np.float64) + 0.5 - height / 2
    cosine = focal / np.sqrt(focal**2 + u[None, :] ** 2 + v[:, None] ** 2)
    return (distance * cosine).astype(np.float32)


def _frames(images: Path) -> Iterator[tuple[str, str, Path]]:
    """``(camera, frame, path)`` of every ``scene_<camera>_final_preview/frame.<frame>.tonemap.jpg`` in ``images``."""
    for folder in listdir(images):
        preview = _PREVIEW.match(folder)
        if not preview:
            continue
        for name in listdir(images / folder):
            frame = _FRAME.match(name)
            if frame:
                yield preview[1], frame[1], images / folder / name


class HypersimSource(Source):
    """Hypersim (kind ``hypersim``): 461 photorealistic indoor scenes (Evermotion assets, V-Ray), 1024 x 768, metric
    depth.

    Obtain: github.com/apple/ml-hypersim (``download.py``; the ``final_preview`` and ``geometry_hdf5`` folders are
    enough). Published layout, as the official Depth Anything V2 ``metric_depth/dataset/hypersim.py`` loader reads
    it::

        <root>/<scene>/images/scene_cam_NN_final_preview/frame.NNNN.tonemap.jpg          RGB (used)
        <root>/<scene>/images/scene_cam_NN_final_preview/frame.NNNN.color.jpg ...        other previews (unused)
        <root>/<scene>/images/scene_cam_NN_geometry_hdf5/frame.NNNN.depth_meters.hdf5    distance (used)
        <root>/metadata_images_split_scene_v1.csv                                        official split (optional)

    ``depth_meters.hdf5`` holds one float16/32 HDF5 dataset named ``dataset``: despite its name, the Euclidean
    distance in metres to the camera centre, not planar depth (github.com/apple/ml-hypersim issue #9 and README),
    NaN where a pixel sees no geometry. It is converted to planar depth with ``distance_to_depth`` and the published
    intrinsics (focal ``focal`` = 886.81 px at width 1024, principal point at the image centre), as the V2 loader's
    ``hypersim_distance_to_depth`` does; the slight per-scene camera variations in ml-hypersim's
    ``contrib/mikeroberts3000`` are ignored, as there. A copy resized as a whole keeps working: the focal scales
    with the width. Label: ``depth`` in metres; NaN, inf and values <= 0 are invalid (stored as 0). ``meta`` has
    ``intrinsics`` (``fx``, ``fy``, ``cx``, ``cy`` in pixels of the stored size).

    ``split``: ``train``, ``val``, ``test`` or ``None`` (all). With ``metadata_images_split_scene_v1.csv`` in
    ``root`` (ml-hypersim's ``evermotion_dataset/analysis``), only its frames with ``included_in_public_release``
    True are read, ``split`` selecting by ``split_partition_name``; without it every frame is ``train`` (and ``val``
    or ``test`` is a ``SourceError``). Every frame read needs its depth file (else ``SourceError``). Keys:
    ``<scene>/cam_NN/frame_NNNN``.
    """

    name = "hypersim"
    label_kind = "depth"
    SPLITS = ("train", "val", "test")
    SPLIT_FILE = "metadata_images_split_scene_v1.csv"

    def __init__(self, root: str | Path, split: str | None = None, focal: float = HYPERSIM_FOCAL) -> None:
        super().__init__(root, split)
        if split is not None and split not in self.SPLITS:
            raise SourceError(f"{self.name}: split must be one of {self.SPLITS} or None, got {split!r}")
        self.focal = float(focal)

    def _partitions(self) -> dict[tuple[str, str, int], str] | None:
        """``(scene, camera, frame) -> split partition`` of the publicly released frames of the split file; ``None``
        without one."""
        path = self.root / self.SPLIT_FILE
        if not path.is_file():
            return None
        with open(path, newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            absent = [column for column in _SPLIT_COLUMNS if column not in (reader.fieldnames or [])]
            if absent:
                raise SourceError(f"{self.name}: {path} has no column {', '.join(absent)}")
            return {
                (row["scene_name"], row["camera_name"], int(row["frame_id"])): row["split_partition_name"]
                for row in reader
                if row["included_in_public_release"].strip().lower() == "true"
            }

    def items(self) -> list[SourceItem]:
        partitions = self._partitions()
        if partitions is None and self.split not in (None, "train"):
            raise SourceError(
                f"{self.name}: split {self.split!r} needs {self.SPLIT_FILE} in {self.root} (without it every frame "
                "is train)"
            )
        scenes = [scene for scene in listdir(self.root) if (self.root / scene / "images").is_dir()]
        if not scenes:
            raise layout_error(self.name, self.root, "<scene>/images/scene_cam_NN_final_preview/ folders")
        entries: list[Entry] = []
        missing: list[str] = []
        total = 0
        for scene in scenes:
            for camera, frame, image in _frames(self.root / scene / "images"):
                partition = "train" if partitions is None else partitions.get((scene, camera, int(frame)))
                if partition is None or self.split not in (None, partition):
                    continue
                total += 1
                depth = image.parent.parent / f"scene_{camera}_geometry_hdf5" / f"frame.{frame}.depth_meters.hdf5"
                if not depth.is_file():
                    missing.append(image.relative_to(self.root).as_posix())
                    continue
                paths = {"image": str(image), "label": str(depth)}
                extra = {"scene": scene, "camera": camera, "frame": int(frame), "split": partition}
                entries.append((f"{scene}/{camera}/frame_{frame}", paths, extra))
        expected = "scene_cam_NN_geometry_hdf5/frame.NNNN.depth_meters.hdf5 for every frame"
        selected = f" in split {self.split!r}" if self.split else ""
        nothing = f"scene_cam_NN_final_preview/frame.NNNN.tonemap.jpg images{selected}"
        return require_found(self, self.root, entries, missing, total, expected, nothing)

    def load(self, item: SourceItem) -> Sample:
        image = read_rgb(item.paths["image"])
        distance = read_h5_depth(item.paths["label"], dataset="dataset")
        height, width = distance.shape
        focal = self.focal * width / HYPERSIM_WIDTH
        depth = distance_to_depth(distance, focal)
        depth = np.where(np.isfinite(depth) & (depth > 0), depth, np.float32(0))
        intrinsics = {"fx": focal, "fy": focal, "cx": width / 2, "cy": height / 2}
        return make_sample(self, item, image, depth, label_kind=self.label_kind, depth_unit="m", intrinsics=intrinsics)
