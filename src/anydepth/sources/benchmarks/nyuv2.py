"""NYU Depth V2 readers: the benchmark (kind ``nyuv2``: the labeled MATLAB v7.3 file and the official test split)
and the metric fine-tuning set (kind ``nyuv2-train``: BTS / ZoeDepth's ``sync`` frames, paper Sec. 4.3)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import h5py
import numpy as np

from anydepth.images import read_rgb
from anydepth.shards.schema import Sample
from anydepth.sources.base import SourceError, SourceItem
from anydepth.sources.benchmarks import BenchmarkSource
from anydepth.sources.decoders import read_mat_v5, read_png16
from anydepth.sources.layout import Entry, examples, keyed_items, layout_error, strip_ext


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

    def __init__(
        self, root: str | Path, split: str | None = None, mat_file: str = MAT_FILE, split_file: str | Path | None = None
    ) -> None:
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


class NYUv2TrainSource(BenchmarkSource):
    """NYU Depth V2 training frames as BTS and ZoeDepth (hence the Depth Anything metric fork) train on them (kind
    ``nyuv2-train``): the metric fine-tuning set of the paper's Table 3 (Sec. 4.3), 480 x 640.

    Obtain: BTS's ``sync.zip`` (frames of the raw NYU Depth V2 scenes, synchronised and projected, about 24K used)
    and the official list ``nyudepthv2_train_files_with_gt.txt`` (BTS / ZoeDepth ``train_test_inputs/``; it is not
    downloaded). Layout::

        <root>/sync/<scene>/rgb_00000.jpg                  RGB
        <root>/sync/<scene>/sync_depth_00000.png           16-bit PNG, depth in millimetres, 0 = no reading
        <root>/nyudepthv2_train_files_with_gt.txt          the list (or ``split_file``, relative to root or absolute)

    List lines: ``/<scene>/rgb_00000.jpg /<scene>/sync_depth_00000.png 518.8579`` (image, depth, focal), paths
    relative to ``<root>/sync``; blank and ``#`` lines are ignored and a repeated line is read once. Only the listed
    frames are read, each needing both files (else ``SourceError``). Label: ``depth`` in metres (PNG / 1000); 0 is
    invalid. The Eigen crop and 1e-3-10 m range belong to training / evaluation, not to the reader. ``split``:
    ``None`` only (the list). Keys: ``<scene>/rgb_00000``.
    """

    name = "nyuv2-train"
    SPLIT_FILE = "nyudepthv2_train_files_with_gt.txt"
    SYNC_DIR = "sync"
    DEPTH_SCALE = 1000.0

    def __init__(self, root: str | Path, split: str | None = None, split_file: str | Path | None = None) -> None:
        super().__init__(root, split)
        self.split_file = self.root / (self.SPLIT_FILE if split_file is None else split_file)

    def _pairs(self) -> list[tuple[str, str]]:
        """``(image, depth)`` paths relative to ``<root>/sync`` per list line, in file order, duplicates dropped."""
        if not self.split_file.is_file():
            raise layout_error(self.name, self.root, f"the list {self.split_file.name} (the training frames)")
        pairs: list[tuple[str, str]] = []
        for number, line in enumerate(self.split_file.read_text().splitlines(), 1):
            tokens = line.split("#")[0].split()
            if not tokens:
                continue
            if len(tokens) not in (2, 3):
                raise layout_error(
                    self.name,
                    self.split_file,
                    "lines '/<scene>/rgb_N.jpg /<scene>/sync_depth_N.png <focal>'",
                    f"line {number}: {line.strip()!r}",
                )
            pairs.append((tokens[0].lstrip("/"), tokens[1].lstrip("/")))
        if not pairs:
            raise layout_error(self.name, self.split_file, "at least one frame", "no frames")
        return list(dict.fromkeys(pairs))

    def items(self) -> list[SourceItem]:
        pairs = self._pairs()
        sync = self.root / self.SYNC_DIR
        missing = [rel for pair in pairs for rel in pair if not (sync / rel).is_file()]
        if missing:
            raise layout_error(
                self.name,
                self.root,
                f"{self.SYNC_DIR}/<scene>/rgb_N.jpg and sync_depth_N.png for every line of {self.split_file.name}",
                f"{len(missing)} missing: {examples([f'{self.SYNC_DIR}/{rel}' for rel in missing])}",
            )
        entries: list[Entry] = [
            (strip_ext(image), {"image": str(sync / image), "label": str(sync / depth)}, {"scene": image.split("/")[0]})
            for image, depth in pairs
        ]
        return keyed_items(entries)

    def load(self, item: SourceItem) -> Sample:
        image = read_rgb(item.paths["image"])
        depth = read_png16(item.paths["label"], self.DEPTH_SCALE)
        return self._sample(item, image, depth, depth_png_scale=self.DEPTH_SCALE, split_file=self.split_file.name)
