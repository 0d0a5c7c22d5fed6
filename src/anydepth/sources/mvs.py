"""Readers for the paper's multi-view-stereo training sets: BlendedMVS and MegaDepth, in their published layouts.

Each class docstring gives the expected layout (relative to the ``root`` passed to the reader), where the
data comes from, the label kind and unit, the invalid-value convention, what ``split`` selects, and the
key format. Nothing here downloads anything.
"""

from __future__ import annotations

from pathlib import Path

from anydepth.images import read_rgb
from anydepth.shards.schema import Sample
from anydepth.sources.base import Source, SourceError, SourceItem
from anydepth.sources.decoders import read_h5_depth, read_label, read_pfm
from anydepth.sources.layout import (
    Entry,
    examples,
    is_image,
    keyed_items,
    layout_error,
    listdir,
    make_sample,
    missing_labels_error,
    strip_ext,
)

# --------------------------------------------------------------------------------------------- BlendedMVS


class BlendedMVSSource(Source):
    """BlendedMVS (kind ``blendedmvs``): rendered MVS depth of 113 scenes, 768 x 576 ("low-res" set).

    Obtain: github.com/YoYo000/BlendedMVS (``BlendedMVS.zip``, the low-res training set; the high-res
    BlendedMVS+/++ archives share the layout). Layout below ``root`` (the unpacked ``BlendedMVS/`` folder)::

        <PID>/blended_images/00000000.jpg            input image (RGB)
        <PID>/blended_images/00000000_masked.jpg     skipped (the image with invalid regions blacked out)
        <PID>/rendered_depth_maps/00000000.pfm       depth, single-channel PFM
        <PID>/cams/...                               unused
        training_list.txt, validation_list.txt      scene ids (PIDs), one per line

    ``<PID>`` is a 24-hex scene id (any folder holding ``blended_images/`` counts as a scene).
    Label: ``depth`` in the units of the scene's reconstruction (consistent within a scene, not metric);
    0 = invalid (no rendered surface). ``split``: ``train`` reads ``training_list.txt``, ``val``
    ``validation_list.txt``, any other ``<s>`` reads ``<s>_list.txt``; ``None`` = every scene folder.
    Every image needs its ``.pfm`` (else ``SourceError``). Keys: ``<PID>/<frame>``.
    """

    name = "blendedmvs"
    label_kind = "depth"
    LIST_FILES = {"train": "training_list.txt", "val": "validation_list.txt"}

    def _scenes(self) -> list[str]:
        if self.split is None:
            scenes = [name for name in listdir(self.root) if (self.root / name / "blended_images").is_dir()]
            if not scenes:
                raise layout_error(self.name, self.root, "scene folders <PID>/blended_images/ + rendered_depth_maps/")
            return scenes
        list_file = self.root / self.LIST_FILES.get(self.split, f"{self.split}_list.txt")
        if not list_file.is_file():
            raise layout_error(self.name, self.root, f"{list_file.name} (scene ids) for split={self.split!r}")
        scenes = sorted({line.strip() for line in list_file.read_text().splitlines() if line.strip()})
        absent = [pid for pid in scenes if not (self.root / pid / "blended_images").is_dir()]
        if absent or not scenes:
            raise layout_error(
                self.name,
                self.root,
                f"a <PID>/blended_images/ folder for every scene in {list_file.name}",
                f"{len(absent)} missing: {examples(absent)}" if absent else f"{list_file.name} is empty",
            )
        return scenes

    def items(self) -> list[SourceItem]:
        result: list[Entry] = []
        missing: list[str] = []
        total = 0
        for pid in self._scenes():
            for name in listdir(self.root / pid / "blended_images"):
                frame = strip_ext(name)
                if not name.lower().endswith((".jpg", ".jpeg")) or frame.endswith("_masked"):
                    continue
                total += 1
                depth = self.root / pid / "rendered_depth_maps" / f"{frame}.pfm"
                if not depth.is_file():
                    missing.append(f"{pid}/blended_images/{name}")
                    continue
                paths = {"image": str(self.root / pid / "blended_images" / name), "label": str(depth)}
                result.append((f"{pid}/{frame}", paths, {"scene": pid}))
        if missing:
            raise missing_labels_error(self.name, self.root, "<PID>/rendered_depth_maps/<frame>.pfm", missing, total)
        if not result:
            raise layout_error(self.name, self.root, "<PID>/blended_images/<frame>.jpg images", "no images")
        return keyed_items(result)

    def load(self, item: SourceItem) -> Sample:
        image = read_rgb(item.paths["image"])
        depth = read_pfm(item.paths["label"])
        if depth.ndim != 2:
            raise ValueError(f"{item.paths['label']}: expected a single-channel (Pf) depth PFM, got {depth.shape}")
        return make_sample(self, item, image, depth, label_kind=self.label_kind, depth_unit="scene")


