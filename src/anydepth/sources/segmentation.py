"""Semantic segmentation readers (paper Sec. 4.4, Tables 7-8): ``ade20k`` and ``cityscapes``, writing ``seg.png``.

The paper fine-tunes its depth encoder on ADE20K (150 classes) and Cityscapes (19 classes) with the MMSegmentation
defaults; the readers store the labels those defaults train on: ADE20K with ``reduce_zero_label`` (0 = "other"
becomes the ignore value 255, class ``c`` becomes ``c - 1``), Cityscapes as its 19 train ids (255 = ignore).

:data:`CLASS_SETS` names the classes of each set (and of the offline ``demo-seg`` scenes) for training configs,
metric tables and palettes; :data:`PALETTES` holds the official colours where a dataset defines them.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from anydepth.images import read_rgb
from anydepth.shards.schema import Sample, decode_seg
from anydepth.sources.base import Source, SourceError, SourceItem
from anydepth.sources.demo.raycast import DEMO_CLASSES
from anydepth.sources.layout import describe_dir, find_files, layout_error, make_sample, require_found

IGNORE_INDEX = 255
"""The ignore value of ``seg.png`` for both sets (MMSegmentation's ``ignore_index``)."""

ADE20K_CLASSES: tuple[str, ...] = (
    "wall", "building", "sky", "floor", "tree", "ceiling", "road", "bed", "windowpane", "grass", "cabinet",
    "sidewalk", "person", "earth", "door", "table", "mountain", "plant", "curtain", "chair", "car", "water",
    "painting", "sofa", "shelf", "house", "sea", "mirror", "rug", "field", "armchair", "seat", "fence", "desk",
    "rock", "wardrobe", "lamp", "bathtub", "railing", "cushion", "base", "box", "column", "signboard",
    "chest of drawers", "counter", "sand", "sink", "skyscraper", "fireplace", "refrigerator", "grandstand", "path",
    "stairs", "runway", "case", "pool table", "pillow", "screen door", "stairway", "river", "bridge", "bookcase",
    "blind", "coffee table", "toilet", "flower", "book", "hill", "bench", "countertop", "stove", "palm",
    "kitchen island", "computer", "swivel chair", "boat", "bar", "arcade machine", "hovel", "bus", "towel", "light",
    "truck", "tower", "chandelier", "awning", "streetlight", "booth", "television receiver", "airplane",
    "dirt track", "apparel", "pole", "land", "bannister", "escalator", "ottoman", "bottle", "buffet", "poster",
    "stage", "van", "ship", "fountain", "conveyer belt", "canopy", "washer", "plaything", "swimming pool", "stool",
    "barrel", "basket", "waterfall", "tent", "bag", "minibike", "cradle", "oven", "ball", "food", "step", "tank",
    "trade name", "microwave", "pot", "animal", "bicycle", "lake", "dishwasher", "screen", "blanket", "sculpture",
    "hood", "sconce", "vase", "traffic light", "tray", "ashcan", "fan", "pier", "crt screen", "plate", "monitor",
    "bulletin board", "shower", "radiator", "glass", "clock", "flag",
)  # fmt: skip
"""The 150 SceneParsing classes in train-id order (ADEChallengeData2016 annotation value minus one)."""

CITYSCAPES_CLASSES: tuple[str, ...] = (
    "road", "sidewalk", "building", "wall", "fence", "pole", "traffic light", "traffic sign", "vegetation",
    "terrain", "sky", "person", "rider", "car", "truck", "bus", "train", "motorcycle", "bicycle",
)  # fmt: skip
"""The 19 evaluated Cityscapes classes in train-id order (cityscapesScripts ``labels.py``)."""

CITYSCAPES_PALETTE: tuple[tuple[int, int, int], ...] = (
    (128, 64, 128), (244, 35, 232), (70, 70, 70), (102, 102, 156), (190, 153, 153), (153, 153, 153),
    (250, 170, 30), (220, 220, 0), (107, 142, 35), (152, 251, 152), (70, 130, 180), (220, 20, 60), (255, 0, 0),
    (0, 0, 142), (0, 0, 70), (0, 60, 100), (0, 80, 100), (0, 0, 230), (119, 11, 32),
)  # fmt: skip
"""The official Cityscapes colour of each train id (cityscapesScripts ``labels.py``)."""

CITYSCAPES_TRAIN_IDS: dict[int, int] = {
    7: 0, 8: 1, 11: 2, 12: 3, 13: 4, 17: 5, 19: 6, 20: 7, 21: 8, 22: 9, 23: 10, 24: 11, 25: 12, 26: 13, 27: 14,
    28: 15, 31: 16, 32: 17, 33: 18,
}  # fmt: skip
"""Cityscapes ``labelIds`` -> train ids (cityscapesScripts ``labels.py``); every other id is ignored (255)."""

CLASS_SETS: dict[str, tuple[str, ...]] = {
    "ade20k": ADE20K_CLASSES,
    "cityscapes": CITYSCAPES_CLASSES,
    "demo": DEMO_CLASSES,
}
"""Class names by set, for ``classes: <set>`` in the segmentation configs."""

PALETTES: dict[str, tuple[tuple[int, int, int], ...]] = {"cityscapes": CITYSCAPES_PALETTE}
"""Official colours by set; other sets get :func:`anydepth.evaluation.segmentation.palette`'s generated ones."""


def reduce_zero_label(ids: np.ndarray) -> np.ndarray:
    """ADE20K's convention (MMSegmentation ``reduce_zero_label=True``): 0 ("other objects") -> 255, ``c`` -> ``c-1``."""
    return np.where(ids == 0, IGNORE_INDEX, ids.astype(np.int64) - 1).astype(ids.dtype)


def to_train_ids(label_ids: np.ndarray) -> np.ndarray:
    """Cityscapes ``labelIds`` -> train ids (:data:`CITYSCAPES_TRAIN_IDS`, the rest 255), as uint8."""
    lookup = np.full(256, IGNORE_INDEX, np.uint8)
    lookup[list(CITYSCAPES_TRAIN_IDS)] = list(CITYSCAPES_TRAIN_IDS.values())
    return lookup[label_ids.astype(np.uint8)]


def read_seg(path: str | Path) -> np.ndarray:
    """A class-id PNG as uint8 / uint16 (the ``seg.png`` decoder)."""
    return decode_seg(Path(path).read_bytes())


def seg_sample(source: Source, item: SourceItem, seg: np.ndarray, **meta: object) -> Sample:
    """``make_sample`` for an image and its class ids; ``ValueError`` naming both files when the sizes differ."""
    image = read_rgb(item.paths["image"])
    if seg.shape != image.shape[:2]:
        raise ValueError(
            f"{source.name} {item.key}: annotation {item.paths['seg']} is {seg.shape} (HxW) but the image "
            f"{item.paths['image']} is {image.shape[:2]}; labels must match the image size"
        )
    sample = make_sample(source, item, image, ignore_index=IGNORE_INDEX, **meta)
    return replace(sample, seg=seg)


class ADE20KSource(Source):
    """ADE20K SceneParsing (kind ``ade20k``; Zhou et al., CVPR 2017), the 150-class benchmark of Table 8.

    Layout (``root`` is ``ADEChallengeData2016/`` or the folder holding it)::

        ADEChallengeData2016/images/{training,validation}/ADE_<split>_NNNNNNNN.jpg
        ADEChallengeData2016/annotations/{training,validation}/ADE_<split>_NNNNNNNN.png   8-bit class ids, 0 = other

    ``split``: ``training`` (default; alias ``train``) or ``validation`` (alias ``val``). Every image needs its
    annotation (same stem), else a ``SourceError`` lists the missing ones. ``seg`` holds ``reduce_zero_label`` ids:
    0..149 and 255 (ignored). Keys: the image stems. No depth (``label_kind`` None).
    """

    name = "ade20k"
    label_kind = None
    SPLITS = {"training": "training", "train": "training", "validation": "validation", "val": "validation"}

    def __init__(self, root: str | Path, split: str | None = None) -> None:
        super().__init__(root, split)
        if (split or "training") not in self.SPLITS:
            raise SourceError(f"{self.name}: split must be one of {', '.join(self.SPLITS)}, got {split!r}")
        nested = self.root / "ADEChallengeData2016"
        self.base = nested if nested.is_dir() else self.root
        self.folder = self.SPLITS[split or "training"]

    def items(self) -> list[SourceItem]:
        images_dir = self.base / "images" / self.folder
        annotations_dir = self.base / "annotations" / self.folder
        images = find_files(images_dir, (".jpg",), recursive=False)
        if not images:
            expected = f"ADEChallengeData2016/images/{self.folder}/*.jpg"
            raise layout_error(self.name, self.root, expected, describe_dir(images_dir))
        entries, missing = [], []
        for name in images:
            stem = Path(name).stem
            annotation = annotations_dir / f"{stem}.png"
            if annotation.is_file():
                entries.append((stem, {"image": str(images_dir / name), "seg": str(annotation)}, {}))
            else:
                missing.append(name)
        expected = f"annotations/{self.folder}/<stem>.png for every image"
        return require_found(self, self.root, entries, missing, len(images), expected, "no images")

    def load(self, item: SourceItem) -> Sample:
        return seg_sample(self, item, reduce_zero_label(read_seg(item.paths["seg"])), reduce_zero_label=True)


class CityscapesSource(Source):
    """Cityscapes fine annotations (kind ``cityscapes``; Cordts et al., CVPR 2016), the 19-class benchmark of Table 7.

    Layout (``root`` holds both folders)::

        leftImg8bit/<split>/<city>/<city>_<seq>_<frame>_leftImg8bit.png
        gtFine/<split>/<city>/<city>_<seq>_<frame>_gtFine_labelTrainIds.png   train ids, 255 = ignore

    (``labelTrainIds`` is what cityscapesScripts' ``csCreateTrainIdLabelImgs`` writes; where only the released
    ``*_gtFine_labelIds.png`` exists it is mapped through :data:`CITYSCAPES_TRAIN_IDS`.) ``split``: ``train``
    (default), ``val`` or ``test`` (the test labels are withheld: all ignored). Every image needs its annotation,
    else a ``SourceError`` lists the missing ones. Keys: ``<city>/<city>_<seq>_<frame>``. No depth.
    """

    name = "cityscapes"
    label_kind = None
    SUFFIXES = ("_gtFine_labelTrainIds.png", "_gtFine_labelIds.png")  # preferred first

    def __init__(self, root: str | Path, split: str | None = None) -> None:
        super().__init__(root, split)
        if (split or "train") not in ("train", "val", "test"):
            raise SourceError(f"{self.name}: split must be train, val or test, got {split!r}")
        self.folder = split or "train"

    def _annotation(self, gt_dir: Path, rel_stem: str) -> Path | None:
        candidates = (gt_dir / f"{rel_stem}{suffix}" for suffix in self.SUFFIXES)
        return next((path for path in candidates if path.is_file()), None)

    def items(self) -> list[SourceItem]:
        image_dir, gt_dir = self.root / "leftImg8bit" / self.folder, self.root / "gtFine" / self.folder
        images = [rel for rel in find_files(image_dir, (".png",)) if rel.endswith("_leftImg8bit.png")]
        if not images:
            expected = f"leftImg8bit/{self.folder}/<city>/*_leftImg8bit.png"
            raise layout_error(self.name, self.root, expected, describe_dir(image_dir))
        entries, missing = [], []
        for rel in images:
            stem = rel[: -len("_leftImg8bit.png")]
            annotation = self._annotation(gt_dir, stem)
            if annotation is None:
                missing.append(rel)
            else:
                entries.append((stem, {"image": str(image_dir / rel), "seg": str(annotation)}, {}))
        expected = f"gtFine/{self.folder}/<city>/<stem>_gtFine_labelTrainIds.png (or _labelIds.png) for every image"
        return require_found(self, self.root, entries, missing, len(images), expected, "no images")

    def load(self, item: SourceItem) -> Sample:
        ids = read_seg(item.paths["seg"])
        train_ids = item.paths["seg"].endswith(self.SUFFIXES[0])
        return seg_sample(self, item, ids if train_ids else to_train_ids(ids), from_label_ids=not train_ids)
