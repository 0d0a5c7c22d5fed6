"""Readers for the paper's synthetic (rendered) training sets: IRS and TartanAir, in their published layouts.

Each class docstring gives the expected layout (relative to the ``root`` passed to the reader), where the
data comes from, the label kind and unit, the invalid-value convention, what ``split`` selects, and the
key format. Nothing here downloads anything.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from anydepth.images import read_rgb
from anydepth.shards.schema import Sample
from anydepth.sources.base import Source, SourceError, SourceItem
from anydepth.sources.decoders import read_label
from anydepth.sources.layout import (
    Entry,
    keyed_items,
    layout_error,
    listdir,
    make_sample,
    missing_labels_error,
    strip_ext,
)

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
        result: list[Entry] = []
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
            raise missing_labels_error(
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
        result: list[Entry] = []
        missing: list[str] = []
        total = 0
        for traj in trajectories:
            if self.split is not None and traj.parent.name.lower() != self.split.lower():
                continue
            rel = traj.relative_to(self.root)
            for name in listdir(traj / "image_left"):
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
            raise missing_labels_error(
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
