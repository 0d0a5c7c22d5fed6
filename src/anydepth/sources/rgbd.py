"""Readers for the paper's real RGB-D and stereo training sets: DIML/CVL and HR-WSI, in their published layouts.

Each class docstring gives the expected layout (relative to the ``root`` passed to the reader), where the
data comes from, the label kind and unit, the invalid-value convention, what ``split`` selects, and the
key format. Nothing here downloads anything.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from anydepth.images import read_rgb
from anydepth.shards.schema import Sample
from anydepth.sources.base import Source, SourceError, SourceItem
from anydepth.sources.decoders import read_mask, read_png16, read_unit
from anydepth.sources.layout import (
    Entry,
    is_image,
    keyed_items,
    layout_error,
    listdir,
    make_sample,
    missing_labels_error,
    strip_ext,
)

# --------------------------------------------------------------------------------------------- DIML


@dataclass(frozen=True)
class _DimlLayout:
    """One DIML folder pattern: ``<dir>/<image_dir>/<frame><image_suffix>.png`` etc."""

    variant: str
    image_dir: str
    image_suffix: str
    depth_dir: str
    depth_suffix: str | None  # None: any "<frame>_<something>.png"
    conf_dir: str | None = None
    conf_suffix: str = ""


_DIML_LAYOUTS = (
    _DimlLayout("indoor", "col", "_c", "up_png", None),
    _DimlLayout("indoor-sample", "color", "_c", "depth_filled", "_depth_filled"),
    _DimlLayout("outdoor", "left", "_left", "depth", "_depth", "conf", "_conf"),
    _DimlLayout("outdoor-sample", "outleft", "", "depthmap", "", "confidencemap", ""),
)


class DIMLSource(Source):
    """DIML/CVL RGB-D (kind ``diml``): Kinect v2 indoor and ZED-stereo outdoor frames.

    Obtain: dimlrgbd.github.io (DIML/CVL RGB-D dataset). ``root`` is the unpacked folder; it is searched
    recursively for *frame folders* holding one of these sibling pairs (any nesting above, e.g.
    ``indoor/<scene>/<date>/<batch>/``)::

        col/<frame>_c.png         + up_png/<frame>_ud.png              indoor, full dataset ("HR", 1344x756)
        color/<frame>_c.png       + depth_filled/<frame>_depth_filled.png   indoor, "sample" release
                                                                       (<indoor>/{train,test}/{HR,LR}/<scene>/)
        left/<frame>_left.png     + depth/<frame>_depth.png + conf/<frame>_conf.png    outdoor, full dataset
        outleft/<frame>.png       + depthmap/<frame>.png + confidencemap/<frame>.png  outdoor, "sample" release

    The primary (commonly used) layout is the full indoor one: colour ``col/*_c.png`` with the filled,
    upsampled depth ``up_png/*_ud.png`` (any ``<frame>_<suffix>.png`` in ``up_png/`` is accepted, since
    releases differ in the suffix). Label: ``depth`` from 16-bit PNGs in millimetres, divided by 1000 ->
    metres; 0 = invalid. Outdoor depth comes from stereo with an 8-bit confidence map: pixels with
    ``conf / 255 <= conf_threshold`` (default 0.9; a constructor argument) or depth 0 are invalid and the
    result is returned as ``Sample.mask``. ``split``: keeps frame folders whose path below ``root`` contains
    a folder named ``split`` (e.g. ``indoor``, ``outdoor``, ``train``, ``test``, ``HR`` or a scene name);
    ``None`` = all. Every colour image needs its depth (else ``SourceError``). Keys: the colour image's
    relative path without ``.png`` (dots/spaces -> ``_``).
    """

    name = "diml"
    label_kind = "depth"
    DEPTH_SCALE = 1000.0

    def __init__(self, root: str | Path, split: str | None = None, conf_threshold: float = 0.9) -> None:
        super().__init__(root, split)
        self.conf_threshold = float(conf_threshold)

    def _frame_folders(self) -> list[tuple[Path, _DimlLayout]]:
        found = []
        for current, dirs, _ in os.walk(self.root, followlinks=True):
            here = Path(current)
            layouts = [lay for lay in _DIML_LAYOUTS if lay.image_dir in dirs and lay.depth_dir in dirs]
            if layouts:
                found.extend((here, lay) for lay in layouts)
                dirs[:] = []  # a frame folder only holds data folders
            else:
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        return found

    def _depth_index(self, folder: Path, layout: _DimlLayout) -> dict[str, str]:
        names = [n for n in listdir(folder / layout.depth_dir) if n.lower().endswith(".png")]
        if layout.depth_suffix is None:
            return {strip_ext(n).rsplit("_", 1)[0]: n for n in names if "_" in n}
        return {
            strip_ext(n)[: len(strip_ext(n)) - len(layout.depth_suffix)]: n
            for n in names
            if strip_ext(n).endswith(layout.depth_suffix)
        }

    def items(self) -> list[SourceItem]:
        folders = self._frame_folders()
        if not folders:
            raise layout_error(
                self.name,
                self.root,
                "frame folders with col/ + up_png/, color/ + depth_filled/, left/ + depth/ + conf/ or "
                "outleft/ + depthmap/ + confidencemap/ (anywhere below the root)",
            )
        result: list[Entry] = []
        missing: list[str] = []
        total = 0
        for folder, layout in folders:
            rel = folder.relative_to(self.root)
            if self.split is not None and self.split not in rel.parts:
                continue
            depths = self._depth_index(folder, layout)
            for name in listdir(folder / layout.image_dir):
                frame = strip_ext(name)
                if not is_image(name) or not frame.endswith(layout.image_suffix):
                    continue
                frame = frame[: len(frame) - len(layout.image_suffix)]
                total += 1
                image_rel = (rel / layout.image_dir / name).as_posix()
                if frame not in depths:
                    missing.append(image_rel)
                    continue
                paths = {
                    "image": str(folder / layout.image_dir / name),
                    "label": str(folder / layout.depth_dir / depths[frame]),
                }
                if layout.conf_dir is not None:
                    paths["conf"] = str(folder / layout.conf_dir / f"{frame}{layout.conf_suffix}.png")
                extra = {"variant": layout.variant, "depth_unit": "m"}
                result.append((strip_ext(image_rel), paths, extra))
        if missing:
            raise missing_labels_error(self.name, self.root, "a depth PNG for every colour image", missing, total)
        if not result:
            found = f"no frame folder below a folder named {self.split!r}" if self.split else "no colour images"
            raise layout_error(self.name, self.root, "colour images in the frame folders", found)
        return keyed_items(result)

    def load(self, item: SourceItem) -> Sample:
        image = read_rgb(item.paths["image"])
        depth = read_png16(item.paths["label"], self.DEPTH_SCALE)
        mask = None
        if "conf" in item.paths:
            conf = read_unit(item.paths["conf"])
            if conf.shape != depth.shape:
                raise ValueError(f"{item.paths['conf']}: confidence {conf.shape} does not match depth {depth.shape}")
            mask = (conf > self.conf_threshold) & (depth > 0)
        meta: dict[str, Any] = {"conf_threshold": self.conf_threshold} if mask is not None else {}
        return make_sample(self, item, image, depth, mask, label_kind=self.label_kind, **meta)


# --------------------------------------------------------------------------------------------- HR-WSI


class HRWSISource(Source):
    """HR-WSI (kind ``hrwsi``): 20,378 train + 400 val web stereo images with relative disparity.

    Obtain: github.com/KexianHust/Structure-Guided-Ranking-Loss (HR-WSI download). Layout::

        <root>/{train,val}/imgs/<name>.jpg           RGB
        <root>/{train,val}/gts/<name>.png            disparity, 8- or 16-bit single-channel PNG
        <root>/{train,val}/valid_masks/<name>.png    non-zero = valid (optional per image)
        <root>/{train,val}/instance_masks/...        unused

    Label: ``disparity``, the raw PNG values as float (relative: unknown scale and shift; larger = closer;
    0 = far, e.g. sky). The valid mask is returned as ``Sample.mask`` (so 0-disparity pixels inside it stay
    valid); without a mask file the schema default ``label > 0`` applies. ``split``: ``train`` or ``val``;
    ``None`` = both. Every image needs its ``gts`` PNG (else ``SourceError``). Keys: ``<split>/<name>``.
    """

    name = "hrwsi"
    label_kind = "disparity"
    SPLITS = ("train", "val")

    def items(self) -> list[SourceItem]:
        if self.split is not None and self.split not in self.SPLITS:
            raise SourceError(f"{self.name}: split must be one of {self.SPLITS} or None, got {self.split!r}")
        splits = [s for s in ([self.split] if self.split else self.SPLITS) if (self.root / s / "imgs").is_dir()]
        if not splits:
            wanted = " or ".join(f"{s}/imgs/" for s in ([self.split] if self.split else self.SPLITS))
            raise layout_error(self.name, self.root, f"{wanted} (*.jpg) with gts/*.png and valid_masks/*.png")
        result: list[Entry] = []
        missing: list[str] = []
        total = 0
        for split in splits:
            folder = self.root / split
            gts = {strip_ext(n): n for n in listdir(folder / "gts") if n.lower().endswith(".png")}
            masks = {strip_ext(n): n for n in listdir(folder / "valid_masks") if n.lower().endswith(".png")}
            for name in listdir(folder / "imgs"):
                if not is_image(name):
                    continue
                total += 1
                stem = strip_ext(name)
                if stem not in gts:
                    missing.append(f"{split}/imgs/{name}")
                    continue
                paths = {"image": str(folder / "imgs" / name), "label": str(folder / "gts" / gts[stem])}
                if stem in masks:
                    paths["mask"] = str(folder / "valid_masks" / masks[stem])
                result.append((f"{split}/{stem}", paths, {"split": split}))
        if missing:
            raise missing_labels_error(self.name, self.root, "<split>/gts/<name>.png for every image", missing, total)
        if not result:
            raise layout_error(self.name, self.root, "images in <split>/imgs/", "no images")
        return keyed_items(result)

    def load(self, item: SourceItem) -> Sample:
        image = read_rgb(item.paths["image"])
        disparity = read_png16(item.paths["label"], 1.0)
        mask = read_mask(item.paths["mask"]) if "mask" in item.paths else None
        return make_sample(self, item, image, disparity, mask, label_kind=self.label_kind)
