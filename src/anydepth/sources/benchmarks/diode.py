"""DIODE benchmark readers (kinds ``diode-indoor`` and ``diode-outdoor``): laser-scanned depth with validity masks."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import numpy as np

from anydepth.images import read_rgb
from anydepth.shards.schema import Sample
from anydepth.sources.base import SourceItem
from anydepth.sources.benchmarks import BenchmarkSource
from anydepth.sources.decoders import read_label
from anydepth.sources.layout import Entry, find_files, layout_error, require_found, strip_ext


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
            extra = {
                "scene_type": self.SCENE_TYPE,
                "scene": parts[0] if len(parts) > 2 else "",
                "scan": parts[1] if len(parts) > 2 else "",
            }
            entries.append((stem, {"image": str(self.base / rel), "label": str(depth), "mask": str(mask)}, extra))
        return require_found(
            self,
            self.base,
            entries,
            missing,
            total,
            "<name>_depth.npy and <name>_depth_mask.npy",
            "scene_NNNNN/scan_NNNNN/<name>.png images",
        )

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
