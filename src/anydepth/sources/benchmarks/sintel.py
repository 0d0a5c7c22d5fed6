"""MPI Sintel benchmark reader (kind ``sintel``): the training set's final (or clean) pass with ``.dpt`` depth."""

from __future__ import annotations

from pathlib import Path

from anydepth.images import read_rgb
from anydepth.shards.schema import Sample
from anydepth.sources.base import SourceError, SourceItem
from anydepth.sources.benchmarks import BenchmarkSource
from anydepth.sources.decoders import read_dpt
from anydepth.sources.layout import Entry, layout_error, listdir, require_found, strip_ext


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
        for scene in listdir(images):
            for name in listdir(images / scene):
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
        return require_found(
            self,
            self.base,
            entries,
            missing,
            total,
            "depth/<scene>/<frame>.dpt",
            f"{self.image_pass}/<scene>/frame_NNNN.png images",
        )

    def load(self, item: SourceItem) -> Sample:
        image = read_rgb(item.paths["image"])
        depth = read_dpt(item.paths["label"])
        return self._sample(item, image, depth, depth_unit="sintel")
