"""Reader for Virtual KITTI 2 (Cabon et al., 2020), one of Depth Anything V2's synthetic training sets, in its
published layout.

The class docstring gives the expected layout (relative to the ``root`` passed to the reader), where the data comes
from, the label kind and unit, the invalid-value convention, what ``split`` selects, and the key format. Nothing here
downloads anything.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from anydepth.images import read_rgb
from anydepth.shards.schema import Sample
from anydepth.sources.base import Source, SourceItem
from anydepth.sources.decoders import read_png16
from anydepth.sources.layout import Entry, listdir, make_sample, require_found

_RGB = re.compile(r"^rgb_(\d+)\.jpg$")


def _frames(frames: Path) -> Iterator[tuple[str, str, Path]]:
    """``(camera, index, path)`` of every ``rgb/<camera>/rgb_<index>.jpg`` in a variant's ``frames`` folder."""
    for camera in listdir(frames / "rgb"):
        for name in listdir(frames / "rgb" / camera):
            match = _RGB.match(name)
            if match:
                yield camera, match[1], frames / "rgb" / camera / name


class VKITTI2Source(Source):
    """Virtual KITTI 2 (kind ``vkitti2``): Unity re-creations of five KITTI tracking sequences, 1242 x 375, metric
    depth.

    Obtain: europe.naverlabs.com/research/computer-vision/proxy-virtual-worlds-vkitti-2 (``vkitti_2.0.3_rgb.tar``
    and ``vkitti_2.0.3_depth.tar``, extracted into the same folder). Published layout, as the official Depth
    Anything V2 ``metric_depth/dataset/vkitti2.py`` loader reads it::

        <root>/Scene<NN>/<variant>/frames/rgb/Camera_<K>/rgb_<NNNNN>.jpg       RGB
        <root>/Scene<NN>/<variant>/frames/depth/Camera_<K>/depth_<NNNNN>.png   depth, 16-bit PNG, centimetres

    Scenes ``Scene01``, ``Scene02``, ``Scene06``, ``Scene18``, ``Scene20``; every variant folder is read (``clone``,
    ``15-deg-left``, ``15-deg-right``, ``30-deg-left``, ``30-deg-right``, ``fog``, ``morning``, ``overcast``,
    ``rain``, ``sunset``), and both stereo cameras. Other ``frames/`` folders (``classSegmentation``,
    ``forwardFlow``, ...) are ignored. Label: ``depth`` in metres (PNG value / 100). The far plane, 65535 cm
    (655.35 m), is the sky: it is marked in ``Sample.sky`` and stored as 0 (invalid as depth; the trainer sets sky
    disparity to 0); 0 is invalid too. The V2 loader's ``depth <= 80`` mask is a metric fine-tuning choice, not
    applied here. ``split``: a variant name (case-insensitive, e.g. ``clone``); ``None`` = all (the dataset has no
    official split: all of it is training data). Every image needs its depth PNG (else ``SourceError``). Keys:
    ``Scene<NN>/<variant>/Camera_<K>/rgb_<NNNNN>``.
    """

    name = "vkitti2"
    label_kind = "depth"
    FAR_PLANE_CM = 65535

    def items(self) -> list[SourceItem]:
        entries: list[Entry] = []
        missing: list[str] = []
        total = 0
        for scene in listdir(self.root):
            for variant in listdir(self.root / scene):
                if self.split is not None and variant.lower() != self.split.lower():
                    continue
                for camera, index, image in _frames(self.root / scene / variant / "frames"):
                    total += 1
                    depth = image.parents[2] / "depth" / camera / f"depth_{index}.png"
                    if not depth.is_file():
                        missing.append(image.relative_to(self.root).as_posix())
                        continue
                    paths = {"image": str(image), "label": str(depth)}
                    extra = {"scene": scene, "variant": variant, "camera": camera}
                    entries.append((f"{scene}/{variant}/{camera}/rgb_{index}", paths, extra))
        expected = "frames/depth/Camera_<K>/depth_<NNNNN>.png for every frames/rgb/Camera_<K>/rgb_<NNNNN>.jpg"
        which = repr(self.split) if self.split else "<variant>"
        nothing = f"Scene<NN>/{which}/frames/rgb/Camera_<K>/rgb_<NNNNN>.jpg images"
        return require_found(self, self.root, entries, missing, total, expected, nothing)

    def load(self, item: SourceItem) -> Sample:
        image = read_rgb(item.paths["image"])
        centimetres = read_png16(item.paths["label"])
        sky = centimetres >= self.FAR_PLANE_CM
        depth = np.where(sky, np.float32(0), centimetres / np.float32(100))
        return make_sample(self, item, image, depth, sky=sky, label_kind=self.label_kind, depth_unit="m")
