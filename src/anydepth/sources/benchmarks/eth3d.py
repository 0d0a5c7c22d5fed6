"""ETH3D benchmark reader (kind ``eth3d``): the high-res multi-view training set's DSLR images and raw depth."""

from __future__ import annotations

from pathlib import Path

from anydepth.images import read_rgb
from anydepth.shards.schema import Sample
from anydepth.sources.base import SourceItem
from anydepth.sources.benchmarks import BenchmarkSource
from anydepth.sources.decoders import read_eth3d_depth
from anydepth.sources.layout import Entry, is_image, layout_error, listdir, require_found, strip_ext

_ETH3D_DEPTH_DIRS = (Path("ground_truth_depth") / "dslr_images", Path("ground_truth_masked") / "depth")


class ETH3DSource(BenchmarkSource):
    """ETH3D high-res multi-view, training set (kind ``eth3d``): 13 scenes, 454 DSLR images of 6048 x 4032 (W x H).

    Obtain from eth3d.net (Schöps et al., CVPR 2017), high-res multi-view training data: the distorted JPEG images
    ``multi_view_training_dslr_jpg.7z`` and the ground-truth depth maps ``multi_view_training_dslr_depth.7z`` (or
    the per-scene ``<scene>_dslr_jpg.7z`` / ``<scene>_dslr_depth.7z``), extracted into the same folder. Layout::

        <root>/<scene>/images/dslr_images/DSC_NNNN.JPG              RGB (the distorted images: the depth maps are
                                                                    rendered for them, not for the undistorted set)
        <root>/<scene>/ground_truth_depth/dslr_images/DSC_NNNN.JPG  depth, raw float32 (see ``read_eth3d_depth``)

    ``<scene>/ground_truth_masked/depth/DSC_NNNN.JPG`` is accepted as the depth folder too (used if the official one
    is absent). Despite the ``.JPG`` name a depth file is little-endian float32, row-major, exactly W x H values with
    no header; its size is the image's (read from the decoded JPEG, whose header gives it). Label: ``depth`` in
    metres (rendered from the laser scan); ``inf`` = no ground truth, stored as 0 (invalid), as are values <= 0.
    Protocol ``eth3d``: no crop and no upper cap (as Marigold). ``split``: ``None`` only (the training
    set is the benchmark). Every image needs its depth file (else ``SourceError``). Keys: ``<scene>/DSC_NNNN``.
    """

    name = "eth3d"

    def _depth_dir(self, scene: str) -> Path | None:
        return next((self.root / scene / d for d in _ETH3D_DEPTH_DIRS if (self.root / scene / d).is_dir()), None)

    def items(self) -> list[SourceItem]:
        scenes = [scene for scene in listdir(self.root) if (self.root / scene / "images" / "dslr_images").is_dir()]
        if not scenes:
            raise layout_error(
                self.name, self.root, "<scene>/images/dslr_images/ + <scene>/ground_truth_depth/dslr_images/"
            )
        entries: list[Entry] = []
        missing: list[str] = []
        total = 0
        for scene in scenes:
            depth_dir = self._depth_dir(scene) or self.root / scene / _ETH3D_DEPTH_DIRS[0]
            names = set(listdir(depth_dir))
            for name in listdir(self.root / scene / "images" / "dslr_images"):
                if not is_image(name):
                    continue
                total += 1
                if name not in names:
                    missing.append(f"{scene}/images/dslr_images/{name}")
                    continue
                paths = {
                    "image": str(self.root / scene / "images" / "dslr_images" / name),
                    "label": str(depth_dir / name),
                }
                entries.append((f"{scene}/{strip_ext(name)}", paths, {"scene": scene}))
        expected = "<scene>/ground_truth_depth/dslr_images/<name> for every image"
        return require_found(self, self.root, entries, missing, total, expected, "DSLR images")

    def load(self, item: SourceItem) -> Sample:
        image = read_rgb(item.paths["image"])
        depth = read_eth3d_depth(item.paths["label"], image.shape[:2])
        return self._sample(item, image, depth)
