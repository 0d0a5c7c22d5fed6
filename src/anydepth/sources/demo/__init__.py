"""Offline demo sources for ``make shards-demo``: nothing is downloaded, everything comes from installed packages
or is rendered.

- ``demo-unlabeled`` (``DemoUnlabeledSource``): real photographs shipped inside the scikit-image wheel
  (``skimage/data/*.png|jpg``) and, when scikit-learn is installed, its two sample photos (``bundled_photos``).
  No labels.
- ``demo-eval`` (``DemoEvalSource``): the real Middlebury 2014 "motorcycle" left view bundled with scikit-image,
  with its ground-truth disparity (pixels; ``inf``/NaN = no ground truth -> mask False, label 0).
- ``demo-train`` (``DemoTrainSource``): SYNTHETIC RGB-D scenes rendered by the small vectorised numpy ray caster
  of :mod:`anydepth.sources.demo.raycast`, with exact z-depth in metres. Every sample says ``"synthetic": true``
  in its meta.
- ``demo-seg`` (``DemoSegSource``): the same SYNTHETIC scenes with per-pixel class ids (``seg.png``, the classes of
  :data:`~anydepth.sources.demo.raycast.DEMO_CLASSES`: ground, wall, box, sphere, sky) and no depth: the offline
  stand-in for a segmentation set (paper Sec. 4.4; ``make demo-seg``).

For all four kinds the dataset ``root`` is not read: pass any path (e.g. the output folder); it need not exist.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from PIL import Image

from anydepth.shards.schema import Sample
from anydepth.sources.base import Source, SourceError, SourceItem
from anydepth.sources.demo.bundled import bundled_photos, package_dir
from anydepth.sources.demo.raycast import DEMO_CLASSES, RENDERER, Layout, RenderResult, random_scene, render_scene

VAL_SEED_OFFSET = 1_000_000_000  # split "val" renders scenes seed + VAL_SEED_OFFSET + index (disjoint from train)
SPLIT_SCENES = {"train": 256, "val": 32}  # default scenes per split of the synthetic demo sources
EVAL_SEED_OFFSET = 2_000_000_000  # synthetic eval scenes of DemoEvalSource
MIDDLEBURY_MOTORCYCLE = {  # calibration of the 4x down-sampled images, from skimage.data.stereo_motorcycle
    "focal_px": 994.978,
    "cx": 311.193,
    "cy": 254.877,
    "doffs_px": 31.086,
    "baseline_m": 0.193001,
}


def _read_rgb(path: str | Path) -> np.ndarray:
    """An image file as H x W x 3 uint8 RGB (no EXIF orientation applied)."""
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


class DemoUnlabeledSource(Source):
    """Real photos bundled with scikit-image (astronaut, camera, chelsea, coffee, rocket) and scikit-learn (china,
    flower; only if installed), at the size the package ships them. Unlabeled (``label_kind`` None).

    Layout: none; ``root`` is ignored (any path). Keys ``skimage/<name>`` and ``sklearn/<name>``.
    """

    name = "demo-unlabeled"
    label_kind = None
    synthetic: ClassVar[bool] = False

    def __init__(self, root: str | Path, split: str | None = None) -> None:
        self.root, self.split = Path(root), split  # root is not read, so it need not exist

    def items(self) -> list[SourceItem]:
        photos = bundled_photos()
        if not photos:
            raise SourceError(f"{self.name}: no bundled photos found; install scikit-image (pip install scikit-image)")
        return [
            SourceItem(key=key, paths={"image": str(path)}, extra={"package": key.split("/")[0]})
            for key, path in photos.items()
        ]

    def load(self, item: SourceItem) -> Sample:
        image = _read_rgb(item.paths["image"])
        meta = {
            "source": self.name,
            "label_kind": None,
            "original_size": list(image.shape[:2]),
            "scale": 1.0,
            "package": item.extra.get("package", item.key.split("/")[0]),
            "synthetic": False,
        }
        return Sample(key=item.key, image=image, meta=meta)


class DemoEvalSource(Source):
    """The real Middlebury 2014 "motorcycle" left view (500 x 741) bundled with scikit-image, labeled with its
    ground-truth disparity in pixels (``label_kind`` ``disparity``; no ground truth (inf/NaN) -> mask False,
    label 0). Middlebury convention: depth [m] = focal_px * baseline_m / (disparity + doffs_px), the
    calibration is in meta.

    ``synthetic_scenes`` > 0 appends that many SYNTHETIC rendered scenes (keys ``synthetic-eval/scene_NNNNN``,
    meta ``"synthetic": true``, seeds disjoint from ``demo-train``) whose disparity is focal_px * 0.1 m / z-depth
    (a virtual 10 cm stereo baseline). Layout: none; ``root`` is ignored (any path); ``split`` is ignored.
    """

    name = "demo-eval"
    label_kind = "disparity"
    synthetic: ClassVar[bool] = False  # the motorcycle is real; optional synthetic scenes say so in their meta
    virtual_baseline_m = 0.1

    def __init__(
        self,
        root: str | Path,
        split: str | None = None,
        *,
        synthetic_scenes: int = 0,
        size: tuple[int, int] = (240, 320),
        seed: int = 0,
    ) -> None:
        self.root, self.split = Path(root), split
        self.synthetic_scenes, self.size, self.seed = int(synthetic_scenes), (int(size[0]), int(size[1])), int(seed)

    def items(self) -> list[SourceItem]:
        root = package_dir("skimage")
        if root is None:
            raise SourceError(f"{self.name}: scikit-image is not installed (pip install scikit-image)")
        files = {name: root / "data" / f"motorcycle_{name}" for name in ("left.png", "disp.npz")}
        missing = [str(p) for p in files.values() if not p.is_file()]
        if missing:
            raise SourceError(f"{self.name}: scikit-image lacks the bundled Middlebury motorcycle files {missing}")
        items = [
            SourceItem(
                key="middlebury/motorcycle",
                paths={"image": str(files["left.png"]), "disparity": str(files["disp.npz"])},
            )
        ]
        for index in range(self.synthetic_scenes):
            scene_seed = self.seed + EVAL_SEED_OFFSET + index
            items.append(
                SourceItem(
                    key=f"synthetic-eval/scene_{index:05d}", paths={}, extra={"index": index, "seed": scene_seed}
                )
            )
        return sorted(items, key=lambda item: item.key)

    def load(self, item: SourceItem) -> Sample:
        if "seed" in item.extra:
            return self._load_synthetic(item)
        image = _read_rgb(item.paths["image"])
        with np.load(item.paths["disparity"]) as data:
            disparity = np.asarray(data["arr_0"], dtype=np.float32)
        if disparity.shape != image.shape[:2]:
            raise ValueError(f"{item.key}: disparity {disparity.shape} does not match the image {image.shape[:2]}")
        mask = np.isfinite(disparity) & (disparity > 0)
        meta = {
            "source": self.name,
            "label_kind": "disparity",
            "original_size": list(image.shape[:2]),
            "scale": 1.0,
            "synthetic": False,
            "dataset": "Middlebury 2014 (motorcycle, 4x down-sampled)",
            "package": "skimage",
            "disparity_unit": "px",
            **MIDDLEBURY_MOTORCYCLE,
        }
        return Sample(
            key=item.key, image=image, label=np.where(mask, disparity, 0).astype(np.float32), mask=mask, meta=meta
        )

    def _load_synthetic(self, item: SourceItem) -> Sample:
        seed = int(item.extra["seed"])
        scene = random_scene(np.random.default_rng(seed))
        result = render_scene(scene, self.size, noise_seed=seed)
        valid = ~result.sky
        disparity = np.zeros(self.size, np.float32)
        disparity[valid] = (result.fx * self.virtual_baseline_m / result.depth[valid]).astype(np.float32)
        meta = {
            "source": self.name,
            "label_kind": "disparity",
            "original_size": list(self.size),
            "scale": 1.0,
            "synthetic": True,
            "renderer": RENDERER,
            "seed": seed,
            "index": int(item.extra["index"]),
            "disparity_unit": "px",
            "virtual_baseline_m": self.virtual_baseline_m,
            "intrinsics": result.intrinsics(),
            "scene": asdict(scene),
        }
        return Sample(key=item.key, image=result.image, label=disparity, mask=valid, sky=result.sky, meta=meta)


class DemoTrainSource(Source):
    """SYNTHETIC RGB-D training scenes rendered on the fly (``label_kind`` ``depth``, exact z-depth in metres;
        sky = rays that hit nothing -> label 0, mask False, ``sky`` True).

        Scene ``index`` of split "train" (or None) is ``random_scene(np.random.default_rng(seed + index))``; split
        "val" uses ``seed + VAL_SEED_OFFSET + index`` so the two splits never share a scene. ``layout="ground"``
        renders only the ground plane seen by a horizontal camera (analytically checkable). ``num_scenes`` defaults to
    :data:`SPLIT_SCENES` of the split (256 train, 32 val). Keys
        ``synthetic/scene_NNNNN``; meta has ``"synthetic": true``, ``renderer``, ``seed``, ``intrinsics`` and the
        whole scene description. Layout: none; ``root`` is ignored (any path).
    """

    name = "demo-train"
    label_kind = "depth"
    synthetic: ClassVar[bool] = True  # the builder copies this into manifest.json

    def __init__(
        self,
        root: str | Path,
        split: str | None = None,
        *,
        num_scenes: int | None = None,
        size: tuple[int, int] = (240, 320),
        seed: int = 0,
        layout: Layout = "random",
    ) -> None:
        self.root, self.split = Path(root), split
        if split not in (None, "train", "val"):
            raise SourceError(f"{self.name}: split must be 'train' or 'val', got {split!r}")
        if layout not in ("random", "ground"):
            raise SourceError(f"{self.name}: layout must be 'random' or 'ground', got {layout!r}")
        if num_scenes is None:
            num_scenes = SPLIT_SCENES[split or "train"]
        if num_scenes < 0 or min(size) < 2:
            raise SourceError(f"{self.name}: need num_scenes >= 0 and size >= 2 x 2, got {num_scenes}, {size}")
        self.num_scenes, self.size, self.seed, self.layout = (
            int(num_scenes),
            (int(size[0]), int(size[1])),
            int(seed),
            layout,
        )

    def scene_seed(self, index: int) -> int:
        """The RNG seed of scene ``index`` in this split."""
        return self.seed + (VAL_SEED_OFFSET if self.split == "val" else 0) + index

    def items(self) -> list[SourceItem]:
        return [
            SourceItem(key=f"synthetic/scene_{i:05d}", paths={}, extra={"index": i, "seed": self.scene_seed(i)})
            for i in range(self.num_scenes)
        ]

    def render(self, item: SourceItem) -> tuple[RenderResult, dict[str, Any]]:
        """The rendered scene of ``item`` and its depth sample's meta."""
        seed = int(item.extra["seed"])
        scene = random_scene(np.random.default_rng(seed), layout=self.layout)
        result = render_scene(scene, self.size, noise_seed=seed)
        meta = {
            "source": self.name,
            "label_kind": "depth",
            "original_size": list(self.size),
            "scale": 1.0,
            "synthetic": True,
            "renderer": RENDERER,
            "seed": seed,
            "index": int(item.extra["index"]),
            "split": self.split or "train",
            "layout": self.layout,
            "depth_unit": "m",
            "intrinsics": result.intrinsics(),
            "scene": asdict(scene),
        }
        return result, meta

    def load(self, item: SourceItem) -> Sample:
        result, meta = self.render(item)
        return Sample(key=item.key, image=result.image, label=result.depth, mask=~result.sky, sky=result.sky, meta=meta)


class DemoSegSource(DemoTrainSource):
    """SYNTHETIC segmentation scenes (``label_kind`` None): the :class:`DemoTrainSource` scenes (same options, seeds
    and keys) with ``seg`` = the class id of the surface each pixel sees (:data:`DEMO_CLASSES`; every pixel is
    labeled, sky included) in place of depth; meta ``classes`` names the ids."""

    name = "demo-seg"
    label_kind = None

    def load(self, item: SourceItem) -> Sample:
        result, meta = self.render(item)
        meta = {**meta, "label_kind": None, "classes": list(DEMO_CLASSES)}
        del meta["depth_unit"]
        return Sample(key=item.key, image=result.image, seg=result.classes, meta=meta)
