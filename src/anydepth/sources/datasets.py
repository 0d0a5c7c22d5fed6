"""Readers for the paper's six labeled training sets, in their published on-disk layouts.

Each class docstring gives the expected layout (relative to the ``root`` passed to the reader), where the
data comes from, the label kind and unit, the invalid-value convention, what ``split`` selects, and the
key format. Nothing here downloads anything. File decoding lives in :mod:`anydepth.sources.folders`.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np
from PIL import Image

from anydepth.images import IMAGE_EXTENSIONS, read_rgb
from anydepth.shards.schema import Sample
from anydepth.sources.base import Source, SourceError, SourceItem
from anydepth.sources.folders import (
    examples,
    keyed_items,
    layout_error,
    make_sample,
    read_label,
    read_mask,
    read_pfm,
    read_png16,
    strip_ext,
)


def _listdir(directory: Path) -> list[str]:
    """Sorted non-hidden entry names of ``directory`` ([] if it does not exist)."""
    if not directory.is_dir():
        return []
    return sorted(name for name in os.listdir(directory) if not name.startswith("."))


def _is_image(name: str) -> bool:
    return name.lower().endswith(IMAGE_EXTENSIONS)


def _missing_labels_error(source: str, root: Path, expected: str, missing: list[str], total: int) -> SourceError:
    return layout_error(source, root, expected, f"{len(missing)} of {total} images without one: {examples(missing)}")


def _read_unit(path: str | Path) -> np.ndarray:
    """An integer PNG as float32 in [0, 1] (divided by the dtype's maximum, e.g. 255 for 8-bit)."""
    with Image.open(path) as img:
        array = np.asarray(img)
    if array.ndim == 3:
        array = array[..., 0]
    if np.issubdtype(array.dtype, np.integer):
        return array.astype(np.float32) / np.float32(np.iinfo(array.dtype).max)
    return array.astype(np.float32)


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
            scenes = [name for name in _listdir(self.root) if (self.root / name / "blended_images").is_dir()]
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
        result: list[tuple[str, dict[str, str], dict[str, Any]]] = []
        missing: list[str] = []
        total = 0
        for pid in self._scenes():
            for name in _listdir(self.root / pid / "blended_images"):
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
            raise _missing_labels_error(self.name, self.root, "<PID>/rendered_depth_maps/<frame>.pfm", missing, total)
        if not result:
            raise layout_error(self.name, self.root, "<PID>/blended_images/<frame>.jpg images", "no images")
        return keyed_items(result)

    def load(self, item: SourceItem) -> Sample:
        image = read_rgb(item.paths["image"])
        depth = read_pfm(item.paths["label"])
        if depth.ndim != 2:
            raise ValueError(f"{item.paths['label']}: expected a single-channel (Pf) depth PFM, got {depth.shape}")
        return make_sample(self, item, image, depth, label_kind=self.label_kind, depth_unit="scene")


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
        names = [n for n in _listdir(folder / layout.depth_dir) if n.lower().endswith(".png")]
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
        result: list[tuple[str, dict[str, str], dict[str, Any]]] = []
        missing: list[str] = []
        total = 0
        for folder, layout in folders:
            rel = folder.relative_to(self.root)
            if self.split is not None and self.split not in rel.parts:
                continue
            depths = self._depth_index(folder, layout)
            for name in _listdir(folder / layout.image_dir):
                frame = strip_ext(name)
                if not _is_image(name) or not frame.endswith(layout.image_suffix):
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
            raise _missing_labels_error(self.name, self.root, "a depth PNG for every colour image", missing, total)
        if not result:
            found = f"no frame folder below a folder named {self.split!r}" if self.split else "no colour images"
            raise layout_error(self.name, self.root, "colour images in the frame folders", found)
        return keyed_items(result)

    def load(self, item: SourceItem) -> Sample:
        image = read_rgb(item.paths["image"])
        depth = read_png16(item.paths["label"], self.DEPTH_SCALE)
        mask = None
        if "conf" in item.paths:
            conf = _read_unit(item.paths["conf"])
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
        result: list[tuple[str, dict[str, str], dict[str, Any]]] = []
        missing: list[str] = []
        total = 0
        for split in splits:
            folder = self.root / split
            gts = {strip_ext(n): n for n in _listdir(folder / "gts") if n.lower().endswith(".png")}
            masks = {strip_ext(n): n for n in _listdir(folder / "valid_masks") if n.lower().endswith(".png")}
            for name in _listdir(folder / "imgs"):
                if not _is_image(name):
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
            raise _missing_labels_error(self.name, self.root, "<split>/gts/<name>.png for every image", missing, total)
        if not result:
            raise layout_error(self.name, self.root, "images in <split>/imgs/", "no images")
        return keyed_items(result)

    def load(self, item: SourceItem) -> Sample:
        image = read_rgb(item.paths["image"])
        disparity = read_png16(item.paths["label"], 1.0)
        mask = read_mask(item.paths["mask"]) if "mask" in item.paths else None
        return make_sample(self, item, image, disparity, mask, label_kind=self.label_kind)


# --------------------------------------------------------------------------------------------- IRS

_IRS_LEFT = re.compile(r"^l_(\d+)\.png$", re.IGNORECASE)
_IRS_LABELS = (".exr", ".npy", ".pfm")  # d_<N><ext>, in order of precedence: published first, then converted


class IRSSource(Source):
    """IRS (kind ``irs``): indoor robotics stereo, 960 x 540 renders with dense disparity of the left view.

    Obtain: github.com/HKBU-HPML/IRS (IRS dataset). Published layout::

        <root>/<Category>/<Scene>/l_<N>.png     left image (used)    Category: Home, Office, Restaurant, Store
        <root>/<Category>/<Scene>/r_<N>.png     right image (unused)
        <root>/<Category>/<Scene>/d_<N>.exr     left disparity, OpenEXR (used)
        <root>/<Category>/<Scene>/n_<N>.exr     normals (unused)

    The published ``d_<N>.exr`` is read directly (``read_exr``, via the ``openexr`` package): a
    single-channel file gives its only channel, a multi-channel one the channel named ``Y``, else ``R``;
    any other channel set makes ``load`` raise a ``ValueError`` naming the file and its channels. A
    disparity already converted to ``d_<N>.npy`` (float32 H x W) or ``d_<N>.pfm`` is accepted too. When
    several exist for one image the published ``.exr`` is used first, then ``.npy``, then ``.pfm``. Every
    left image needs one of them (else ``SourceError``). Label: ``disparity`` in pixels of the left image;
    values <= 0 or non-finite are invalid. ``split``: a category folder name (case-insensitive, e.g.
    ``Home``); ``None`` = all. Keys: ``<Category>/<Scene>/l_<N>`` (any folder depth is accepted).
    """

    name = "irs"
    label_kind = "disparity"

    def items(self) -> list[SourceItem]:
        result: list[tuple[str, dict[str, str], dict[str, Any]]] = []
        missing: list[str] = []
        total = 0
        for current, dirs, files in os.walk(self.root, followlinks=True):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            folder = Path(current)
            rel = folder.relative_to(self.root)
            if self.split is not None and (not rel.parts or rel.parts[0].lower() != self.split.lower()):
                continue
            names = set(files)
            for name in sorted(files):
                match = _IRS_LEFT.match(name)
                if not match:
                    continue
                total += 1
                index = match.group(1)
                label = next((f"d_{index}{ext}" for ext in _IRS_LABELS if f"d_{index}{ext}" in names), None)
                image_rel = (rel / name).as_posix()
                if label is None:
                    missing.append(image_rel)
                    continue
                paths = {"image": str(folder / name), "label": str(folder / label)}
                extra = {"category": rel.parts[0] if rel.parts else "", "scene": rel.as_posix()}
                result.append((strip_ext(image_rel), paths, extra))
        if missing:
            raise _missing_labels_error(
                self.name, self.root, "d_<N>.exr (or converted .npy/.pfm) next to every l_<N>.png", missing, total
            )
        if not result:
            where = f"in category {self.split!r}" if self.split else "anywhere"
            raise layout_error(self.name, self.root, f"<Category>/<Scene>/l_<N>.png + d_<N>.exr {where}")
        return keyed_items(result)

    def load(self, item: SourceItem) -> Sample:
        image = read_rgb(item.paths["image"])
        disparity = read_label(item.paths["label"])
        return make_sample(self, item, image, disparity, label_kind=self.label_kind, disparity_unit="px")


# --------------------------------------------------------------------------------------------- MegaDepth

_MEGADEPTH_PREFIX = Path("phoenix", "S6", "zl548", "MegaDepth_v1")


_MEGADEPTH_LABELS = (".h5", ".npy")  # depths/<name><ext>, in order of precedence: published first, then converted


def read_h5_depth(path: str | Path, dataset: str = "depth") -> np.ndarray:
    """Read MegaDepth's ``depth`` HDF5 dataset (H x W, any numeric dtype) as float32, first row on top.

    A file without that dataset, or whose dataset is not 2-D, is a ``ValueError`` naming the file."""
    with h5py.File(path, "r") as handle:
        if dataset not in handle:
            raise ValueError(f"{path}: no HDF5 dataset {dataset!r} (found: {', '.join(sorted(handle)) or 'none'})")
        depth = np.asarray(handle[dataset], dtype=np.float32)
    if depth.ndim != 2:
        raise ValueError(f"{path}: HDF5 dataset {dataset!r} has shape {depth.shape}, expected H x W")
    return depth


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
        result: list[tuple[str, dict[str, str], dict[str, Any]]] = []
        missing: list[str] = []
        total = 0
        folders = [
            (scene, dense)
            for scene in _listdir(self.base)
            for dense in _listdir(self.base / scene)
            if dense.startswith("dense") and (self.base / scene / dense / "imgs").is_dir()
        ]
        if not folders:
            raise layout_error(
                self.name, self.base, f"<scene>/dense0/imgs/ + depths/ (below the root or {_MEGADEPTH_PREFIX})"
            )
        for scene, dense in folders:
            folder = self.base / scene / dense
            depths = set(_listdir(folder / "depths"))
            for name in _listdir(folder / "imgs"):
                if not _is_image(name):
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
            raise _missing_labels_error(self.name, self.base, "dense<k>/depths/<name>.h5 or .npy", missing, total)
        if not result:
            raise layout_error(self.name, self.base, "images in <scene>/dense<k>/imgs/", "no images")
        return keyed_items(result)

    def load(self, item: SourceItem) -> Sample:
        image = read_rgb(item.paths["image"])
        path = item.paths["label"]
        depth = read_h5_depth(path) if path.endswith(".h5") else read_label(path)
        return make_sample(self, item, image, depth, label_kind=self.label_kind, base=self.base, depth_unit="sfm")


# --------------------------------------------------------------------------------------------- TartanAir


class TartanAirSource(Source):
    """TartanAir (kind ``tartanair``): simulated (AirSim/Unreal) trajectories, 640 x 480, metric depth.

    Obtain: theairlab.org/tartanair-dataset (``tartanair_tools`` download script; left image + left
    depth are enough). Layout (an extra ``<env>/`` level from unzipping is fine: trajectory folders are
    found anywhere below ``root``)::

        <root>/<env>/<Easy|Hard>/<P000>/image_left/000000_left.png          RGB
        <root>/<env>/<Easy|Hard>/<P000>/depth_left/000000_left_depth.npy    float32 H x W depth, metres

    Label: ``depth`` in metres. Sky: Unreal renders the sky sphere at a huge distance (about 1e4 m), so
    pixels with depth ``>= sky_depth`` (constructor argument, default 5000 m, safely below the sphere and
    above real geometry) are marked in ``Sample.sky`` and their depth set to 0 (invalid as depth; the
    trainer sets sky disparity to 0). Non-finite or <= 0 depth is invalid. ``split``: ``easy`` or ``hard``
    (case-insensitive; the folder above the trajectory); ``None`` = both. Every image needs its depth
    (else ``SourceError``). Keys: ``<env>/<Easy|Hard>/<P000>/image_left/000000_left``.
    """

    name = "tartanair"
    label_kind = "depth"
    SPLITS = ("easy", "hard")

    def __init__(self, root: str | Path, split: str | None = None, sky_depth: float = 5000.0) -> None:
        super().__init__(root, split)
        if split is not None and split.lower() not in self.SPLITS:
            raise SourceError(f"{self.name}: split must be 'easy', 'hard' or None, got {split!r}")
        self.sky_depth = float(sky_depth)

    def _trajectories(self) -> list[Path]:
        found = []
        for current, dirs, _ in os.walk(self.root, followlinks=True):
            if "image_left" in dirs:
                found.append(Path(current))
                dirs[:] = []
            else:
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        return found

    def items(self) -> list[SourceItem]:
        trajectories = self._trajectories()
        if not trajectories:
            raise layout_error(self.name, self.root, "<env>/<Easy|Hard>/<P000>/image_left/ + depth_left/ folders")
        result: list[tuple[str, dict[str, str], dict[str, Any]]] = []
        missing: list[str] = []
        total = 0
        for traj in trajectories:
            if self.split is not None and traj.parent.name.lower() != self.split.lower():
                continue
            rel = traj.relative_to(self.root)
            for name in _listdir(traj / "image_left"):
                if not name.lower().endswith("_left.png"):
                    continue
                total += 1
                frame = name[: -len("_left.png")]
                depth = traj / "depth_left" / f"{frame}_left_depth.npy"
                image_rel = (rel / "image_left" / name).as_posix()
                if not depth.is_file():
                    missing.append(image_rel)
                    continue
                extra = {"env": traj.parent.parent.name, "difficulty": traj.parent.name, "trajectory": traj.name}
                paths = {"image": str(traj / "image_left" / name), "label": str(depth)}
                result.append((strip_ext(image_rel), paths, extra))
        if missing:
            raise _missing_labels_error(
                self.name, self.root, "depth_left/<frame>_left_depth.npy for every image", missing, total
            )
        if not result:
            found = f"no trajectory under an {self.split!r} folder" if self.split else "no *_left.png images"
            raise layout_error(self.name, self.root, "image_left/<frame>_left.png images", found)
        return keyed_items(result)

    def load(self, item: SourceItem) -> Sample:
        image = read_rgb(item.paths["image"])
        depth = read_label(item.paths["label"])
        sky = depth >= self.sky_depth
        depth[sky] = 0.0
        return make_sample(
            self, item, image, depth, sky=sky, label_kind=self.label_kind, depth_unit="m", sky_depth=self.sky_depth
        )


__all__ = [
    "BlendedMVSSource",
    "DIMLSource",
    "HRWSISource",
    "IRSSource",
    "MegaDepthSource",
    "TartanAirSource",
    "read_h5_depth",
]
