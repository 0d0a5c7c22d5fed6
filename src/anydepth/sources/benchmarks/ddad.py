"""DDAD benchmark reader (kind ``ddad``): the validation set as exported from TRI's ``dgp`` format."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from anydepth.images import read_rgb
from anydepth.shards.schema import Sample
from anydepth.sources.base import SourceItem
from anydepth.sources.benchmarks import BenchmarkSource
from anydepth.sources.decoders import read_label, read_npz_depth
from anydepth.sources.layout import Entry, is_image, layout_error, listdir, require_found, strip_ext


class DDADSource(BenchmarkSource):
    """DDAD (kind ``ddad``): Dense Depth for Autonomous Driving validation set (1936 x 1216 frames, projected LiDAR).

    Obtain: ``DDAD.tar`` from TRI (github TRI-ML/DDAD), in TRI's ``dgp`` format (``ddad_train_val/ddad.json``,
    protobuf scenes). Reading that needs the ``dgp`` toolkit, so this reader takes the commonly used export instead:
    for each validation sample, ``dgp``'s ``SynchronizedSceneDataset(ddad.json, split="val",
    datum_names=(<cameras>, "lidar"), generate_depth_from_datum="lidar")`` gives every camera datum an ``rgb``
    image and a ``depth`` map (the LiDAR sweep projected into that camera, metres, 0 = no return), saved as::

        <root>/<scene>/rgb/<camera>/<frame>.png        RGB (or .jpg)
        <root>/<scene>/depth/<camera>/<frame>.npz      key "depth" (or "velodyne_depth", PackNet-SfM's name);
                                                       or <frame>.npy, float H x W metres

    ``<camera>`` is e.g. ``CAMERA_01`` (front; the zero-shot DDAD benchmark uses the 3950 front-camera validation
    frames: pass ``cameras=("CAMERA_01",)`` when the export holds more cameras; ``None`` = every camera folder). Label:
    ``depth`` in metres; 0 (or <= 0, non-finite) = invalid (sparse LiDAR). Protocol ``ddad``: 1e-3-80 m (as ZoeDepth),
    uncropped, applied by the evaluator. ``split``: ``None`` = ``root`` itself; ``"val"`` / ``"train"`` read
    ``<root>/<split>/``. When both ``.npz`` and ``.npy`` exist the ``.npz`` is used. Every image needs its depth (else
    ``SourceError``). Keys: ``<scene>/<camera>/<frame>``.
    """

    name = "ddad"
    SPLITS = (None, "val", "train")

    def __init__(self, root: str | Path, split: str | None = None, cameras: Sequence[str] | None = None) -> None:
        super().__init__(root, split)
        self.base = self.root / split if split else self.root
        self.cameras = None if cameras is None else tuple(str(c) for c in cameras)

    def items(self) -> list[SourceItem]:
        scenes = [scene for scene in listdir(self.base) if (self.base / scene / "rgb").is_dir()]
        if not scenes:
            raise layout_error(self.name, self.base, "<scene>/rgb/<camera>/<frame>.png + <scene>/depth/<camera>/")
        wanted = None if self.cameras is None else {c.lower() for c in self.cameras}
        entries: list[Entry] = []
        missing: list[str] = []
        total = 0
        for scene in scenes:
            for camera in listdir(self.base / scene / "rgb"):
                if wanted is not None and camera.lower() not in wanted:
                    continue
                depth_dir = self.base / scene / "depth" / camera
                for name in listdir(self.base / scene / "rgb" / camera):
                    if not is_image(name):
                        continue
                    total += 1
                    frame = strip_ext(name)
                    candidates = [depth_dir / f"{frame}{ext}" for ext in (".npz", ".npy")]
                    depth = next((path for path in candidates if path.is_file()), None)
                    if depth is None:
                        missing.append(f"{scene}/rgb/{camera}/{name}")
                        continue
                    paths = {"image": str(self.base / scene / "rgb" / camera / name), "label": str(depth)}
                    entries.append((f"{scene}/{camera}/{frame}", paths, {"scene": scene, "camera": camera}))
        nothing = f"images of cameras {', '.join(self.cameras)}" if self.cameras else "images in <scene>/rgb/<camera>/"
        return require_found(
            self, self.base, entries, missing, total, "<scene>/depth/<camera>/<frame>.npz or .npy", nothing
        )

    def load(self, item: SourceItem) -> Sample:
        image = read_rgb(item.paths["image"])
        path = item.paths["label"]
        depth = read_npz_depth(path) if path.endswith(".npz") else read_label(path)
        return self._sample(item, image, depth)