# --------------------------------------------------------------------------------------------- MegaDepth

_MEGADEPTH_PREFIX = Path("phoenix", "S6", "zl548", "MegaDepth_v1")
_MEGADEPTH_LABELS = (".h5", ".npy")  # depths/<name><ext>, in order of precedence: published first, then converted


class MegaDepthSource(Source):
    """MegaDepth v1 (kind ``megadepth``): Internet photos of landmarks with multi-view-stereo depth.

    Obtain: www.cs.cornell.edu/projects/megadepth (``MegaDepth_v1.tar.gz``). ``root`` is either the
    unpacked archive (holding ``phoenix/S6/zl548/MegaDepth_v1/``) or that ``MegaDepth_v1`` folder::

        MegaDepth_v1/<scene>/dense<k>/imgs/<name>.jpg      RGB (undistorted)
        MegaDepth_v1/<scene>/dense<k>/depths/<name>.h5     HDF5, dataset "depth", float H x W

    ``<scene>`` is a 4-digit id; ``dense0``, ``dense1``, ... are separate reconstructions. The published
    ``.h5`` depth is read directly with ``h5py`` (``read_h5_depth``); a depth already converted to
    ``depths/<name>.npy`` (float32 H x W) is accepted too. When both exist the published ``.h5`` is used.
    Label: ``depth``, up to an unknown per-scene scale (SfM units); 0 (and any value <= 0 or non-finite) =
    invalid. ``split``: MegaDepth v1 has no official split in the archive, so only ``None`` is accepted.
    Every image needs a depth file (else ``SourceError``). Keys: ``<scene>/dense<k>/<name>``.
    """

    name = "megadepth"
    label_kind = "depth"

    def __init__(self, root: str | Path, split: str | None = None) -> None:
        super().__init__(root, split)
        if split is not None:
            raise SourceError(f"{self.name}: MegaDepth v1 has no splits; use split=None (got {split!r})")
        nested = self.root / _MEGADEPTH_PREFIX
        self.base = nested if nested.is_dir() else self.root

    def items(self) -> list[SourceItem]:
        result: list[Entry] = []
        missing: list[str] = []
        total = 0
        folders = [
            (scene, dense)
            for scene in listdir(self.base)
            for dense in listdir(self.base / scene)
            if dense.startswith("dense") and (self.base / scene / dense / "imgs").is_dir()
        ]
        if not folders:
            raise layout_error(
                self.name, self.base, f"<scene>/dense0/imgs/ + depths/ (below the root or {_MEGADEPTH_PREFIX})"
            )
        for scene, dense in folders:
            folder = self.base / scene / dense
            depths = set(listdir(folder / "depths"))
            for name in listdir(folder / "imgs"):
                if not is_image(name):
                    continue
                total += 1
                stem = strip_ext(name)
                label = next((f"{stem}{ext}" for ext in _MEGADEPTH_LABELS if f"{stem}{ext}" in depths), None)
                image_rel = f"{scene}/{dense}/imgs/{name}"
                if label is None:
                    missing.append(image_rel)
                    continue
                paths = {"image": str(folder / "imgs" / name), "label": str(folder / "depths" / label)}
                extra = {"scene": scene, "reconstruction": dense}
                result.append((f"{scene}/{dense}/{stem}", paths, extra))
        if missing:
            raise missing_labels_error(self.name, self.base, "dense<k>/depths/<name>.h5 or .npy", missing, total)
        if not result:
            raise layout_error(self.name, self.base, "images in <scene>/dense<k>/imgs/", "no images")
        return keyed_items(result)

    def load(self, item: SourceItem) -> Sample:
        image = read_rgb(item.paths["image"])
        path = item.paths["label"]
        depth = read_h5_depth(path) if path.endswith(".h5") else read_label(path)
        return make_sample(self, item, image, depth, label_kind=self.label_kind, base=self.base, depth_unit="sfm")
