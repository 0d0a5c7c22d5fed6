"""KITTI readers: the Eigen test split (kind ``kitti``, the benchmark) and the Eigen training split (kind
``kitti-eigen-train``, metric fine-tuning, paper Sec. 4.3), both with the improved (annotated) ground truth."""

from __future__ import annotations

import os
import re
from pathlib import Path

from anydepth.images import read_rgb
from anydepth.shards.schema import Sample
from anydepth.sources.base import SourceItem
from anydepth.sources.benchmarks import BenchmarkSource
from anydepth.sources.decoders import read_png16
from anydepth.sources.layout import Entry, examples, keyed_items, layout_error

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

    def __init__(
        self,
        root: str | Path,
        split: str | None = None,
        split_file: str | Path | None = None,
        skip_missing_gt: bool = False,
    ) -> None:
        super().__init__(root, split)
        self.split_file = self.root / (self.SPLIT_FILE if split_file is None else split_file)
        self.skip_missing_gt = bool(skip_missing_gt)

    def _frames(self) -> list[tuple[str, str, str, int]]:
        """``(date, drive, camera, frame)`` per split-file line, in file order, duplicates dropped."""
        if not self.split_file.is_file():
            raise layout_error(self.name, self.root, f"the split file {self.split_file.name} (the frames to read)")
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
        twice = [
            f"{drive} ({', '.join(str(p.relative_to(self.root)) for p in places)})"
            for drive, places in found.items()
            if len(places) > 1
        ]
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


class KITTIEigenTrainSource(KITTISource):
    """KITTI, Eigen training split with improved ground truth (kind ``kitti-eigen-train``): the metric fine-tuning set
    of the paper's Table 4 (Sec. 4.3, as ZoeDepth / BTS train on it).

    Obtain the same downloads as for ``kitti`` (the raw drives, ``data_depth_annotated.zip``, whose ``train/`` folder
    holds the training drives) and the official list ``kitti_eigen_train_files_with_gt.txt`` (BTS / ZoeDepth
    ``train_test_inputs/``; it is not downloaded). Same layout as ``kitti``::

        <root>/raw/<date>/<drive>/image_02/data/<frame:010d>.png                 image
        <root>/.../<drive>/proj_depth/groundtruth/image_02/<frame:010d>.png       16-bit PNG, depth = value / 256 m
        <root>/kitti_eigen_train_files_with_gt.txt                              the list (or ``split_file``)

    List lines: ``<date>/<drive>/image_02/data/<frame>.png <drive>/proj_depth/groundtruth/image_02/<frame>.png
    <focal>``; lines whose ground truth is ``None`` are skipped (either line format of ``kitti`` is accepted). Label:
    ``depth`` in metres, 0 = no LiDAR return (invalid). ``split``: ``None`` only (the list). Keys:
    ``<drive>/<image_02|image_03>/<frame:010d>``.
    """

    name = "kitti-eigen-train"
    SPLITS = (None,)
    SPLIT_FILE = "kitti_eigen_train_files_with_gt.txt"
